package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// DescribeFrame renders a frame for humans: the terminal client's -trace
// output and test failure messages. Secrets in AUTH are masked. A REQUEST's
// body is decoded by its op and shown as JSON; RESPONSE and EVENT bodies
// do not say what they are, so they are shown as bytes (FrameDescriber
// remembers the op of each request and decodes them too).
func DescribeFrame(f Frame) string { return describeFrame(f, 0) }

// FrameDescriber is DescribeFrame for the frames of a client's
// connections: it remembers the op of each REQUEST it described until
// that request's terminal frame, so it can decode RESPONSE and EVENT
// bodies as well. Request ids are per connection, so frames are described
// with the name of their connection (ClientConfig.Trace's conn). Safe for
// concurrent use.
type FrameDescriber struct {
	mu  sync.Mutex
	ops map[connID]Op // requests in flight
}

type connID struct {
	conn string
	id   uint32
}

// Describe renders f, a frame of connection conn, like DescribeFrame.
func (d *FrameDescriber) Describe(conn string, f Frame) string {
	d.mu.Lock()
	var op Op
	k := connID{conn, f.ID}
	switch f.Type {
	case FrameRequest:
		if h, _, err := ParseRequest(f.Payload); err == nil {
			if d.ops == nil {
				d.ops = map[connID]Op{}
			}
			d.ops[k] = h.Op
		}
	case FrameResponse, FrameEvent:
		op = d.ops[k]
		if f.Type == FrameResponse && f.Flags&FlagStream == 0 {
			delete(d.ops, k)
		}
	case FrameError:
		delete(d.ops, k)
	case FrameReady:
		// A new connection under this name (the old one's port reused):
		// its ids start again.
		for k := range d.ops {
			if k.conn == conn {
				delete(d.ops, k)
			}
		}
	}
	d.mu.Unlock()
	return describeFrame(f, op)
}

// describeBody decodes p as the given type and renders it as JSON, or
// says why it could not.
func describeBody(p []byte, v any) string {
	if v == nil {
		return fmt.Sprintf("<%d bytes> %x", len(p), clipBytes(p))
	}
	if err := Unmarshal(p, v); err != nil {
		return fmt.Sprintf("<%d bytes, undecodable: %v> %x", len(p), err, clipBytes(p))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%d bytes> %x", len(p), clipBytes(p))
	}
	return clip(b)
}

func clipBytes(p []byte) []byte { return p[:min(len(p), 256)] }

// describeFrame renders f; op, when not 0, is the operation a RESPONSE or
// EVENT answers.
func describeFrame(f Frame, op Op) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s id=%d", f.Type, f.ID)
	if f.Flags != 0 {
		fmt.Fprintf(&b, " flags=%#04x", f.Flags)
	}
	fmt.Fprintf(&b, " len=%d", len(f.Payload))
	switch f.Type {
	case FrameAuth:
		if a, err := ParseAuth(f.Payload); err == nil {
			fmt.Fprintf(&b, " version=%d client=%q secret=<%d bytes>", a.Version, a.Client, len(a.Secret))
			return b.String()
		}
	case FrameRequest:
		if h, body, err := ParseRequest(f.Payload); err == nil {
			req, _, _ := BodyTypes(h.Op)
			fmt.Fprintf(&b, " op=%s deadline_ms=%d trace=%q body=%s", h.Op, h.DeadlineMs, h.TraceID, describeBody(body, req))
			return b.String()
		}
	case FrameResponse, FrameEvent:
		var v any
		if f.Type == FrameEvent && op != 0 {
			v = new(Event)
		} else if _, resp, ok := BodyTypes(op); ok {
			v = resp
		}
		if op != 0 {
			fmt.Fprintf(&b, " op=%s", op)
		}
		fmt.Fprintf(&b, " body=%s", describeBody(f.Payload, v))
		return b.String()
	case FrameError:
		if e, err := ParseError(f.Payload); err == nil {
			fmt.Fprintf(&b, " code=%s message=%q", e.Code, e.Message)
			if e.Field != "" {
				fmt.Fprintf(&b, " field=%q", e.Field)
			}
			return b.String()
		}
	case FrameFatal:
		if e, err := ParseFatal(f.Payload); err == nil {
			fmt.Fprintf(&b, " code=%s reason=%q", e.Code, e.Message)
			return b.String()
		}
	case FrameDrain:
		if last, err := ParseDrain(f.Payload); err == nil {
			fmt.Fprintf(&b, " last_id=%d", last)
			return b.String()
		}
	case FramePing, FramePong, FrameCancel:
		if len(f.Payload) > 0 {
			fmt.Fprintf(&b, " payload=%x", f.Payload)
		}
		return b.String()
	}
	if len(f.Payload) > 0 {
		fmt.Fprintf(&b, " body=%s", clip(f.Payload))
	}
	return b.String()
}

// clip shortens a payload for display, quoting it if it is not printable.
func clip(p []byte) string {
	const max = 512
	s := string(p)
	suffix := ""
	if len(s) > max {
		s, suffix = s[:max], "…(+"+strconv.Itoa(len(p)-max)+" bytes)"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xFFFD {
			return strconv.Quote(s) + suffix
		}
	}
	return s + suffix
}
