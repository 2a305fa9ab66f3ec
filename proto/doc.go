// Package proto is the bankwire wire protocol between the web tier and the
// app tier, on the network: a server-first handshake with a shared secret,
// multiplexed requests with deadlines and cancellation, server push for
// subscriptions, liveness pings and graceful drain, over TCP (optionally
// TLS).
//
// PROTOCOL.md in this directory is the normative specification; section
// numbers (§n) in this package refer to it. This package and its
// subpackage wire are one implementation of it, split in two:
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
// carries its request and response types, and the functions of method.go,
// the only way to call or serve an operation, take one, so a mismatch
// does not compile: proto.Call(ctx, c, wire.SignIn, req) returns a
// wire.SignInResponse, and proto.Handle(mux, wire.SignIn, h) registers a
// handler h that takes a wire.SignInRequest and returns a
// wire.SignInResponse. Errors crossing the wire are always *wire.Error
// values with a Code; internal error text never leaves the server.
//
// # How a request travels through the server
//
// Server.Serve accepts a connection, admits it against the handshake budget
// (admitLocked) and starts its reading goroutine, serverConn.serve: HELLO,
// AUTH, READY, then a loop reading frames (handleFrame). handleRequest
// answers a REQUEST at once with an ERROR after DRAIN (one read while the
// drain began, before DRAIN, gets no answer: §7.3), over MaxInFlight, for
// an unknown operation or with no time left (deadline_ms less the
// measured round trip); otherwise the request enters the in-flight set with
// a context that CANCEL, its deadline and the connection's end can end
// (and drain too, for a stream), and its handler runs on a goroutine of its
// own (run, runStream), or on the reader itself for an operation measured
// as quick (inline.go). The answer leaves through the connection's
// frameWriter (conn.go), which lets concurrent answers share one write.
// Shutdown sends DRAIN, then ends streams with UNAVAILABLE, lets the unary
// requests in flight finish, and closes each connection once it is idle
// with FATAL SHUTTING_DOWN, its last frame.
//
// # How a call travels through the client
//
// Call (method.go) hands the request to Client.call, which encodes it and
// hands it to do (client.go), which asks pick for a connection: endpoints
// (every address the configured names resolve to, kept by resolveLoop)
// are tried round robin, up ones first, and endpoint.conn returns a
// connection with room under the server's max_in_flight, dialing one if
// the endpoint has fewer than ConnsPerAddr. clientConn.roundTrip
// (clientconn.go) registers the call under the next request id and writes
// the REQUEST. If nobody reads the connection, the caller reads it itself
// until its answer arrives (lead); otherwise it waits for the reader to
// route the answer to it (follow). A request the server provably never
// started comes back to do as errNotStarted and is sent again on another
// connection.
package proto
