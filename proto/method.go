package proto

import (
	"context"

	"bankwire/proto/wire"
)

// Call sends req as m's request and returns m's decoded response. Errors
// are always *wire.Error values with a Code: the server's (Handle says
// what a handler's error becomes), DEADLINE_EXCEEDED or CANCELED from ctx
// (DefaultTimeout if it has no deadline), UNAVAILABLE when no server could
// be reached or the connection was lost after the request may have
// started, INVALID_ARGUMENT, before anything is sent, when req cannot be
// encoded, is over the server's max_payload, or Resp has no wire
// encoding, and INTERNAL when the response does not decode as Resp.
func Call[Req, Resp any](ctx context.Context, c *Client, m wire.Method[Req, Resp], req Req) (Resp, error) {
	var resp Resp
	err := c.call(ctx, m.Op, req, &resp)
	return resp, err
}

// Subscribe opens m's stream with req: the server answers with a RESPONSE,
// then pushes EVENT frames, wire.Event values that the Subscription's Next
// returns, until Close, the server ends the stream, or the connection is
// lost. ctx bounds only opening it (DefaultTimeout if it has no deadline);
// errors opening it are Call's. Streams run on connections of their own,
// so open streams never take the request slots that unary calls need.
func Subscribe[Req, Resp any](ctx context.Context, c *Client, m wire.Method[Req, Resp], req Req) (*Subscription, error) {
	return c.subscribe(ctx, m.Op, req)
}

// Handle registers h for m on mux. The body is decoded as m's request type
// before h runs; a malformed one is answered INVALID_ARGUMENT "malformed
// request body" without calling h. h's response is encoded into the
// RESPONSE. An error h returns is answered as the caller may see it: a
// *wire.Error as is; the end of the request's context by its cause
// (CANCELED after a client CANCEL, DEADLINE_EXCEEDED once the deadline
// passed; on Close nothing more is written); anything else, a
// panic or a response that cannot be encoded included, is logged and
// answered INTERNAL "internal error", so internal error text never leaves
// the server. Handle panics on a nil h or a second registration of m's
// Op, which are programming errors.
func Handle[Req, Resp any](mux *Mux, m wire.Method[Req, Resp], h func(ctx context.Context, r *Request, in Req) (Resp, error)) {
	mux.add(m.Op, h == nil, handler{unary: func(ctx context.Context, r *Request) (any, error) {
		var in Req
		if err := r.decode(&in); err != nil {
			return nil, err
		}
		return h(ctx, r, in) // the server ignores the response when err != nil
	}})
}

// HandleStream registers the streaming handler h for m on mux (a
// subscription), decoding the request as Handle does. h calls s.Accept
// once to open the stream, with m's response (nil for Empty), then s.Send
// for every event, and returns when ctx is done (client CANCEL, connection
// closed, server shutdown).
//
// An error h returns before Accept is answered as Handle's are. After
// Accept the stream is always ended with one ERROR frame for its id: if
// ctx has ended, its code says why (CANCELED after a client CANCEL,
// DEADLINE_EXCEEDED, UNAVAILABLE when the server shuts down), whatever h
// returned; otherwise OK "stream ended" when h returned nil, or h's error
// mapped as Handle maps it. HandleStream panics as Handle does.
func HandleStream[Req, Resp any](mux *Mux, m wire.Method[Req, Resp], h func(ctx context.Context, r *Request, in Req, s *Stream) error) {
	mux.add(m.Op, h == nil, handler{stream: func(ctx context.Context, r *Request, s *Stream) error {
		var in Req
		if err := r.decode(&in); err != nil {
			return err
		}
		return h(ctx, r, in, s)
	}})
}
