package webtier

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"

	"github.com/go-chi/chi/v5/middleware"
)

// streamWriteTimeout bounds one write to a live stream: a browser that stops
// reading must not pin the handler.
const streamWriteTimeout = 10 * time.Second

// streamRetry tells EventSource how long to wait before reconnecting after a
// stream ends (app tier restarted, web tier shutting down).
const streamRetry = 3 * time.Second

// streamEventID is the id every stream gives the browser: its only use is
// to tell a reconnection (Last-Event-ID) from a page's first stream.
const streamEventID = "live"

// tooManyStreamsText answers a stream over the per-session or per-IP cap.
const tooManyStreamsText = "Live updates are already open in several tabs or windows. " +
	"Close some of them and reload this page to get live updates here; everything else works as usual."

// balanceEvent and chatEvent are what the browser script receives: already
// formatted for display, so the script never does money arithmetic.
type balanceEvent struct {
	Number  string      `json:"number"`
	Balance string      `json:"balance"`
	Label   string      `json:"label"`
	Totals  []totalText `json:"totals,omitempty"`
}

type totalText struct {
	Currency string `json:"currency"`
	Total    string `json:"total"`
}

type chatEvent struct {
	ID             int64  `json:"id"`
	ConversationID int64  `json:"conversation_id"`
	From           string `json:"from"`
	Mine           bool   `json:"mine"`
	Body           string `json:"body"`
	At             string `json:"at"`
	Time           string `json:"time"`
}

// events streams live updates to one browser tab as Server-Sent Events,
// fed by exactly one app-tier subscription that lives as long as the
// stream. The stream ends when the tab goes away, the subscription ends or
// the server shuts down; EventSource then reconnects by itself.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	ip, _ := clientIPKey(r)
	release, ok := s.streamCaps.acquire(sess.Token, ip)
	if !ok {
		// Over the cap of this session or this client IP. EventSource
		// does not retry after a 429, so the tab stops asking; its page
		// still works by reload.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintln(w, tooManyStreamsText)
		return
	}
	defer release()
	select {
	case s.streamSlots <- struct{}{}:
		defer func() { <-s.streamSlots }()
	default:
		// Too many streams: the page still works by reload. Tell the script
		// to come back later rather than hammering.
		s.endStream(w, http.StatusOK)
		return
	}
	if s.streams.Err() != nil {
		s.endStream(w, http.StatusOK)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()
	ctx = proto.WithTraceID(ctx, middleware.GetReqID(r.Context()))

	subCtx, subCancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	sub, err := proto.Subscribe(subCtx, s.client, wire.Subscribe, wire.SessionRequest{Session: sess.Token})
	subCancel()
	if err != nil {
		if wire.ErrorCode(err) == wire.Unauthenticated {
			s.sessions.drop(sess.Token)
			w.WriteHeader(http.StatusNoContent) // EventSource stops on 204
			return
		}
		s.log.WarnContext(r.Context(), "subscribe failed", "err", err,
			"request_id", middleware.GetReqID(r.Context()))
		s.endStream(w, http.StatusOK)
		return
	}
	defer sub.Close()

	// The overview shows totals too. The stream reads the customer's
	// accounts once, now that it is subscribed (so no change is missed in
	// between), and keeps them up to date from the balance events, which
	// carry the whole account. A call per event would cost a round trip and
	// would extend the session's idle window on the customer's behalf, so
	// money sent by others would keep an unattended page signed in.
	var known map[string]wire.Account
	if accts, err := call(s, r, wire.AccountsList, wire.SessionRequest{Session: sess.Token}); err == nil {
		known = make(map[string]wire.Account, len(accts.Accounts))
		for _, a := range accts.Accounts {
			known[a.Number] = a
		}
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // no proxy buffering of the stream
	w.WriteHeader(http.StatusOK)
	// The server's write timeout is for pages; a stream sets its own per
	// write. (Its read timeout does not end a stream: net/http ignores the
	// deadline once the request is read; TestRunAndGracefulShutdown checks.)
	write := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The id makes EventSource send Last-Event-ID when it reconnects. A
	// reconnecting page may have missed events while it had no stream (an
	// app tier restarting, the database's notifications interrupted), so a
	// stream that comes with that header starts with every account's
	// current balance.
	if !write("retry: %d\nid: %s\n: connected\n\n", streamRetry.Milliseconds(), streamEventID) {
		return
	}
	if r.Header.Get("Last-Event-ID") != "" && known != nil {
		numbers := slices.Sorted(maps.Keys(known))
		for _, n := range numbers {
			a := known[n]
			name, data, ok := eventPayload(sess, known, wire.Event{Kind: wire.EventBalance, Account: &a})
			if ok && !write("event: %s\ndata: %s\n\n", name, data) {
				return
			}
		}
	}
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	// One goroutine reads the subscription so the loop below can also send
	// keep-alives; it ends when ctx is canceled (deferred cancel above) or
	// the subscription ends, and the channel is never left with a blocked
	// sender because of the ctx case.
	events := make(chan wire.Event)
	done := make(chan error, 1)
	go func() {
		for {
			var ev wire.Event
			if err := sub.Next(ctx, &ev); err != nil {
				done <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				done <- ctx.Err()
				return
			}
		}
	}()
	defer func() {
		cancel()
		<-done
	}()

	keepAlive := time.NewTicker(s.cfg.StreamKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-done:
			done <- err // for the deferred wait
			if wire.ErrorCode(err) == wire.Unauthenticated {
				s.sessions.drop(sess.Token)
			}
			return
		case <-keepAlive.C:
			if !write(": keep-alive\n\n") {
				return
			}
		case ev := <-events:
			name, data, ok := eventPayload(sess, known, ev)
			if !ok {
				continue
			}
			s.metrics.streamEvents.WithLabelValues(name).Inc()
			if !write("event: %s\ndata: %s\n\n", name, data) {
				return
			}
		}
	}
}

