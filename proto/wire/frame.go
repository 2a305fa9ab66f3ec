package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// Version is the only protocol version this package speaks. It is carried in
// the first byte of every frame header and negotiated in the handshake.
const Version uint8 = 1

// HeaderLen is the size of the fixed frame header in bytes.
const HeaderLen = 12

// Default limits. The server announces its own values in HELLO.
const (
	DefaultMaxPayload  = 1 << 20 // bytes per frame payload
	DefaultMaxInFlight = 128     // requests per connection
	DefaultMaxConns    = 256     // connections per server

	// HandshakeMaxPayload bounds HELLO and AUTH: they are read before the
	// peer has proven anything, so they get a much smaller budget than
	// ordinary frames.
	HandshakeMaxPayload = 4096

	// MaxTraceID is the longest trace id a REQUEST can carry (its length is
	// one byte on the wire).
	MaxTraceID = 255
)

// FrameType is the second byte of the header.
type FrameType uint8

// Frame types (PROTOCOL.md §2.1). The numbers are part of the wire format;
// a type's name there is its Go name without Frame (String, generated).
const (
	FrameHello    FrameType = 1  // server → client greeting, first frame on a connection
	FrameAuth     FrameType = 2  // client → server handshake answer
	FrameReady    FrameType = 3  // server → client: handshake accepted
	FrameRequest  FrameType = 4  // client → server: one operation
	FrameResponse FrameType = 5  // server → client: success result of a request
	FrameError    FrameType = 6  // server → client: per-request error (terminal)
	FrameCancel   FrameType = 7  // client → server: cancel a request or stream
	FrameEvent    FrameType = 8  // server → client: push for an open stream
	FramePing     FrameType = 9  // either way: liveness probe
	FramePong     FrameType = 10 // answer to PING, same id and payload
	FrameDrain    FrameType = 11 // server → client: going away, last request id it will answer
	FrameFatal    FrameType = 12 // either way: connection-fatal error, sender closes
)

// FlagStream, the only flag (header bytes 2-3), on a RESPONSE means the
// request opened a stream: EVENT frames with the same id follow until a
// terminal ERROR frame.
const FlagStream uint16 = 1 << 0

// Header is the fixed 12-byte frame header, big-endian:
//
//	0      1      2      4           8           12
//	+------+------+------+-----------+-----------+
//	| ver  | type | flags| id (u32)  | len (u32) |
//	+------+------+------+-----------+-----------+
type Header struct {
	Version uint8
	Type    FrameType
	Flags   uint16
	ID      uint32
	Len     uint32
}

// Frame is one decoded frame. Payload is owned by the receiver of the Frame.
type Frame struct {
	Type    FrameType
	Flags   uint16
	ID      uint32
	Payload []byte
}

// String renders f's header for people, as in "PING id=1 len=2" (the
// terminal client's -trace decodes payloads too).
func (f Frame) String() string {
	s := fmt.Sprintf("%s id=%d", f.Type, f.ID)
	if f.Flags != 0 {
		s += fmt.Sprintf(" flags=%#04x", f.Flags)
	}
	return s + fmt.Sprintf(" len=%d", len(f.Payload))
}

// PutHeader writes h into b, which must be at least HeaderLen bytes.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderLen-1]
	b[0] = h.Version
	b[1] = byte(h.Type)
	binary.BigEndian.PutUint16(b[2:4], h.Flags)
	binary.BigEndian.PutUint32(b[4:8], h.ID)
	binary.BigEndian.PutUint32(b[8:12], h.Len)
}

// AppendFrame appends the encoding of f to dst.
func AppendFrame(dst []byte, f Frame) []byte {
	var h [HeaderLen]byte
	PutHeader(h[:], Header{Version: Version, Type: f.Type, Flags: f.Flags, ID: f.ID, Len: uint32(len(f.Payload))})
	dst = append(dst, h[:]...)
	return append(dst, f.Payload...)
}

// Framer reads and writes frames on a byte stream, like pgproto3's Frontend
// and Backend: it never allocates a payload before checking its announced
// length against the limit, and it never panics on hostile input.
type Framer struct {
	r          *bufio.Reader
	w          io.Writer
	maxPayload int
	hdr        [HeaderLen]byte
}

