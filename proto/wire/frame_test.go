package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"bankwire/proto/wire"
)

func TestFrameRoundTripEveryType(t *testing.T) {
	for ft := wire.FrameHello; ft <= wire.FrameFatal; ft++ {
		for _, payload := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0, 0xff}, 700)} {
			flags := uint16(0)
			if ft == wire.FrameResponse {
				flags = wire.FlagStream
			}
			in := wire.Frame{Type: ft, Flags: flags, ID: 0xDEADBEEF, Payload: payload}
			var buf bytes.Buffer
			if err := wire.NewFramer(nil, &buf).WriteFrame(in); err != nil {
				t.Fatal(err)
			}
			if buf.Len() != wire.HeaderLen+len(payload) {
				t.Fatalf("%s: encoded %d bytes, want %d", ft, buf.Len(), wire.HeaderLen+len(payload))
			}
			fr := wire.NewFramer(&buf, nil)
			out, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s: %v", ft, err)
			}
			if out.Type != in.Type || out.Flags != in.Flags || out.ID != in.ID || !bytes.Equal(out.Payload, in.Payload) {
				t.Fatalf("%s: round trip got %+v, want %+v", ft, out, in)
			}
			if _, err := fr.ReadFrame(); err != io.EOF {
				t.Fatalf("%s: after last frame got %v, want io.EOF", ft, err)
			}
		}
	}
}

func TestHeaderLayout(t *testing.T) {
	b := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameRequest, ID: 0x01020304, Payload: []byte("abc")})
	want := []byte{1, 4, 0, 0, 1, 2, 3, 4, 0, 0, 0, 3, 'a', 'b', 'c'}
	if !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
}

func header(version uint8, ft wire.FrameType, flags uint16, id, n uint32) []byte {
	b := make([]byte, wire.HeaderLen)
	b[0], b[1] = version, byte(ft)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], id)
	binary.BigEndian.PutUint32(b[8:], n)
	return b
}

func TestReadFrameRejectsBadInput(t *testing.T) {
	valid := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameEvent, ID: 9, Payload: []byte(`{"kind":"balance"}`)})
	tests := []struct {
		name     string
		in       []byte
		wantErr  error     // for I/O outcomes
		wantCode wire.Code // for protocol violations
	}{
		{"empty stream", nil, io.EOF, 0},
		{"truncated header", valid[:5], io.ErrUnexpectedEOF, 0},
		{"truncated payload", valid[:len(valid)-3], io.ErrUnexpectedEOF, 0},
		{"header only, payload missing", valid[:wire.HeaderLen], io.ErrUnexpectedEOF, 0},
		{"length over limit", header(1, wire.FrameEvent, 0, 1, 1025), nil, wire.ProtocolError},
		{"length 4 GiB", header(1, wire.FrameEvent, 0, 1, 0xFFFFFFFF), nil, wire.ProtocolError},
		{"unknown frame type", header(1, 99, 0, 1, 0), nil, wire.ProtocolError},
		{"frame type zero", header(1, 0, 0, 1, 0), nil, wire.ProtocolError},
		{"unknown version", header(2, wire.FrameRequest, 0, 1, 0), nil, wire.UnsupportedVersion},
		{"version zero", header(0, wire.FramePing, 0, 1, 0), nil, wire.UnsupportedVersion},
		{"unknown flag", header(1, wire.FrameResponse, 0x8000, 1, 0), nil, wire.ProtocolError},
		{"stream flag on EVENT", header(1, wire.FrameEvent, wire.FlagStream, 1, 0), nil, wire.ProtocolError},
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), nil, wire.UnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := wire.NewFramer(bytes.NewReader(tt.in), nil)
			fr.SetMaxPayload(1024)
			_, err := fr.ReadFrame()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if got := wire.ErrorCode(err); got != tt.wantCode || !got.Fatal() {
				t.Fatalf("err = %v, want fatal %s", err, tt.wantCode)
			}
		})
	}
}

// An announced length over the limit must be rejected before any buffer of
// that size exists.
func TestReadFrameDoesNotAllocateAnnouncedLength(t *testing.T) {
	in := header(1, wire.FrameEvent, 0, 1, 1<<31)
	allocs := testing.AllocsPerRun(100, func() {
		fr := wire.NewFramer(bytes.NewReader(in), nil)
		if _, err := fr.ReadFrame(); wire.ErrorCode(err) != wire.ProtocolError {
			t.Fatalf("err = %v", err)
		}
	})
	// A handful of small allocations (reader, error value); a 2 GiB buffer
	// would have crashed or shown up in the memory profile long before.
	if allocs > 10 {
		t.Fatalf("%v allocations to reject an oversized frame", allocs)
	}
}

