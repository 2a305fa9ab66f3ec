package proto_test

import (
	"testing"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// TestAuthKeys pins what PROTOCOL.md §3 says about AUTH's keys, over a
// socket, whatever decoder the server uses: which keys are required,
// what a missing, null, empty or mistyped one gets, that names match
// exactly, and that any duplicate name or trailing data is malformed.
func TestAuthKeys(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	for _, c := range []struct {
		auth string
		want wire.Code // OK: READY
	}{
		// client is optional; unknown keys are ignored, whatever their value.
		{`{"version":1,"secret":"test-secret"}`, wire.OK},
		{`{"version":1,"client":null,"secret":"test-secret"}`, wire.OK},
		{`{"version":1,"client":"","secret":"test-secret","future":{"a":[1,2]}}`, wire.OK},
		{` {"version":1,"secret":"test-secret"} ` + "\n", wire.OK},
		// Names match exactly: "Version" and "SECRET" are unknown keys.
		{`{"version":1,"Version":2,"secret":"test-secret"}`, wire.OK},
		{`{"version":1,"SECRET":"test-secret"}`, wire.BadSecret},
		// A missing, null or empty secret is a wrong secret.
		{`{"version":1,"client":"c"}`, wire.BadSecret},
		{`{"version":1,"secret":null}`, wire.BadSecret},
		{`{"version":1,"secret":""}`, wire.BadSecret},
		// version is the number 1, written so.
		{`{"version":1.0,"secret":"test-secret"}`, wire.UnsupportedVersion},
		{`{"version":1e0,"secret":"test-secret"}`, wire.UnsupportedVersion},
		{`null`, wire.ProtocolError}, // not an object
		// A known key of the wrong JSON type, any duplicate name, trailing
		// data, a value that is not an object: malformed.
		{`{"version":1,"client":5,"secret":"test-secret"}`, wire.ProtocolError},
		{`{"version":1,"secret":["test-secret"]}`, wire.ProtocolError},
		{`{"version":true,"secret":"test-secret"}`, wire.ProtocolError},
		{`{"version":1,"secret":"test-secret","x":1,"x":2}`, wire.ProtocolError},
		{`{"version":1,"client":"a","client":"a","secret":"test-secret"}`, wire.ProtocolError},
		{`{"version":1,"secret":"test-secret"}{}`, wire.ProtocolError},
		{`[{"version":1,"secret":"test-secret"}]`, wire.ProtocolError},
		{"{\"version\":1,\"secret\":\"test-secret\xff\"}", wire.ProtocolError},
	} {
		r := dialRaw(t, srv.Addr)
		r.read() // HELLO
		r.write(wire.Frame{Type: wire.FrameAuth, Payload: []byte(c.auth)})
		if c.want == wire.OK {
			if f := r.read(); f.Type != wire.FrameReady {
				t.Fatalf("%s: got %s, want READY", c.auth, f)
			}
			continue
		}
		if e := r.expectFatal(c.want); e == nil {
			t.Fatalf("%s: no FATAL", c.auth)
		}
	}
}
