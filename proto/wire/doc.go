// Package wire is the bankwire protocol's bytes: what a peer writes on the
// socket and how it reads them back. It has no network code, no goroutines
// and no timers, so it can be read on its own, before the rest of proto,
// and reused by anything that speaks or inspects the protocol (the
// conformance checker, the terminal client's trace, a fuzzer).
//
// ../PROTOCOL.md is the normative specification; the section numbers
// below are its own. The Example shows the socket walkthrough with real
// frames, and package proto (bankwire/proto) builds the client and server
// on top of this one.
//
// # Frames
//
// A connection carries frames in both directions. A frame is a fixed
// 12-byte header (version, type, flags, request id, payload length, all
// big-endian) followed by that many payload bytes (§2):
//
//	01 09 0000 00000001 00000002 6869   PING, id 1, payload "hi"
//
// Framer reads and writes frames on any io.Reader and io.Writer, checking
// the announced length against a limit before it allocates anything;
// Header, PutHeader, ParseHeader and AppendFrame are the same format for
// callers that build frames in their own buffers.
//
// # Layers, bottom up
//
//   - frame.go: the header, the frame types and flags, Framer, and the
//     payload layouts of REQUEST (RequestHeader: op, deadline, trace id,
//     then the body), ERROR, FATAL and DRAIN (§2.2).
//   - errors.go: Code and Error, the error codes every ERROR and FATAL
//     frame carries (§6).
//   - handshake.go: HELLO, AUTH and READY, the only JSON payloads (§3).
//   - wire.go: the compact binary encoding of the bodies of REQUEST,
//     RESPONSE and EVENT frames (§10): Decoder, the Append functions,
//     Marshaler and Unmarshaler, Marshal and Unmarshal.
//   - messages.go: Op, the table of operations and every body type (§9,
//     §10); messages_gen.go, their encoding, is generated from it by
//     proto/cmd/wiregen (go generate ./proto/wire).
//   - describe.go: DescribeFrame and FrameDescriber render frames for
//     people (the terminal client's -trace, test failures).
//
// # The handshake's keys
//
// Every handshake payload is one JSON object, decoded by
// UnmarshalHandshake: keys match exactly, unknown keys are ignored (that
// is how a later version adds some), and a key given twice, bytes that are
// not UTF-8 or anything after the object make the payload malformed.
// ParseHello requires "versions" to include 1 and "max_payload" and
// "max_in_flight" to be positive; "server", "idle_timeout_ms" and
// "handshake_timeout_ms" are optional. ParseAuth requires "version", a
// JSON number that must be 1 (another number is UNSUPPORTED_VERSION,
// anything else PROTOCOL_ERROR); a missing "secret" is the empty string,
// which the server compares with its own like any other (BAD_SECRET if
// they differ); "client" is optional. READY's "version" and "conn_id" are
// informational.
package wire