func TestRequestPayloadRoundTrip(t *testing.T) {
	h := wire.RequestHeader{Op: wire.OpTransferCreate, DeadlineMs: 1500, TraceID: "req-42/abc"}
	body := []byte(`{"amount":"12.34"}`)
	p := wire.AppendRequest(nil, h, body)
	got, gotBody, err := wire.ParseRequest(p)
	if err != nil || got != h || !bytes.Equal(gotBody, body) {
		t.Fatalf("got %+v %q %v", got, gotBody, err)
	}
	long := strings.Repeat("t", 300)
	got, _, err = wire.ParseRequest(wire.AppendRequest(nil, wire.RequestHeader{TraceID: long}, nil))
	if err != nil || got.TraceID != long[:wire.MaxTraceID] {
		t.Fatalf("long trace id: got %d bytes, %v", len(got.TraceID), err)
	}
	for _, bad := range [][]byte{nil, {0, 1}, {0, 1, 0, 0, 0, 0, 5, 'a'}} {
		if _, _, err := wire.ParseRequest(bad); wire.ErrorCode(err) != wire.ProtocolError {
			t.Errorf("ParseRequest(% x) err = %v, want PROTOCOL_ERROR", bad, err)
		}
	}
}

func TestErrorPayloadRoundTrip(t *testing.T) {
	for _, in := range []*wire.Error{
		{Code: wire.FailedPrecondition, Message: "Insufficient funds: € \"quoted\" \n", Field: "amount"},
		{Code: wire.Internal, Message: "internal error"},
		{Code: wire.OK, Message: "stream ended"},
	} {
		out, err := wire.ParseError(wire.AppendError(nil, in))
		if err != nil || *out != *in {
			t.Fatalf("got %+v, %v; want %+v", out, err, in)
		}
	}
	// Invalid UTF-8 is replaced on the way out, since it may not go on the wire.
	if out, err := wire.ParseError(wire.AppendError(nil, &wire.Error{Code: wire.Internal, Message: "a\xffb"})); err != nil || out.Message != "a\uFFFDb" {
		t.Fatalf("invalid UTF-8: %+v %v", out, err)
	}
	for _, bad := range [][]byte{
		nil, {0},
		{0, 3},                // no message
		{0, 3, 1, 'x'},        // no field
		{0, 3, 5, 'x', 0},     // message longer than what is left
		{0, 3, 1, 0xff, 0},    // message not UTF-8
		{0, 3, 1, 'x', 0, 0},  // a byte after the field
		{0, 3, 0x80, 0x00, 0}, // length not in its shortest form
	} {
		if _, err := wire.ParseError(bad); wire.ErrorCode(err) != wire.ProtocolError {
			t.Errorf("ParseError(%q) err = %v, want PROTOCOL_ERROR", bad, err)
		}
	}
}

func TestFatalAndDrainPayloads(t *testing.T) {
	e, err := wire.ParseFatal(wire.AppendFatal(nil, wire.BadSecret, "bad secret"))
	if err != nil || e.Code != wire.BadSecret || e.Message != "bad secret" {
		t.Fatalf("got %+v %v", e, err)
	}
	if _, err := wire.ParseFatal([]byte{0, 102, 0xff, 0xfe}); err == nil {
		t.Fatal("FATAL with non-UTF-8 reason accepted")
	}
	if _, err := wire.ParseFatal([]byte{0}); err == nil {
		t.Fatal("truncated FATAL accepted")
	}
	last, err := wire.ParseDrain(wire.AppendDrain(nil, 77))
	if err != nil || last != 77 {
		t.Fatalf("drain: %d %v", last, err)
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, {1, 2, 3, 4, 5}} {
		if _, err := wire.ParseDrain(bad); err == nil {
			t.Errorf("ParseDrain(% x) accepted", bad)
		}
	}
}

func TestHandshakePayloads(t *testing.T) {
	in := wire.Hello{Versions: []int{1}, Server: "s/1", MaxPayload: 1 << 20, MaxInFlight: 128, IdleTimeoutMs: 60000, HandshakeTimeoutMs: 10000}
	b, _ := json.Marshal(in)
	out, err := wire.ParseHello(b)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("hello: %+v %v", out, err)
	}
	if _, err := wire.ParseHello([]byte(`{"versions":[2,3],"max_payload":1,"max_in_flight":1}`)); wire.ErrorCode(err) != wire.UnsupportedVersion {
		t.Fatalf("hello without version 1: %v", err)
	}
	if _, err := wire.ParseHello([]byte(`{"versions":[1]}`)); wire.ErrorCode(err) != wire.ProtocolError {
		t.Fatalf("hello without limits: %v", err)
	}
	if _, err := wire.ParseHello([]byte(`nope`)); wire.ErrorCode(err) != wire.ProtocolError {
		t.Fatalf("undecodable hello: %v", err)
	}
	a, err := wire.ParseAuth([]byte(`{"version":1,"client":"c","secret":"s","future_field":true}`))
	if err != nil || a != (wire.Auth{Version: 1, Client: "c", Secret: "s"}) {
		t.Fatalf("auth: %+v %v", a, err)
	}
	// Names match exactly: "SECRET" is an unknown name, skipped, so this
	// AUTH carries no secret (json.Unmarshal would fold it into Secret).
	if a, err := wire.ParseAuth([]byte(`{"version":1,"client":"c","SECRET":"s"}`)); err != nil || a.Secret != "" {
		t.Fatalf("case-folded secret: %+v %v", a, err)
	}
	for _, bad := range []string{`{"version":1,"secret":"a","secret":"b"}`, "{\"version\":1,\"secret\":\"\xff\"}", `{"version":1} {}`} {
		if _, err := wire.ParseAuth([]byte(bad)); wire.ErrorCode(err) != wire.ProtocolError {
			t.Fatalf("ParseAuth(%q) = %v, want PROTOCOL_ERROR", bad, err)
		}
	}
	if _, err := wire.ParseAuth([]byte(`{"version":"one"}`)); err == nil {
		t.Fatal("auth with string version accepted")
	}
}

