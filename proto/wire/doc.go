// Package wire is the bankwire protocol's bytes: what a peer writes on the
// socket and how it reads them back. It has no network code, no goroutines
// and no timers, so it can be read on its own, before the rest of proto,
// and reused by anything that speaks or inspects the protocol (the
// conformance checker, the terminal client's trace, a fuzzer).
//
// ../PROTOCOL.md is the normative specification; the section numbers
// below are its own. The Example shows a connection's first frames, and
// package proto (bankwire/proto) builds the client and server on top of
// this one.
//
// A connection carries frames in both directions. A frame is a fixed
// 12-byte header (version, type, flags, request id, payload length, all
// big-endian) followed by that many payload bytes (§2):
//
//	01 09 0000 00000001 00000002 6869   PING, id 1, payload "hi"
//
// The files, bottom up:
//
//   - frame.go: the header, the frame types and flags, Framer (frames on
//     any io.Reader and io.Writer), and the payload layouts of REQUEST,
//     ERROR, FATAL and DRAIN (§2.2).
//   - errors.go: Code and Error, which ERROR and FATAL frames carry (§6).
//   - handshake.go: HELLO, AUTH and READY, the only JSON payloads (§3).
//   - wire.go: the binary encoding of the bodies of REQUEST, RESPONSE and
//     EVENT frames (§10): Decoder, the Append functions, Marshal and
//     Unmarshal.
//   - method.go and messages.go: Method, one descriptor per operation (§9:
//     SignIn is Method[SignInRequest, SignInResponse]), and every body
//     type (§10). go generate (proto/cmd/wiregen) writes their codec, the
//     table of operations and the String methods of FrameType and Code
//     into messages_gen.go, and the table of bodies in ../PROTOCOL.md §10.
package wire
