package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"bankwire/proto/wire"
)

// frameDescriber renders the frames of a client's connections for people
// (-trace): each frame's header, then its payload by the layout of its
// type. AUTH's secret is masked. It remembers the op of each REQUEST until
// that request's terminal frame, so that the bodies of RESPONSE and EVENT
// frames, which do not say what they are, are decoded too. Request ids are
// per connection, so each frame comes with the name of its connection
// (ClientConfig.Trace's conn). Safe for concurrent use.
type frameDescriber struct {
	mu  sync.Mutex
	ops map[connID]wire.Op // guarded by mu: the requests in flight
}

type connID struct {
	conn string
	id   uint32
}

// describe renders f, a frame of connection conn.
func (d *frameDescriber) describe(conn string, f wire.Frame) string {
	k := connID{conn, f.ID}
	d.mu.Lock()
	op := d.ops[k]
	switch {
	case f.Type == wire.FrameRequest:
		if h, _, err := wire.ParseRequest(f.Payload); err == nil {
			if d.ops == nil {
				d.ops = map[connID]wire.Op{}
			}
			d.ops[k] = h.Op
		}
	case f.Type == wire.FrameError, f.Type == wire.FrameResponse && f.Flags&wire.FlagStream == 0:
		delete(d.ops, k)
	case f.Type == wire.FrameReady: // a new connection under this name: its ids start again
		maps.DeleteFunc(d.ops, func(k connID, _ wire.Op) bool { return k.conn == conn })
	}
	d.mu.Unlock()
	return f.String() + describePayload(f, op)
}

// describePayload renders f's payload by the layout of its type, or as
// text if it does not follow that layout.
func describePayload(f wire.Frame, op wire.Op) string {
	p := f.Payload
	switch f.Type {
	case wire.FrameAuth:
		if a, err := wire.ParseAuth(p); err == nil {
			return fmt.Sprintf(" version=%d client=%q secret=<%d bytes>", a.Version, a.Client, len(a.Secret))
		}
	case wire.FrameRequest:
		if h, body, err := wire.ParseRequest(p); err == nil {
			req, _, _ := wire.BodyTypes(h.Op)
			return fmt.Sprintf(" op=%s deadline_ms=%d trace=%q body=%s", h.Op, h.DeadlineMs, h.TraceID, describeBody(body, req))
		}
	case wire.FrameResponse, wire.FrameEvent:
		if op == 0 {
			return " body=" + describeBody(p, nil)
		}
		_, v, _ := wire.BodyTypes(op)
		if f.Type == wire.FrameEvent {
			v = new(wire.Event)
		}
		return fmt.Sprintf(" op=%s body=%s", op, describeBody(p, v))
	case wire.FrameError:
		if e, err := wire.ParseError(p); err == nil {
			s := fmt.Sprintf(" code=%s message=%q", e.Code, e.Message)
			if e.Field != "" {
				s += fmt.Sprintf(" field=%q", e.Field)
			}
			return s
		}
	case wire.FrameFatal:
		if e, err := wire.ParseFatal(p); err == nil {
			return fmt.Sprintf(" code=%s reason=%q", e.Code, e.Message)
		}
	case wire.FrameDrain:
		if last, err := wire.ParseDrain(p); err == nil {
			return fmt.Sprintf(" last_id=%d", last)
		}
	case wire.FramePing, wire.FramePong, wire.FrameCancel:
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
		if err := wire.Unmarshal(p, v); err != nil {
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
