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
package proto
