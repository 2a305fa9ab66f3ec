package proto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
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
			case proto.FrameResponse, proto.FrameError, proto.FramePong, proto.FramePing, proto.FrameEvent, proto.FrameDrain:
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

// FuzzBodyDecode feeds arbitrary bytes to the body decoder of the types
// that together use every form of PROTOCOL.md §10 (the first byte picks
// the type). It must never panic; a body it rejects is an INVALID_ARGUMENT
// for Request.Decode; a body it accepts re-encodes to exactly the same
// bytes (one value, one encoding), and the reflection reader that follows
// the spec (specRead) reads the same value from it.
//
//	go test ./proto -run '^$' -fuzz FuzzBodyDecode -fuzztime 2m -parallel 1
func FuzzBodyDecode(f *testing.F) {
	types := []reflect.Type{
		reflect.TypeOf(echoMsg{}), reflect.TypeOf(proto.HistoryResponse{}),
		reflect.TypeOf(proto.Event{}), reflect.TypeOf(proto.TransferResponse{}),
		reflect.TypeOf(proto.SignUpRequest{}), reflect.TypeOf(proto.ChatHistoryResponse{}),
	}
	for i, typ := range types {
		for _, flip := range []bool{false, true} {
			v := reflect.New(typ)
			seq := 0
			fill(f, v.Elem(), 0, &seq, flip)
			f.Add(append([]byte{byte(i)}, v.Elem().Interface().(proto.WireMarshaler).MarshalWire(nil)...))
		}
		f.Add(append([]byte{byte(i)}, reflect.Zero(typ).Interface().(proto.WireMarshaler).MarshalWire(nil)...))
	}
	f.Add([]byte{0, 0x80, 0x00, 0x00})
	f.Add([]byte{1, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		typ, body := types[int(data[0])%len(types)], data[1:]
		got := reflect.New(typ)
		err := (&proto.Request{Payload: body}).Decode(got.Interface())
		ref := reflect.New(typ)
		d := proto.NewDecoder(body)
		specRead(t, d, ref.Elem())
		referr := d.End()
		if (err == nil) != (referr == nil) {
			t.Fatalf("%s % x: codec says %v, the spec reader %v", typ.Name(), body, err, referr)
		}
		if err != nil {
			if proto.ErrorCode(err) != proto.InvalidArgument {
				t.Fatalf("%s % x: %v, want INVALID_ARGUMENT", typ.Name(), body, err)
			}
			return
		}
		if again := got.Elem().Interface().(proto.WireMarshaler).MarshalWire(nil); !bytes.Equal(again, body) {
			t.Fatalf("%s: % x decoded and re-encoded as % x", typ.Name(), body, again)
		}
		if !reflect.DeepEqual(got.Interface(), ref.Interface()) {
			t.Fatalf("%s % x: codec read %+v, the spec reader %+v", typ.Name(), body, got.Elem(), ref.Elem())
		}
	})
}
