package conform

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"bankwire/proto/wire"
)

// The checker reads and writes frames itself, byte by byte as PROTOCOL.md
// §2 lays them out, so that it judges a server by what is on the wire and
// by nothing the Go implementation does. From package wire it uses only
// constants and the pure encoders and decoders of payloads (§2.2, §10).

// Frame types and flags (§2.1).
const (
	tHello    byte = 1
	tAuth     byte = 2
	tReady    byte = 3
	tRequest  byte = 4
	tResponse byte = 5
	tError    byte = 6
	tCancel   byte = 7
	tEvent    byte = 8
	tPing     byte = 9
	tPong     byte = 10
	tDrain    byte = 11
	tFatal    byte = 12

	flagStream uint16 = 1
	headerLen         = 12
)

var typeNames = map[byte]string{tHello: "HELLO", tAuth: "AUTH", tReady: "READY", tRequest: "REQUEST", tResponse: "RESPONSE",
	tError: "ERROR", tCancel: "CANCEL", tEvent: "EVENT", tPing: "PING", tPong: "PONG", tDrain: "DRAIN", tFatal: "FATAL"}

type frame struct {
	version byte
	typ     byte
	flags   uint16
	id      uint32
	payload []byte
}

func (f frame) String() string {
	name := typeNames[f.typ]
	if name == "" {
		name = fmt.Sprintf("type %d", f.typ)
	}
	s := fmt.Sprintf("%s id=%d flags=%#x len=%d", name, f.id, f.flags, len(f.payload))
	switch f.typ {
	case tError:
		if e, err := wire.ParseError(f.payload); err == nil {
			s += fmt.Sprintf(" %s %q", e.Code, e.Message)
		}
	case tFatal:
		if e, err := wire.ParseFatal(f.payload); err == nil {
			s += fmt.Sprintf(" %s %q", e.Code, e.Message)
		}
	}
	return s
}

func header(version, typ byte, flags uint16, id uint32, n uint32) []byte {
	h := make([]byte, headerLen)
	h[0], h[1] = version, typ
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint32(h[4:], id)
	binary.BigEndian.PutUint32(h[8:], n)
	return h
}

func encode(typ byte, flags uint16, id uint32, payload []byte) []byte {
	return append(header(1, typ, flags, id, uint32(len(payload))), payload...)
}

// hello is the server's greeting (§3).
type hello struct {
	Versions           []int  `json:"versions"`
	Server             string `json:"server"`
	MaxPayload         int    `json:"max_payload"`
	MaxInFlight        int    `json:"max_in_flight"`
	IdleTimeoutMs      int64  `json:"idle_timeout_ms"`
	HandshakeTimeoutMs int64  `json:"handshake_timeout_ms"`
}

// conn is one connection driven by hand.
type conn struct {
	nc     net.Conn
	br     *bufio.Reader
	hello  hello
	nextID uint32
	// pongDelay, when set, is how long the checker waits before it answers
	// the server's PINGs (to make the link look slow, §4.2).
	pongDelay time.Duration
	pongs     chan frame
}

func dial(addr string) (*conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}, nil
}

func (c *conn) close() { c.nc.Close() }