// NewFramer returns a Framer reading from r and writing to w with the default
// payload limit. r is wrapped in a bufio.Reader unless it already is one.
func NewFramer(r io.Reader, w io.Writer) *Framer {
	br, ok := r.(*bufio.Reader)
	if !ok && r != nil {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	return &Framer{r: br, w: w, maxPayload: DefaultMaxPayload}
}

// SetMaxPayload sets the largest payload ReadFrame accepts.
func (f *Framer) SetMaxPayload(n int) { f.maxPayload = max(n, 0) }

// Reader returns the buffered reader the Framer reads from.
func (f *Framer) Reader() *bufio.Reader { return f.r }

// ReadFrame reads one frame, checking its header (§2) before it reads the
// payload. It returns io.EOF only when the stream ended cleanly between
// frames, io.ErrUnexpectedEOF when it ended inside one, an *Error with a
// fatal code (ready for a FATAL frame) when the frame breaks the format,
// and otherwise the reader's error (for example a timeout).
func (f *Framer) ReadFrame() (Frame, error) {
	b := f.hdr[:]
	if _, err := io.ReadFull(f.r, b); err != nil {
		return Frame{}, err
	}
	fr := Frame{Type: FrameType(b[1]), Flags: binary.BigEndian.Uint16(b[2:4]), ID: binary.BigEndian.Uint32(b[4:8])}
	n := binary.BigEndian.Uint32(b[8:12])
	switch {
	case b[0] != Version:
		return Frame{}, Errorf(UnsupportedVersion, "unsupported frame version %d", b[0])
	case fr.Type < FrameHello || fr.Type > FrameFatal:
		return Frame{}, Errorf(ProtocolError, "unknown frame type %d", b[1])
	case fr.Flags&^FlagStream != 0 || fr.Flags != 0 && fr.Type != FrameResponse:
		return Frame{}, Errorf(ProtocolError, "invalid flags %#04x for %s", fr.Flags, fr.Type)
	case uint64(n) > uint64(f.maxPayload):
		return Frame{}, Errorf(ProtocolError, "payload length %d over limit %d", n, f.maxPayload)
	}
	if n > 0 {
		p, err := readPayload(f.r, int(n))
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
		fr.Payload = p
	}
	return fr, nil
}

// readPayload reads n bytes. Past 64 KiB it allocates as the bytes arrive,
// doubling, so a peer that announces a big frame and stops sending pins
// about what it sent, not the whole announced length.
func readPayload(r io.Reader, n int) ([]byte, error) {
	p := make([]byte, 0, min(n, 64<<10))
	for len(p) < n {
		if len(p) == cap(p) {
			p = slices.Grow(p, min(n-len(p), len(p)))
		}
		m, err := io.ReadFull(r, p[len(p):min(n, cap(p))])
		p = p[:len(p)+m]
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// WriteFrame writes one frame with a single Write call.
func (f *Framer) WriteFrame(fr Frame) error {
	_, err := f.w.Write(AppendFrame(make([]byte, 0, HeaderLen+len(fr.Payload)), fr))
	return err
}

// RequestHeader is the binary prefix of a REQUEST payload:
//
//	op u16 | deadline_ms u32 | trace_len u8 | trace bytes | body
type RequestHeader struct {
	Op         Op
	DeadlineMs uint32 // relative deadline in milliseconds; 0 means none
	TraceID    string
}

// requestPrefixLen is the fixed part of a REQUEST payload.
const requestPrefixLen = 7

// AppendRequest appends a REQUEST payload (prefix and body) to dst. A trace
// id longer than MaxTraceID is cut to MaxTraceID bytes.
func AppendRequest(dst []byte, h RequestHeader, body []byte) []byte {
	t := h.TraceID
	if len(t) > MaxTraceID {
		t = t[:MaxTraceID]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Op))
	dst = binary.BigEndian.AppendUint32(dst, h.DeadlineMs)
	dst = append(dst, byte(len(t)))
	dst = append(dst, t...)
	return append(dst, body...)
}

// ParseRequest splits a REQUEST payload into its prefix and body. The
// body aliases p.
func ParseRequest(p []byte) (RequestHeader, []byte, error) {
	if len(p) < requestPrefixLen {
		return RequestHeader{}, nil, Errorf(ProtocolError, "truncated request prefix")
	}
	h := RequestHeader{
		Op:         Op(binary.BigEndian.Uint16(p[0:2])),
		DeadlineMs: binary.BigEndian.Uint32(p[2:6]),
	}
	n := int(p[6])
	if len(p) < requestPrefixLen+n {
		return RequestHeader{}, nil, Errorf(ProtocolError, "truncated trace id")
	}
	h.TraceID = string(p[requestPrefixLen : requestPrefixLen+n])
	return h, p[requestPrefixLen+n:], nil
}

// AppendError appends an ERROR payload: code u16, then message and field
// as strings (§10).
func AppendError(dst []byte, e *Error) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(e.Code))
	return AppendString(AppendString(dst, e.Message), e.Field)
}

// ParseError decodes an ERROR payload.
func ParseError(p []byte) (*Error, error) {
	if len(p) < 2 {
		return nil, Errorf(ProtocolError, "truncated error payload")
	}
	d := Decoder{p: p[2:]}
	e := &Error{Code: Code(binary.BigEndian.Uint16(p)), Message: d.Text(), Field: d.Text()}
	if d.End() != nil {
		return nil, Errorf(ProtocolError, "undecodable error payload")
	}
	return e, nil
}

// AppendFatal appends a FATAL payload: code u16 then a UTF-8 reason.
func AppendFatal(dst []byte, code Code, reason string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, strings.ToValidUTF8(reason, "\uFFFD")...)
}

// ParseFatal decodes a FATAL payload into an *Error.
func ParseFatal(p []byte) (*Error, error) {
	if len(p) < 2 {
		return nil, Errorf(ProtocolError, "truncated fatal payload")
	}
	reason := p[2:]
	if !utf8.Valid(reason) {
		return nil, Errorf(ProtocolError, "fatal reason is not UTF-8")
	}
	return &Error{Code: Code(binary.BigEndian.Uint16(p[0:2])), Message: string(reason)}, nil
}

// AppendDrain appends a DRAIN payload: the last request id (u32) the server
// will answer on this connection.
func AppendDrain(dst []byte, lastID uint32) []byte {
	return binary.BigEndian.AppendUint32(dst, lastID)
}

// ParseDrain decodes a DRAIN payload.
func ParseDrain(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, Errorf(ProtocolError, "drain payload must be 4 bytes")
	}
	return binary.BigEndian.Uint32(p), nil
}

// MaxPingPayload bounds PING payloads, which are echoed verbatim in PONG.
const MaxPingPayload = 64