// Frame.String renders the header: type, id, flags when set, length.
func TestFrameString(t *testing.T) {
	if s := (wire.Frame{Type: wire.FramePing, ID: 1, Payload: []byte("hi")}).String(); s != "PING id=1 len=2" {
		t.Fatalf("PING: %q", s)
	}
	if s := (wire.Frame{Type: wire.FrameResponse, Flags: wire.FlagStream, ID: 5}).String(); s != "RESPONSE id=5 flags=0x0001 len=0" {
		t.Fatalf("stream RESPONSE: %q", s)
	}
}

// Every op, code and frame type has a name of its own, and the tables of
// PROTOCOL.md (§2.1, §6) give each code and frame type that name.
func TestOpsAndCodesHaveNames(t *testing.T) {
	spec, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, op := range wire.Ops() {
		name := op.String()
		if strings.HasPrefix(name, "op.") || seen[name] {
			t.Errorf("op %d has name %q", op, name)
		}
		seen[name] = true
	}
	if got := wire.Op(999).String(); got != "op.999" {
		t.Errorf("unknown op named %q", got)
	}
	for _, c := range allCodes {
		if row := fmt.Sprintf("| %d | %s |", c, c); !bytes.Contains(spec, []byte(row)) {
			t.Errorf("PROTOCOL.md §6 has no row %q", row)
		}
		if c.Fatal() != (c >= 100) {
			t.Errorf("%s: Fatal() = %v", c, c.Fatal())
		}
	}
	if got := wire.Code(11).String(); got != "CODE_11" {
		t.Errorf("unknown code named %q", got)
	}
	for ft := wire.FrameHello; ft <= wire.FrameFatal; ft++ {
		if row := fmt.Sprintf("| %d | %s |", ft, ft); !bytes.Contains(spec, []byte(row)) {
			t.Errorf("PROTOCOL.md §2.1 has no row %q", row)
		}
	}
	if got := wire.FrameType(13).String(); got != "FRAME_13" {
		t.Errorf("unknown frame type named %q", got)
	}
}

var allCodes = []wire.Code{
	wire.OK, wire.Canceled, wire.Unknown, wire.InvalidArgument, wire.DeadlineExceeded,
	wire.NotFound, wire.AlreadyExists, wire.PermissionDenied, wire.ResourceExhausted,
	wire.FailedPrecondition, wire.Aborted, wire.Unimplemented, wire.Internal, wire.Unavailable,
	wire.Unauthenticated, wire.ProtocolError, wire.UnsupportedVersion, wire.BadSecret,
	wire.HandshakeTimeout, wire.TooManyConnections, wire.IdleTimeout, wire.ShuttingDown,
}

// A frame announced at the limit whose payload stops after one byte costs
// about what arrived, not the announced length: a peer cannot pin a
// megabyte per connection with thirteen bytes.
func TestHalfSentFrameAllocatesWhatArrived(t *testing.T) {
	hdr := make([]byte, wire.HeaderLen)
	wire.PutHeader(hdr, wire.Header{Version: wire.Version, Type: wire.FrameRequest, ID: 1, Len: 1 << 20})
	in := io.MultiReader(bytes.NewReader(append(hdr, 'x')), iotest.ErrReader(errors.New("peer stopped")))
	fr := wire.NewFramer(in, nil)
	fr.SetMaxPayload(1 << 20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := fr.ReadFrame()
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a half-sent frame was read whole")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
		t.Fatalf("reading 1 byte of an announced 1 MiB payload allocated %d bytes", got)
	}

	// A whole frame of that size still reads, byte for byte.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	var buf bytes.Buffer
	buf.Write(wire.AppendFrame(nil, wire.Frame{Type: wire.FrameRequest, ID: 2, Payload: payload}))
	fr = wire.NewFramer(iotest.HalfReader(&buf), nil)
	fr.SetMaxPayload(1 << 20)
	f, err := fr.ReadFrame()
	if err != nil || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("1 MiB frame: err %v, %d bytes, equal %v", err, len(f.Payload), bytes.Equal(f.Payload, payload))
	}
}
