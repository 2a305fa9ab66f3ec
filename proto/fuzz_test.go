package proto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"bankwire/proto"
)

// FuzzReadFrame feeds arbitrary bytes to the frame decoder and every payload
// parser. The decoder must never panic, must reject lengths over its limit
// before reading them, and every frame it accepts must re-encode to exactly
// the bytes it consumed. Seeds: testdata/fuzz/FuzzReadFrame.
//
//	go test ./proto -run '^$' -fuzz FuzzReadFrame -fuzztime 2m -parallel 1
func FuzzReadFrame(f *testing.F) {
	f.Add(proto.AppendFrame(nil, proto.Frame{Type: proto.FramePing, ID: 1, Payload: []byte("x")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 4096
		r := bytes.NewReader(data)
		fr := proto.NewFramer(r, nil)
		fr.SetMaxPayload(limit)
		consumed := 0
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				var e *proto.Error
				if errors.As(err, &e) && !e.Code.Fatal() {
					t.Fatalf("decoder error with non-fatal code: %v", err)
				}
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &e) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if len(f.Payload) > limit {
				t.Fatalf("accepted a %d-byte payload over the %d limit", len(f.Payload), limit)
			}
			enc := proto.AppendFrame(nil, f)
			if !bytes.Equal(enc, data[consumed:consumed+len(enc)]) {
				t.Fatalf("frame re-encodes differently:\n got % x\nwant % x", enc, data[consumed:consumed+len(enc)])
			}
			consumed += len(enc)
			_ = proto.DescribeFrame(f)
			checkPayloadParsers(t, f.Payload)
		}
	})
}

// checkPayloadParsers runs every payload parser on p and checks that what
// they accept survives an encode/decode round trip.
func checkPayloadParsers(t *testing.T, p []byte) {
	if h, body, err := proto.ParseRequest(p); err == nil {
		if got := proto.AppendRequest(nil, h, body); !bytes.Equal(got, p) {
			t.Fatalf("request prefix round trip: % x != % x", got, p)
		}
	}
	if e, err := proto.ParseError(p); err == nil {
		e2, err := proto.ParseError(proto.AppendError(nil, e))
		if err != nil || *e2 != *e {
			t.Fatalf("error payload round trip: %+v -> %+v, %v", e, e2, err)
		}
	}
	if e, err := proto.ParseFatal(p); err == nil {
		e2, err := proto.ParseFatal(proto.AppendFatal(nil, e.Code, e.Message))
		if err != nil || *e2 != *e {
			t.Fatalf("fatal payload round trip: %+v -> %+v, %v", e, e2, err)
		}
	}
	if last, err := proto.ParseDrain(p); err == nil && !bytes.Equal(proto.AppendDrain(nil, last), p) {
		t.Fatalf("drain round trip")
	}
	_, _ = proto.ParseHello(p)
	_, _ = proto.ParseAuth(p)
}

// FuzzHandshake sends arbitrary bytes as a client's opening to a real
// server. Whatever arrives, the server must answer with frames (HELLO
// first, at most a FATAL or READY after), close the connection, stay
// healthy, and say READY only to a well-formed AUTH with version 1 and the
// right secret. Seeds: testdata/fuzz/FuzzHandshake.
//
//	go test ./proto -run '^$' -fuzz FuzzHandshake -fuzztime 2m -parallel 1
func FuzzHandshake(f *testing.F) {
	good, _ := json.Marshal(proto.Auth{Version: 1, Client: "fuzz", Secret: testSecret})
	f.Add(proto.AppendFrame(nil, proto.Frame{Type: proto.FrameAuth, Payload: good}))
	// Logs are discarded: the fuzz engine forbids f.Log inside the target.
	srv := startServer(f, proto.ServerConfig{HandshakeTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second, ReadTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, newFixture().mux())
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(data); err != nil && !isReset(err) {
			t.Fatal(err)
		}
		_ = nc.(*net.TCPConn).CloseWrite()

		fr := proto.NewFramer(nc, nil)
		first, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no HELLO: %v", err)
		}
		if first.Type != proto.FrameHello {
			t.Fatalf("first frame %s", proto.DescribeFrame(first))
		}
		sawReady := false
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				if errors.Is(err, io.EOF) || isReset(err) {
					break
				}
				t.Fatalf("server output after HELLO is not frames: %v", err)
			}
			switch fm.Type {
			case proto.FrameReady:
				sawReady = true
			case proto.FrameFatal:
				if _, err := proto.ParseFatal(fm.Payload); err != nil {
					t.Fatalf("undecodable FATAL: %v", err)
				}
			case proto.FrameResponse, proto.FrameError, proto.FramePong, proto.FrameEvent, proto.FrameDrain:
				if !sawReady {
					t.Fatalf("%s before READY", fm.Type)
				}
			default:
				t.Fatalf("server sent %s", proto.DescribeFrame(fm))
			}
		}
		if sawReady != validAuth(data) {
			t.Fatalf("READY=%v for input % x", sawReady, data)
		}
	})
}

// validAuth reports whether data starts with an AUTH frame the server must
// accept.
func validAuth(data []byte) bool {
	fr := proto.NewFramer(bytes.NewReader(data), nil)
	fr.SetMaxPayload(4096)
	f, err := fr.ReadFrame()
	if err != nil || f.Type != proto.FrameAuth {
		return false
	}
	a, err := proto.ParseAuth(f.Payload)
	return err == nil && a.Version == proto.Version && a.Secret == testSecret
}

// FuzzRequestDecode checks strict body decoding against encoding/json set
// up the same way (unknown fields disallowed, one value): it must never be
// more lenient. A body it accepts, encoding/json accepts too, with the same
// result; a body encoding/json rejects, it rejects. (It may reject what
// encoding/json accepts: duplicate or case-folded names, invalid UTF-8.)
//
//	go test ./proto -run '^$' -fuzz FuzzRequestDecode -fuzztime 2m -parallel 1
func FuzzRequestDecode(f *testing.F) {
	for _, s := range []string{`{"n":1,"text":"a"}`, `{"n":2,"extra":1}`, `{"n":3} {"n":4}`, `{"text":"\u00e9"`, ``, ` `, `null`, `[1]`, `{"n":1e400}`, `{"n":1,"n":2}`, `{"N":1}`, "{\"text\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got, fresh echoMsg
		perr := (&proto.Request{Payload: body}).Decode(&got)
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		ferr := dec.Decode(&fresh)
		if ferr == nil {
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				ferr = errors.New("trailing data")
			}
		}
		if len(bytes.TrimSpace(body)) == 0 {
			ferr, fresh = nil, echoMsg{} // an empty body counts as {}
		}
		if perr == nil && (ferr != nil || got != fresh) {
			t.Fatalf("body %q: accepted as %+v; encoding/json gave %+v, %v", body, got, fresh, ferr)
		}
		if perr != nil && proto.ErrorCode(perr) != proto.InvalidArgument {
			t.Fatalf("body %q: %v, want INVALID_ARGUMENT", body, perr)
		}
	})
}
