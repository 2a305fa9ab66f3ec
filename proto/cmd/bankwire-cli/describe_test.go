package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"bankwire/proto/wire"
)

// describeFrame describes f as the first frame of a connection.
func describeFrame(f wire.Frame) string {
	var fd frameDescriber
	return fd.describe("c", f)
}

func encode(v wire.Marshaler) []byte { return v.MarshalWire(nil) }

func TestDescribeMasksSecret(t *testing.T) {
	b, _ := json.Marshal(wire.Auth{Version: 1, Client: "c", Secret: "hunter2"})
	s := describeFrame(wire.Frame{Type: wire.FrameAuth, Payload: b})
	if strings.Contains(s, "hunter2") || !strings.Contains(s, "secret=<7 bytes>") {
		t.Fatalf("describe(AUTH) = %q", s)
	}
	signIn := wire.SignInRequest{Username: "al", Password: "pw"}
	s = describeFrame(wire.Frame{Type: wire.FrameRequest, ID: 3, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpSignIn, DeadlineMs: 900, TraceID: "t1"}, encode(signIn))})
	if s != `REQUEST id=3 len=17 op=signin deadline_ms=900 trace="t1" body={"username":"al","password":"pw"}` {
		t.Fatalf("describe(REQUEST) = %q", s)
	}
	s = describeFrame(wire.Frame{Type: wire.FrameRequest, ID: 4, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpSignIn}, []byte{9})})
	if s != `REQUEST id=4 len=8 op=signin deadline_ms=0 trace="" body=<1 bytes, undecodable: at byte 1: string of 9 bytes, 0 left> 09` {
		t.Fatalf("describe(malformed REQUEST) = %q", s)
	}
}

// A frameDescriber decodes answers by the op of their request on the same
// connection, and forgets the op once the request is finished.
func TestFrameDescriberDecodesAnswers(t *testing.T) {
	var fd frameDescriber
	fd.describe("a", wire.Frame{Type: wire.FrameRequest, ID: 5, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpSubscribe}, encode(wire.SessionRequest{Session: "t"}))})
	// Connection b uses id 5 too, for another operation.
	fd.describe("b", wire.Frame{Type: wire.FrameRequest, ID: 5, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpChatList}, encode(wire.SessionRequest{Session: "t"}))})
	if s := fd.describe("a", wire.Frame{Type: wire.FrameResponse, Flags: wire.FlagStream, ID: 5}); s != `RESPONSE id=5 flags=0x0001 len=0 op=subscribe body={}` {
		t.Fatalf("stream opened: %q", s)
	}
	if s := fd.describe("b", wire.Frame{Type: wire.FrameResponse, ID: 5, Payload: encode(wire.ConversationsResponse{})}); s != `RESPONSE id=5 len=1 op=chat.list body={"conversations":[]}` {
		t.Fatalf("b's answer: %q", s)
	}
	ev := encode(wire.Event{Kind: wire.EventBalance, Account: &wire.Account{Number: "n", Balance: -5}})
	if s := fd.describe("a", wire.Frame{Type: wire.FrameEvent, ID: 5, Payload: ev}); !strings.Contains(s, `op=subscribe body={"kind":"balance","account":{"number":"n","kind":"","currency":"","balance":-5,`) {
		t.Fatalf("event: %q", s)
	}
	fd.describe("a", wire.Frame{Type: wire.FrameError, ID: 5, Payload: wire.AppendError(nil, &wire.Error{Code: wire.Canceled, Message: "canceled"})})
	if s := fd.describe("a", wire.Frame{Type: wire.FrameEvent, ID: 5, Payload: ev}); s != fmt.Sprintf("EVENT id=5 len=%d body=<%d bytes> %x", len(ev), len(ev), ev) {
		t.Fatalf("event after the stream ended: %q", s)
	}
}

// The describer renders any frame without panicking, whatever its payload.
func FuzzDescribe(f *testing.F) {
	f.Add(uint8(wire.FrameRequest), wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpSignIn}, []byte{2, 'a'}))
	f.Add(uint8(wire.FrameAuth), []byte(`{"version":1,"secret":"s"}`))
	f.Add(uint8(wire.FrameError), wire.AppendError(nil, &wire.Error{Code: wire.Canceled, Message: "x"}))
	f.Add(uint8(wire.FrameDrain), []byte{0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, typ uint8, p []byte) {
		var fd frameDescriber
		fd.describe("c", wire.Frame{Type: wire.FrameRequest, ID: 1, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpAccountsList}, nil)})
		if s := fd.describe("c", wire.Frame{Type: wire.FrameType(typ), ID: 1, Payload: p}); s == "" {
			t.Fatal("empty description")
		}
	})
}
