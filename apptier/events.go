package apptier

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
	"bankwire/store"
)

// subscriberBuffer is how many events may wait for a slow subscriber before
// it is cut off (its client reconnects and reloads; nothing waits forever).
const subscriberBuffer = 64

type subscriber struct {
	customerID int64
	sessionID  int64
	ch         chan wire.Event
	gone       chan struct{} // closed when the subscriber fell too far behind
	once       sync.Once
	ended      chan struct{} // closed when its session was revoked
	endOnce    sync.Once
	recheck    chan struct{} // signalled to re-check the session now (buffer 1)
	lost       chan struct{} // closed when events may have been missed
	lostOnce   sync.Once
}

// hub fans events out to the subscriptions open on this app-tier process.
// Events enter it from PostgreSQL's NOTIFY (see runBackground), so a transfer or a
// message committed through any replica reaches subscribers on every replica.
type hub struct {
	mu   sync.Mutex
	subs map[int64]map[*subscriber]struct{}
}

func newHub() *hub { return &hub{subs: make(map[int64]map[*subscriber]struct{})} }

func (h *hub) add(customerID, sessionID int64) *subscriber {
	s := &subscriber{customerID: customerID, sessionID: sessionID, ch: make(chan wire.Event, subscriberBuffer), gone: make(chan struct{}),
		ended: make(chan struct{}), recheck: make(chan struct{}, 1), lost: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[customerID]
	if m == nil {
		m = make(map[*subscriber]struct{})
		h.subs[customerID] = m
	}
	m[s] = struct{}{}
	return s
}

func (h *hub) remove(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.subs[s.customerID]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.subs, s.customerID)
		}
	}
}

func (h *hub) has(customerID int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[customerID]) > 0
}

func (h *hub) publish(customerID int64, ev wire.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[customerID] {
		select {
		case s.ch <- ev:
		default:
			s.once.Do(func() { close(s.gone) })
		}
	}
}

// endSessions ends the subscriptions of the given sessions of customerID.
func (h *hub) endSessions(customerID int64, sessionIDs []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[customerID] {
		if slices.Contains(sessionIDs, s.sessionID) {
			s.endOnce.Do(func() { close(s.ended) })
		}
	}
}

// recheckAll asks every subscription to re-check its session at once: after
// the listener reconnected, a revocation may have been missed.
func (h *hub) recheckAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for s := range m {
			select {
			case s.recheck <- struct{}{}:
			default:
			}
		}
	}
}

// interruptAll ends every subscription: the listener reconnected, and
// events committed while it was down are not replayed, so what the
// subscribers show may be out of date. Their clients subscribe again and
// refresh it.
func (h *hub) interruptAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for s := range m {
			s.lostOnce.Do(func() { close(s.lost) })
		}
	}
}

// runBackground listens for the database's change notifications and
// pushes them to subscribers, and applies the retention rules (see purge),
// until ctx ends. Run runs it once per App, beside the server.
func (a *App) runBackground(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	purged := make(chan struct{})
	go func() {
		defer close(purged)
		a.purgeLoop(ctx)
	}()
	listened := false
	err := a.st.Listen(ctx, func(n store.Notification) {
		a.dispatch(ctx, n, listened)
		listened = listened || n.Kind == store.NotifyReady
	})
	cancel()
	<-purged
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// dispatch handles one notification; reconnected tells a NotifyReady that
// follows a lost connection from the first one.
func (a *App) dispatch(ctx context.Context, n store.Notification, reconnected bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch n.Kind {
	case store.NotifyReady:
		// (Re)connected to the database. Events committed while the
		// listener was down are not replayed: after a reconnection every
		// open subscription ends, so that its client subscribes again and
		// reads what it shows afresh. Subscriptions that came before the
		// first LISTEN re-check their sessions (revocations may have been
		// missed).
		a.log.InfoContext(ctx, "listening for database notifications")
		a.sessions.reset()
		if reconnected {
			a.hub.interruptAll()
		} else {
			a.hub.recheckAll()
		}
	case store.NotifySession:
		a.sessions.dropCustomer(n.CustomerID, n.SessionIDs)
		a.hub.endSessions(n.CustomerID, n.SessionIDs)
	case store.NotifyBalance:
		if !a.hub.has(n.CustomerID) {
			return
		}
		acc, err := a.st.AccountByNumber(ctx, n.Account)
		if err != nil || acc.CustomerID != n.CustomerID {
			a.log.WarnContext(ctx, "balance event for unknown account", "err", err)
			return
		}
		v := accountView(acc)
		a.hub.publish(n.CustomerID, wire.Event{Kind: wire.EventBalance, Account: &v})
	case store.NotifyChat:
		interested := false
		for _, id := range n.CustomerIDs {
			interested = interested || a.hub.has(id)
		}
		if !interested {
			return
		}
		m, err := a.st.MessageByID(ctx, n.MessageID)
		if err != nil {
			a.log.WarnContext(ctx, "chat event for unknown message", "err", err)
			return
		}
		v, err := a.messageView(ctx, m, nil)
		if err != nil {
			return
		}
		for _, id := range n.CustomerIDs {
			a.hub.publish(id, wire.Event{Kind: wire.EventChatMessage, Message: &v})
		}
	}
}

// sessionRecheck is how often an open subscription re-checks its session,
// for the ends that send no notification (the idle timeout, expiry). A
// sign-out or "sign out everywhere" ends it at once: the store announces the
// revocation (store.NotifySession) and every replica's hub ends the
// session's streams with UNAUTHENTICATED.
const sessionRecheck = 30 * time.Second

func (a *App) subscribe(ctx context.Context, in wire.SessionRequest, st *proto.Stream) error {
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return err
	}
	sub := a.hub.add(s.CustomerID, s.ID)
	defer a.hub.remove(sub)
	// A revocation announced between authenticate and add found no
	// subscriber to end: look once more now that one is registered.
	if _, err := a.liveSession(ctx, in.Session); err != nil {
		return err
	}
	if err := st.Accept(wire.Empty{}); err != nil {
		return err
	}
	tick := time.NewTicker(sessionRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.gone:
			return wire.Errorf(wire.ResourceExhausted, "Too many events were waiting; subscribe again.")
		case <-sub.ended:
			return errSession
		case <-sub.lost:
			return wire.Errorf(wire.Unavailable, "Live updates were interrupted; subscribe again.")
		case ev := <-sub.ch:
			if err := st.Send(ev); err != nil {
				return err
			}
		case <-sub.recheck:
			if _, err := a.liveSession(ctx, in.Session); err != nil {
				return err
			}
		case <-tick.C:
			// Re-check without extending the idle window: an open live page
			// must not keep a session alive by itself.
			if _, err := a.liveSession(ctx, in.Session); err != nil {
				return err
			}
		}
	}
}
