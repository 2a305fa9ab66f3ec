package proto

import (
	"context"
	"errors"
	"sync"
	"time"

	"bankwire/proto/wire"
)

// Stream is the server side of a streaming request (a subscription): one
// RESPONSE opens it, EVENT frames with the request's id follow, and one
// ERROR frame ends it. Accept and Send may be called from any goroutine;
// they must not be called after the handler returned.
type Stream struct {
	c *serverConn
	r *serverReq

	mu       sync.Mutex // guards the fields below and orders Accept and Send
	accepted bool
	ended    bool
	failed   wire.Code // why a frame could not be sent, which ends the stream: INTERNAL (not encodable) or UNAVAILABLE (the connection is closing)
}

// errStreamState is returned when Accept or Send are called out of order.
var errStreamState = errors.New("proto: stream not open")

// Accept sends the RESPONSE (v in the wire encoding; nil is Empty) that
// opens the stream. It may be called once, before any Send.
func (s *Stream) Accept(v any) error {
	return s.send(false, wire.FrameResponse, wire.FlagStream, v, "stream could not be opened")
}

// Send sends one EVENT frame with v in the wire encoding. It fails once the
// stream's context is done (client CANCEL, connection lost, shutdown), a
// write failed, or v could not be encoded (the stream then ends INTERNAL,
// whatever the handler returns); a handler should then return.
func (s *Stream) Send(v any) error {
	return s.send(true, wire.FrameEvent, 0, v, "event could not be sent")
}

// send writes the RESPONSE that opens the stream (afterAccept false) or
// an EVENT on the open stream (afterAccept true).
func (s *Stream) send(afterAccept bool, t wire.FrameType, flags uint16, v any, failure string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accepted != afterAccept || s.ended {
		return errStreamState
	}
	if err := s.r.ctx.Err(); err != nil {
		return err
	}
	if code := s.c.writeResult(s.r, t, flags, v); code != wire.OK {
		s.ended = true
		s.failed = code
		return errors.New("proto: " + failure + ": " + code.String()) // runStream answers by s.failed
	}
	s.accepted = true
	return nil
}

// runStream runs a streaming request's handler and writes its terminal
// frame.
func (c *serverConn) runStream(r *serverReq) {
	start := time.Now()
	st := &Stream{c: c, r: r}
	err := func() (err error) {
		defer c.recoverHandler(r, &err)
		return r.stream(r.ctx, &r.Request, st)
	}()
	st.mu.Lock()
	st.ended = true
	accepted, failed := st.accepted, st.failed
	st.mu.Unlock()
	c.answering(r)
	var code wire.Code
	switch {
	case r.ctx.Err() != nil && (accepted || err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// Why the context ended decides the terminal code (PROTOCOL.md §5),
		// whatever the handler returned on the way out.
		code = c.writeError(r, endedError(r.ctx))
	case failed == wire.Internal:
		code = c.writeError(r, &wire.Error{Code: wire.Internal, Message: "internal error"})
	case failed == wire.Unavailable: // not a fault of the server's: the connection is closing (FATAL sent, write failed)
		code = c.writeError(r, &wire.Error{Code: wire.Unavailable, Message: "connection closing"})
	case !accepted && err == nil: // never opened: an empty, already ended result
		code = c.writeResult(r, wire.FrameResponse, 0, nil)
	case err == nil:
		code = wire.OK
		c.writeTerminalError(r, &wire.Error{Code: wire.OK, Message: "stream ended"})
	default:
		code = c.writeError(r, err)
	}
	c.finish(r, code, time.Since(start))
}
