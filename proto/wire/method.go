package wire

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Method describes one operation: its Op, its name in PROTOCOL.md §9 and,
// as type parameters, the body types of its REQUEST and of its RESPONSE.
// messages.go declares one for every operation (SignIn, AccountsList, …);
// package proto's Call, Subscribe, Handle and HandleStream take one, so a
// request or response of the wrong type does not compile.
//
// The table of operations (Op.String, Ops, BodyTypes, and through them
// the describer, the codec tests and the §9 checks) is made of these
// descriptors: go generate lists every Method of messages.go in
// messages_gen.go.
type Method[Req, Resp any] struct {
	Op   Op
	Name string // as in PROTOCOL.md §9: "signin", "accounts.list"
}

func (m Method[Req, Resp]) String() string { return m.Name }

// entry is the untyped view of a Method that the table holds.
func (m Method[Req, Resp]) entry() opEntry {
	return opEntry{op: m.Op, name: m.Name, req: newOf[Req], resp: newOf[Resp]}
}

// operation is any Method.
type operation interface{ entry() opEntry }

type opEntry struct {
	op        Op
	name      string
	req, resp func() any
}

func newOf[T any]() any { return new(T) }

// opTable indexes ms by op. Two descriptors with one op or one name are a
// programming error, found when the package is loaded.
func opTable(ms ...operation) map[Op]opEntry {
	t := make(map[Op]opEntry, len(ms))
	names := make(map[string]bool, len(ms))
	for _, m := range ms {
		e := m.entry()
		if _, dup := t[e.op]; dup || names[e.name] || e.name == "" {
			panic(fmt.Sprintf("wire: operation %d %q defined twice or without a name", e.op, e.name))
		}
		t[e.op], names[e.name] = e, true
	}
	return t
}

func (o Op) String() string {
	if e, ok := ops[o]; ok {
		return e.name
	}
	return "op." + strconv.Itoa(int(o))
}

// Ops lists every defined operation, in numeric order.
func Ops() []Op { return slices.Sorted(maps.Keys(ops)) }

// BodyTypes returns new values (pointers) of op's request and response
// types, or ok=false for an operation this package does not define.
func BodyTypes(op Op) (req, resp any, ok bool) {
	e, ok := ops[op]
	if !ok {
		return nil, nil, false
	}
	return e.req(), e.resp(), true
}

// SessionToken returns the session token that a request carries: every
// request type of an operation that needs a session embeds SessionRequest,
// and so has this method.
func (r SessionRequest) SessionToken() string { return r.Session }