func (c *conn) write(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

func (c *conn) send(typ byte, flags uint16, id uint32, payload []byte) error {
	return c.write(encode(typ, flags, id, payload))
}

// readRaw reads one frame within timeout.
func (c *conn) readRaw(timeout time.Duration) (frame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	h := make([]byte, headerLen)
	if _, err := io.ReadFull(c.br, h); err != nil {
		return frame{}, err
	}
	f := frame{version: h[0], typ: h[1], flags: binary.BigEndian.Uint16(h[2:]), id: binary.BigEndian.Uint32(h[4:])}
	n := binary.BigEndian.Uint32(h[8:])
	if n > 16<<20 {
		return frame{}, fmt.Errorf("server sent a %d-byte payload", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, f.payload); err != nil {
		return frame{}, fmt.Errorf("frame cut short: %w", err)
	}
	if f.version != 1 {
		return f, fmt.Errorf("server sent a frame with version %d", f.version)
	}
	return f, nil
}

// read reads the next frame, answering the server's PINGs (§7.1) on the way.
func (c *conn) read(timeout time.Duration) (frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.readRaw(time.Until(deadline))
		if err != nil || f.typ != tPing {
			return f, err
		}
		pong := encode(tPong, 0, f.id, f.payload)
		if c.pongDelay > 0 {
			time.AfterFunc(c.pongDelay, func() { _ = c.write(pong) })
			continue
		}
		if err := c.write(pong); err != nil {
			return frame{}, err
		}
	}
}

// handshake reads HELLO, sends AUTH and reads READY.
func (c *conn) handshake(secret string) error {
	f, err := c.read(5 * time.Second)
	if err != nil {
		return fmt.Errorf("reading HELLO: %w", err)
	}
	if f.typ != tHello || f.id != 0 || f.flags != 0 {
		return fmt.Errorf("first frame is %s, want HELLO", f)
	}
	if err := json.Unmarshal(f.payload, &c.hello); err != nil {
		return fmt.Errorf("HELLO is not the JSON of §3: %w", err)
	}
	auth, _ := json.Marshal(map[string]any{"version": 1, "client": "bankwire-conform/1.0", "secret": secret})
	if err := c.send(tAuth, 0, 0, auth); err != nil {
		return err
	}
	f, err = c.read(5 * time.Second)
	if err != nil {
		return fmt.Errorf("reading READY: %w", err)
	}
	if f.typ != tReady {
		return fmt.Errorf("after AUTH got %s, want READY", f)
	}
	var r struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(f.payload, &r); err != nil || r.Version != 1 {
		return fmt.Errorf("READY %q is not {\"version\":1,...}", f.payload)
	}
	return nil
}

// request sends a REQUEST with the next id and returns the id.
func (c *conn) request(op wire.Op, deadlineMs uint32, body wire.Marshaler) (uint32, error) {
	c.nextID++
	var b []byte
	if body != nil {
		b = body.MarshalWire(nil)
	}
	return c.nextID, c.send(tRequest, 0, c.nextID, wire.AppendRequest(nil, wire.RequestHeader{Op: op, DeadlineMs: deadlineMs, TraceID: "conform"}, b))
}

// result is a request's terminal frame, decoded.
type result struct {
	f      frame
	err    *wire.Error // set for ERROR
	stream bool        // RESPONSE with STREAM
}

// await reads until the first RESPONSE or ERROR for id, skipping frames
// of other ids and EVENTs. A FATAL or the end of the connection is an error.
func (c *conn) await(id uint32, timeout time.Duration) (result, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			return result{}, fmt.Errorf("waiting for the answer to request %d: %w", id, err)
		}
		if f.typ == tFatal {
			return result{}, fmt.Errorf("waiting for the answer to request %d: got %s", id, f)
		}
		if f.id != id || f.typ == tEvent || f.typ == tDrain || f.typ == tPong {
			continue
		}
		switch f.typ {
		case tResponse:
			if f.flags&^flagStream != 0 {
				return result{}, fmt.Errorf("RESPONSE with unknown flags %#x", f.flags)
			}
			return result{f: f, stream: f.flags&flagStream != 0}, nil
		case tError:
			e, err := wire.ParseError(f.payload)
			if err != nil {
				return result{}, fmt.Errorf("undecodable ERROR payload: %w", err)
			}
			return result{f: f, err: e}, nil
		}
		return result{}, fmt.Errorf("unexpected %s for request %d", f, id)
	}
}

// call sends a request and decodes its RESPONSE into out (nil: Empty).
func (c *conn) call(op wire.Op, body wire.Marshaler, out wire.Unmarshaler) error {
	id, err := c.request(op, 10000, body)
	if err != nil {
		return err
	}
	r, err := c.await(id, 10*time.Second)
	if err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	if r.stream {
		return errors.New("unary answer has the STREAM flag")
	}
	if out == nil {
		if len(r.f.payload) != 0 {
			return fmt.Errorf("Empty answer with %d bytes", len(r.f.payload))
		}
		return nil
	}
	d := wire.NewDecoder(r.f.payload)
	out.UnmarshalWire(d)
	if err := d.End(); err != nil {
		return fmt.Errorf("undecodable %s answer: %w", op, err)
	}
	return nil
}

// expectFatal reads until a FATAL (skipping the frames in skip), checks its
// code, then checks that nothing follows it: the server closes (§6.2).
func (c *conn) expectFatal(code wire.Code, timeout time.Duration, skip ...byte) error {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			return fmt.Errorf("waiting for FATAL %s: %w", code, err)
		}
		if f.typ != tFatal {
			if containsByte(skip, f.typ) {
				continue
			}
			return fmt.Errorf("got %s, want FATAL %s", f, code)
		}
		e, err := wire.ParseFatal(f.payload)
		if err != nil {
			return fmt.Errorf("undecodable FATAL: %w", err)
		}
		if e.Code != code {
			return fmt.Errorf("FATAL %s %q, want %s", e.Code, e.Message, code)
		}
		if f.id != 0 {
			return fmt.Errorf("FATAL with id %d, want 0", f.id)
		}
		return c.expectEOF()
	}
}

// expectEOF checks that the server sends nothing more and closes within a
// few seconds (§6.2: FATAL is the last frame; the sender lingers at most
// 1 s).
func (c *conn) expectEOF() error {
	f, err := c.readRaw(5 * time.Second)
	if err == nil {
		return fmt.Errorf("%s after FATAL", f)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("connection still open 5 s after FATAL")
	}
	return nil // EOF or reset: closed
}

func containsByte(s []byte, b byte) bool {
	for _, x := range s {
		if x == b {
			return true
		}
	}
	return false
}
