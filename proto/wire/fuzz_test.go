package wire_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"bankwire/proto/wire"
)

// FuzzReadFrame feeds arbitrary bytes to the frame decoder and every payload
// parser. The decoder must never panic, must reject lengths over its limit
// before reading them, and every frame it accepts must re-encode to exactly
// the bytes it consumed. Seeds: testdata/fuzz/FuzzReadFrame.
//
//	go test ./proto/wire -run '^$' -fuzz FuzzReadFrame -fuzztime 2m -parallel 1
func FuzzReadFrame(f *testing.F) {
	f.Add(wire.AppendFrame(nil, wire.Frame{Type: wire.FramePing, ID: 1, Payload: []byte("x")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 4096
		r := bytes.NewReader(data)
		fr := wire.NewFramer(r, nil)
		fr.SetMaxPayload(limit)
		consumed := 0
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				var e *wire.Error
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
			enc := wire.AppendFrame(nil, f)
			if !bytes.Equal(enc, data[consumed:consumed+len(enc)]) {
				t.Fatalf("frame re-encodes differently:\n got % x\nwant % x", enc, data[consumed:consumed+len(enc)])
			}
			consumed += len(enc)
			_ = f
			checkPayloadParsers(t, f.Payload)
		}
	})
}

// checkPayloadParsers runs every payload parser on p and checks that what
// they accept survives an encode/decode round trip.
func checkPayloadParsers(t *testing.T, p []byte) {
	if h, body, err := wire.ParseRequest(p); err == nil {
		if got := wire.AppendRequest(nil, h, body); !bytes.Equal(got, p) {
			t.Fatalf("request prefix round trip: % x != % x", got, p)
		}
	}
	if e, err := wire.ParseError(p); err == nil {
		e2, err := wire.ParseError(wire.AppendError(nil, e))
		if err != nil || *e2 != *e {
			t.Fatalf("error payload round trip: %+v -> %+v, %v", e, e2, err)
		}
	}
	if e, err := wire.ParseFatal(p); err == nil {
		e2, err := wire.ParseFatal(wire.AppendFatal(nil, e.Code, e.Message))
		if err != nil || *e2 != *e {
			t.Fatalf("fatal payload round trip: %+v -> %+v, %v", e, e2, err)
		}
	}
	if last, err := wire.ParseDrain(p); err == nil && !bytes.Equal(wire.AppendDrain(nil, last), p) {
		t.Fatalf("drain round trip")
	}
	_, _ = wire.ParseHello(p)
	_, _ = wire.ParseAuth(p)
}

// FuzzBodyDecode feeds arbitrary bytes to the body decoder of the types
// that together use every form of PROTOCOL.md §10 (the first byte picks
// the type). It must never panic; a body it accepts re-encodes to exactly
// the same bytes (one value, one encoding), and the reflection reader that
// follows the spec (specRead) accepts exactly the same bodies and reads
// the same value from them.
//
//	go test ./proto/wire -run '^$' -fuzz FuzzBodyDecode -fuzztime 2m -parallel 1
func FuzzBodyDecode(f *testing.F) {
	types := []reflect.Type{
		reflect.TypeOf(wire.InfoResponse{}), reflect.TypeOf(wire.HistoryResponse{}),
		reflect.TypeOf(wire.Event{}), reflect.TypeOf(wire.TransferResponse{}),
		reflect.TypeOf(wire.SignUpRequest{}), reflect.TypeOf(wire.ChatHistoryResponse{}),
	}
	for i, typ := range types {
		for _, flip := range []bool{false, true} {
			v := reflect.New(typ)
			seq := 0
			fill(f, v.Elem(), 0, &seq, flip)
			f.Add(append([]byte{byte(i)}, v.Elem().Interface().(wire.Marshaler).MarshalWire(nil)...))
		}
		f.Add(append([]byte{byte(i)}, reflect.Zero(typ).Interface().(wire.Marshaler).MarshalWire(nil)...))
	}
	f.Add([]byte{0, 0x80, 0x00, 0x00})
	f.Add([]byte{1, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		typ, body := types[int(data[0])%len(types)], data[1:]
		got := reflect.New(typ)
		err := wire.Unmarshal(body, got.Interface())
		ref := reflect.New(typ)
		d := wire.NewDecoder(body)
		specRead(t, d, ref.Elem())
		referr := d.End()
		if (err == nil) != (referr == nil) {
			t.Fatalf("%s % x: codec says %v, the spec reader %v", typ.Name(), body, err, referr)
		}
		if err != nil {
			if errors.Is(err, wire.ErrNoEncoding) {
				t.Fatalf("%s: %v", typ.Name(), err)
			}
			return
		}
		if again := got.Elem().Interface().(wire.Marshaler).MarshalWire(nil); !bytes.Equal(again, body) {
			t.Fatalf("%s: % x decoded and re-encoded as % x", typ.Name(), body, again)
		}
		if !reflect.DeepEqual(got.Interface(), ref.Interface()) {
			t.Fatalf("%s % x: codec read %+v, the spec reader %+v", typ.Name(), body, got.Elem(), ref.Elem())
		}
	})
}
