package wire

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
)

// DescribeFrame renders a frame for people: the terminal client's -trace
// and test failure messages. AUTH's secret is masked. A REQUEST's body is
// decoded by its op and shown as JSON; RESPONSE and EVENT bodies do not
// say what they are, so they are shown as bytes (FrameDescriber decodes
// them too).
func DescribeFrame(f Frame) string { return describe(f, 0) }

// FrameDescriber is DescribeFrame for the frames of a client's
// connections: it remembers the op of each REQUEST until that request's
// terminal frame, so it decodes RESPONSE and EVENT bodies as well. Request
// ids are per connection, so each frame comes with the name of its
// connection (ClientConfig.Trace's conn). Safe for concurrent use.
type FrameDescriber struct {
	mu  sync.Mutex
	ops map[connID]Op // guarded by mu: the requests in flight
}

type connID struct {
	conn string
	id   uint32
}

// Describe renders f, a frame of connection conn, like DescribeFrame.
func (d *FrameDescriber) Describe(conn string, f Frame) string {
	k := connID{conn, f.ID}
	d.mu.Lock()
	op := d.ops[k]
	switch {
	case f.Type == FrameRequest:
		if h, _, err := ParseRequest(f.Payload); err == nil {
			if d.ops == nil {
				d.ops = map[connID]Op{}
			}
			d.ops[k] = h.Op
		}
	case f.Type == FrameError, f.Type == FrameResponse && f.Flags&FlagStream == 0:
		delete(d.ops, k)
	case f.Type == FrameReady: // a new connection under this name: its ids start again
		maps.DeleteFunc(d.ops, func(k connID, _ Op) bool { return k.conn == conn })
	}
	d.mu.Unlock()
	return describe(f, op)
}

// describe renders f; op, when not 0, is the operation a RESPONSE or EVENT
// answers.
func describe(f Frame, op Op) string {
	s := fmt.Sprintf("%s id=%d", f.Type, f.ID)
	if f.Flags != 0 {
		s += fmt.Sprintf(" flags=%#04x", f.Flags)
	}
	return s + fmt.Sprintf(" len=%d", len(f.Payload)) + describePayload(f, op)
}

// describePayload renders f's payload by the layout of its type, or as
// text if it does not follow that layout.
func describePayload(f Frame, op Op) string {
	p := f.Payload
	switch f.Type {
	case FrameAuth:
		if a, err := ParseAuth(p); err == nil {
			return fmt.Sprintf(" version=%d client=%q secret=<%d bytes>", a.Version, a.Client, len(a.Secret))
		}
	case FrameRequest:
		if h, body, err := ParseRequest(p); err == nil {
			req, _, _ := BodyTypes(h.Op)
			return fmt.Sprintf(" op=%s deadline_ms=%d trace=%q body=%s", h.Op, h.DeadlineMs, h.TraceID, describeBody(body, req))
		}
	case FrameResponse, FrameEvent:
		if op == 0 {
			return " body=" + describeBody(p, nil)
		}
		_, v, _ := BodyTypes(op)
		if f.Type == FrameEvent {
			v = new(Event)
		}
		return fmt.Sprintf(" op=%s body=%s", op, describeBody(p, v))
	case FrameError:
		if e, err := ParseError(p); err == nil {
			s := fmt.Sprintf(" code=%s message=%q", e.Code, e.Message)
			if e.Field != "" {
				s += fmt.Sprintf(" field=%q", e.Field)
			}
			return s
		}
	case FrameFatal:
		if e, err := ParseFatal(p); err == nil {
			return fmt.Sprintf(" code=%s reason=%q", e.Code, e.Message)
		}
	case FrameDrain:
		if last, err := ParseDrain(p); err == nil {
			return fmt.Sprintf(" last_id=%d", last)
		}
	case FramePing, FramePong, FrameCancel:
		if len(p) > 0 {
			return fmt.Sprintf(" payload=%x", p)
		}
	}
	if len(p) == 0 {
		return ""
	}
	return " body=" + clip(p)
}

// describeBody renders a body decoded as v, in JSON, or as (at most 256 of)
// its bytes when v is nil or the body does not decode.
func describeBody(p []byte, v any) string {
	why := ""
	if v != nil {
		if err := Unmarshal(p, v); err != nil {
			why = ", undecodable: " + err.Error()
		} else if b, err := json.Marshal(v); err == nil { // fails for a year past 9999
			return clip(b)
		}
	}
	return fmt.Sprintf("<%d bytes%s> %x", len(p), why, p[:min(len(p), 256)])
}

// clip shortens text to 512 bytes for display, quoting it if it is not
// printable.
func clip(p []byte) string {
	const max = 512
	s, more := string(p[:min(len(p), max)]), ""
	if len(p) > max {
		more = "…(+" + strconv.Itoa(len(p)-max) + " bytes)"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xFFFD }) {
		s = strconv.Quote(s)
	}
	return s + more
}