// endStream answers a stream request with an empty stream that asks the
// browser to retry later.
func (s *Server) endStream(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "retry: %d\n\n", (5 * streamRetry).Milliseconds())
}

// eventPayload formats ev for the browser. known holds the customer's
// accounts as the stream knows them (nil when it could not read them: the
// totals then wait for the next reload); a balance event updates it.
func eventPayload(sess *session, known map[string]wire.Account, ev wire.Event) (string, []byte, bool) {
	var v any
	var name string
	switch {
	case ev.Kind == wire.EventBalance && ev.Account != nil:
		a := ev.Account
		name = "balance"
		be := balanceEvent{Number: a.Number, Balance: FormatMoney(a.Balance, a.Currency), Label: kindName(a.Kind) + " " + a.Number}
		if known != nil {
			known[a.Number] = *a
			accts := make([]wire.Account, 0, len(known))
			for _, k := range known {
				accts = append(accts, k)
			}
			for _, t := range totals(accts) {
				be.Totals = append(be.Totals, totalText{Currency: t.Currency, Total: FormatMoney(t.Amount, t.Currency)})
			}
		}
		v = be
	case ev.Kind == wire.EventChatMessage && ev.Message != nil:
		m := ev.Message
		name = "chat"
		v = chatEvent{
			ID: m.ID, ConversationID: m.ConversationID, From: m.From.DisplayName,
			Mine: m.From.ID == sess.Customer.ID, Body: m.Body,
			At: m.CreatedAt.UTC().Format(time.RFC3339), Time: m.CreatedAt.UTC().Format("2 Jan 2006, 15:04 UTC"),
		}
	default:
		return "", nil, false // a kind this web tier does not know yet
	}
	// json.Marshal escapes <, > and & and never emits a newline, so the data
	// line cannot end early or smuggle another SSE field.
	b, err := json.Marshal(v)
	if err != nil {
		return "", nil, false
	}
	return name, b, true
}
