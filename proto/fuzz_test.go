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
	"bankwire/proto/wire"
)

// FuzzHandshake sends arbitrary bytes as a client's opening to a real
// server. Whatever arrives, the server must answer with frames (HELLO
// first, at most a FATAL or READY after), close the connection, stay
// healthy, and say READY only to a well-formed AUTH with version 1 and the
// right secret. Seeds: testdata/fuzz/FuzzHandshake.
//
//	go test ./proto -run '^$' -fuzz FuzzHandshake -fuzztime 2m -parallel 1
func FuzzHandshake(f *testing.F) {
	good, _ := json.Marshal(wire.Auth{Version: 1, Client: "fuzz", Secret: testSecret})
	f.Add(wire.AppendFrame(nil, wire.Frame{Type: wire.FrameAuth, Payload: good}))
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

		fr := wire.NewFramer(nc, nil)
		first, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no HELLO: %v", err)
		}
		if first.Type != wire.FrameHello {
			t.Fatalf("first frame %s", first)
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
			case wire.FrameReady:
				sawReady = true
			case wire.FrameFatal:
				if _, err := wire.ParseFatal(fm.Payload); err != nil {
					t.Fatalf("undecodable FATAL: %v", err)
				}
			case wire.FrameResponse, wire.FrameError, wire.FramePong, wire.FramePing, wire.FrameEvent, wire.FrameDrain:
				if !sawReady {
					t.Fatalf("%s before READY", fm.Type)
				}
			default:
				t.Fatalf("server sent %s", fm)
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
	fr := wire.NewFramer(bytes.NewReader(data), nil)
	fr.SetMaxPayload(4096)
	f, err := fr.ReadFrame()
	if err != nil || f.Type != wire.FrameAuth {
		return false
	}
	a, err := wire.ParseAuth(f.Payload)
	return err == nil && a.Version == wire.Version && a.Secret == testSecret
}
