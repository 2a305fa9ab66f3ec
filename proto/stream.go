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
	c   *serverConn
	req *Request
	ctx context.Context

	mu       sync.Mutex
	accepted bool
	ended    bool
}

// errStreamState is returned when Accept or Send are called out of order.
var errStreamState = errors.New("proto: stream not open")

// Accept sends the RESPONSE (v in the wire encoding; nil is Empty) that opens the
// stream. It may be called once, before any Send.
func (s *Stream) Accept(v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accepted || s.ended {
		return errStreamState
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if code := s.c.writeResult(s.ctx, s.req, wire.FrameResponse, wire.FlagStream, v); code != wire.OK {
		s.ended = true
		return &wire.Error{Code: code, Message: "stream could not be opened"}
	}
	s.accepted = true
	return nil
}

// Send sends one EVENT frame with v in the wire encoding. It fails once the
// stream's context is done (client CANCEL, connection lost, shutdown) or a
// write failed; a handler should then return.
func (s *Stream) Send(v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.accepted || s.ended {
		return errStreamState
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if code := s.c.writeResult(s.ctx, s.req, wire.FrameEvent, 0, v); code != wire.OK {
		s.ended = true
		return &wire.Error{Code: code, Message: "event could not be sent"}
	}
	return nil
}

// end marks the stream finished and reports whether it had been accepted.
func (s *Stream) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	return s.accepted
}

func (c *serverConn) runStream(ctx context.Context, cancel context.CancelCauseFunc, req *Request, h StreamHandlerFunc) {
	defer c.handlersWG.Done()
	start := time.Now()
	st := &Stream{c: c, req: req, ctx: ctx}
	err := c.callStream(ctx, req, st, h)
	accepted := st.end()
	c.release(req.ID)
	var code wire.Code
	switch {
	case ctx.Err() != nil && (accepted || err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The stream's context ended: why it ended decides the terminal
		// code (PROTOCOL.md §5), whatever the handler returned on the way
		// out (a handler typically returns nil on ctx.Done()).
		code = c.writeError(ctx, req, endedError(ctx))
	case !accepted && err == nil:
		// The handler finished without opening the stream: an empty,
		// already-ended result.
		code = c.writeResult(ctx, req, wire.FrameResponse, 0, nil)
	case err == nil:
		code = wire.OK
		_ = c.w.write(wire.FrameError, 0, req.ID, wire.AppendError(nil, &wire.Error{Code: wire.OK, Message: "stream ended"}))
	default:
		code = c.writeError(ctx, req, err)
	}
	cancel(nil)
	c.finish(req, code, time.Since(start))
}

func (c *serverConn) callStream(ctx context.Context, req *Request, st *Stream, h StreamHandlerFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.logPanic(ctx, req, p)
			err = &wire.Error{Code: wire.Internal, Message: "internal error"}
		}
	}()
	return h(ctx, req, st)
}

// endedError is the terminal error of a request whose context ended, by
// the cause: the client's CANCEL, the request's deadline, or the server
// draining or closing (the connection closing ends it the same way, but
// then nothing can be written anyway).
func endedError(ctx context.Context) *wire.Error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errClientCancel):
		return &wire.Error{Code: wire.Canceled, Message: "canceled"}
	case cause == context.DeadlineExceeded:
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	default:
		return &wire.Error{Code: wire.Unavailable, Message: "server shutting down"}
	}
}
