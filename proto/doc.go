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
// operations, bodies and codes (wire.OpSignIn, wire.SignInRequest,
// wire.Unavailable, wire.ErrorCode). Errors crossing the wire are always
// *wire.Error values with a Code; internal error text never leaves the
// server.
package proto
