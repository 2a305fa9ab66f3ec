package proto

import (
	"context"

	"bankwire/proto/wire"
)

// Typed operations. Each operation of the app tier has a descriptor in
// package wire (wire.SignIn, wire.AccountsList, …) that pairs its Op with
// its request and response types; the functions below take one, so that a
// request, a response or a handler of the wrong type is a compile error
// instead of an INVALID_ARGUMENT or INTERNAL at run time:
//
//	resp, err := proto.Call(ctx, c, wire.SignIn, wire.SignInRequest{…}) // resp is a wire.SignInResponse
//	proto.Handle(mux, wire.SignIn, func(ctx context.Context, r *proto.Request, in wire.SignInRequest) (wire.SignInResponse, error) {…})

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

// Handle registers h for m on mux. The request body is decoded as m's
// request type before h runs (a malformed body is answered INVALID_ARGUMENT
// "malformed request body" without calling h), and h's response is the
// RESPONSE unless h returns an error (see HandlerFunc). It panics like
// Mux.Handle on a nil h or a second registration of m.
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
// the request as Handle does; h opens and feeds the stream as a
// StreamHandlerFunc does.
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
