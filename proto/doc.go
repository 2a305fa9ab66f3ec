// Package proto is the bankwire wire protocol between the web tier and the
// app tier, on the network: a server-first handshake with a shared secret,
// multiplexed requests with deadlines and cancellation, server push for
// subscriptions, liveness pings and graceful drain, over TCP (optionally
// TLS).
//
// PROTOCOL.md in this directory is the normative specification; this
// package and its subpackage wire are one implementation of it, split in
// two:
//
//   - bankwire/proto/wire: the bytes, with no network code. Frames and
//     their header, the payload layout of each frame type, error codes,
//     the JSON handshake payloads (Hello, Auth, Ready), the binary body
//     encoding and every operation's body types. Start reading there.
//   - this package: connections. Server, Mux, Request, Stream are the app
//     tier side (accept loop, limits, handlers, push); Client and
//     Subscription the web tier side, a pool of multiplexed connections
//     over every address a host name resolves to, with deadlines, retries
//     of requests that provably never started, and drain.
//
// Callers import both: proto for the Client or Server, wire for the
// operations, bodies and codes (wire.SignIn, wire.SignInRequest,
// wire.Unavailable, wire.ErrorCode). Each operation's descriptor in wire
// carries its request and response types, and the typed functions of
// method.go take one, so a mismatch does not compile:
// proto.Call(ctx, c, wire.SignIn, req) returns a wire.SignInResponse, and
// proto.Handle(mux, wire.SignIn, h) registers a handler h that takes a
// wire.SignInRequest and returns a wire.SignInResponse. Errors crossing the wire are always
// *wire.Error values with a Code; internal error text never leaves the
// server.
//
// # How a request travels through the server
//
// Server.Serve accepts a connection, counts it against the handshake budget
// (admitLocked) and starts its goroutine, serverConn.serve (serverconn.go):
// it sends HELLO, checks AUTH and sends READY, then loops reading frames and
// dispatching them by type (handleFrame). A REQUEST is admitted by
// handleRequest: ids must increase; while draining, over MaxInFlight, for an
// unknown operation or with no time left (deadline_ms less the round trip
// the server measured with its own PINGs) it is answered at once with an
// ERROR. Otherwise it becomes a serverReq in the connection's inflight map,
// with a context that is a child of the connection's (canceled by CANCEL,
// drain or the connection's end) and, if it has one, a standard deadline,
// and its handler runs on a goroutine of its own (run, or runStream in
// stream.go); a unary operation measured as quick runs on the reading
// goroutine itself, under a watchdog that hands reading to a new goroutine
// if the handler blocks (inline.go). The handler's goroutine takes the
// request out of the in-flight set and writes its RESPONSE or ERROR through
// the connection's frameWriter (conn.go), which lets concurrent answers
// leave in one write. Shutdown
// sends DRAIN, waits for the requests in flight, ends streams with
// UNAVAILABLE and closes with FATAL SHUTTING_DOWN, the last frame.
package proto
