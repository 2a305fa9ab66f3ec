package proto

import (
	"context"

	"bankwire/proto/wire"
)

// Typed operations: each function below takes an operation's descriptor
// from package wire (wire.SignIn, …), which pairs its Op with its request
// and response types, so that a value or handler of the wrong type does not
// compile.

// Call sends req as m's request and returns m's response. Errors are those
// of Client.Call: always *wire.Error values with a Code.
func Call[Req, Resp any](ctx context.Context, c *Client, m wire.Method[Req, Resp], req Req) (Resp, error) {
	var resp Resp
	err := c.Call(ctx, m.Op, req, &resp)
	return resp, err
}

// Subscribe opens m's stream with req (see Client.Subscribe). The
// subscription's events are wire.Event values.
func Subscribe[Req, Resp any](ctx context.Context, c *Client, m wire.Method[Req, Resp], req Req) (*Subscription, error) {
	return c.Subscribe(ctx, m.Op, req)
}

// Handle registers h for m on mux. The body is decoded as m's request type
// before h runs (a malformed one is answered INVALID_ARGUMENT "malformed
// request body" without calling h); h's result is answered as a
// HandlerFunc's. It panics like Mux.Handle.
func Handle[Req, Resp any](mux *Mux, m wire.Method[Req, Resp], h func(ctx context.Context, r *Request, in Req) (Resp, error)) {
	var hf HandlerFunc
	if h != nil {
		hf = func(ctx context.Context, r *Request) (any, error) {
			var in Req
			if err := r.Decode(&in); err != nil {
				return nil, err
			}
			out, err := h(ctx, r, in)
			if err != nil {
				return nil, err
			}
			return out, nil
		}
	}
	mux.Handle(m.Op, hf)
}

// HandleStream registers the streaming handler h for m on mux, decoding
// the request as Handle does.
func HandleStream[Req, Resp any](mux *Mux, m wire.Method[Req, Resp], h func(ctx context.Context, r *Request, in Req, s *Stream) error) {
	var hf StreamHandlerFunc
	if h != nil {
		hf = func(ctx context.Context, r *Request, s *Stream) error {
			var in Req
			if err := r.Decode(&in); err != nil {
				return err
			}
			return h(ctx, r, in, s)
		}
	}
	mux.HandleStream(m.Op, hf)
}
