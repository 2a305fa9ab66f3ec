// Package proto is the bankwire wire protocol between the web tier and the
// app tier: a small binary framing over TCP (optionally TLS) carrying
// operation bodies in a compact binary encoding (wire.go), with a
// server-first JSON handshake, a shared secret,
// multiplexed requests with deadlines and cancellation, server push for
// subscriptions, liveness pings and graceful drain.
//
// PROTOCOL.md in this directory is the normative specification; this package
// is one implementation of it. The layers, bottom up:
//
//   - Framer, Frame, Header: the 12-byte header and bounded payload reader,
//     used by the server, the client, the fuzzers and the terminal client's
//     trace mode.
//   - Hello, Auth, Ready, RequestHeader and the Append/Parse helpers: the
//     payload layouts of each frame type.
//   - Server, Mux, Request, Stream: the app tier side.
//   - Client, Subscription: the web tier side, a pool of multiplexed
//     connections over every address a host name resolves to.
//
// Errors crossing the wire are always *Error values with a Code; internal
// error text never leaves the server.
//
// # How a call travels (client side)
//
// Client.Call encodes the request body and, if ctx has no deadline, bounds
// it by DefaultTimeout. pick chooses an endpoint (one resolved address)
// round robin, those that are up first, and a connection of it with room
// under the server's max_in_flight, dialing one if needed. On that
// clientConn the caller takes the writer's lock, gets the next request id,
// records its call in the pending map, appends the REQUEST frame with the
// time it has left as deadline_ms, and waits on the call's channel. The
// connection's reader goroutine reads the RESPONSE or ERROR, finds the
// call by id and hands it the frame; Call decodes the body. If ctx ends
// first the caller sends CANCEL and leaves; the id stays pending until the
// server's terminal frame. A request the server provably never started
// (never written, or above a DRAIN's last id) is sent again elsewhere; any
// other failure is UNAVAILABLE. A timer per connection pings a connection
// whose answer is overdue, and one that stays silent is closed and its
// endpoint ejected.
package proto
