package wire

// Op identifies an operation in a REQUEST (PROTOCOL.md §9). Its numbers
// are part of the wire format; each Method of messages.go declares one,
// and go generate makes it a constant (OpSignIn is SignIn.Op).
type Op uint16

// Method describes one operation: its Op, its name in PROTOCOL.md §9 and,
// as type parameters, the body types of its REQUEST and of its RESPONSE.
// messages.go declares one for every operation (SignIn, AccountsList, …);
// package proto's Call, Subscribe, Handle and HandleStream take one, so a
// request or response of the wrong type does not compile. From these
// declarations go generate writes the table of operations: the Op
// constants, Ops, Op.String and BodyTypes (messages_gen.go).
type Method[Req, Resp any] struct {
	Op   Op
	Name string // as in PROTOCOL.md §9: "signin", "accounts.list"
}

func (m Method[Req, Resp]) String() string { return m.Name }

// SessionToken returns the session token that a request carries: every
// request type of an operation that needs a session embeds SessionRequest,
// and so has this method.
func (r SessionRequest) SessionToken() string { return r.Session }
