package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

// TestListenDeliversCommittedEvents: balance and chat events arrive after
// commit, across connections (as they would across app-tier replicas), and
// Listen stops when its context ends.
func TestListenDeliversCommittedEvents(t *testing.T) {
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	listener := store.New(pool) // a second Store, as another replica would have
	alice, a := newCustomer(t, s, "alice")
	bob, b := newCustomer(t, s, "bob")

	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan store.Notification, 100)
	stopped := make(chan error, 1)
	go func() {
		stopped <- listener.Listen(ctx, func(n store.Notification) { events <- n })
	}()
	next := func() store.Notification {
		t.Helper()
		select {
		case n := <-events:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("no notification within 10s")
			return store.Notification{}
		}
	}
	if n := next(); n.Kind != store.NotifyReady {
		t.Fatalf("first notification = %+v, want ready", n)
	}

	fund(t, s, a.Number, 500)
	if n := next(); n.Kind != store.NotifyBalance || n.CustomerID != alice.ID || n.Account != a.Number || n.TransferID == 0 {
		t.Fatalf("deposit notification = %+v", n) // the external side is not announced
	}
	if _, _, err := s.Transfer(context.Background(), store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "k",
		FromNumber: a.Number, ToNumber: b.Number, Amount: 200, Now: t0}); err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for range 2 {
		n := next()
		got[n.CustomerID] = n.Account
	}
	if got[alice.ID] != a.Number || got[bob.ID] != b.Number {
		t.Fatalf("transfer notifications = %v", got)
	}
	// A failed transfer announces nothing.
	_, _, err := s.Transfer(context.Background(), store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "k2",
		FromNumber: a.Number, ToNumber: b.Number, Amount: 10_000, Now: t0})
	wantErr(t, err, store.ErrInsufficientFunds)

	c, err := s.OpenConversation(context.Background(), alice.ID, bob.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.AddMessage(context.Background(), c.ID, bob.ID, "hello", t0)
	if err != nil {
		t.Fatal(err)
	}
	n := next()
	if n.Kind != store.NotifyChat || n.MessageID != m.ID || n.ConversationID != c.ID || n.SenderID != bob.ID ||
		!slices.Equal(n.CustomerIDs, []int64{c.MemberA, c.MemberB}) {
		t.Fatalf("chat notification = %+v", n)
	}

	cancel()
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Listen returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after cancel")
	}
}

// TestListenReconnects: when the server ends the listening session, Listen
// dials again and says so with another ready notification.
func TestListenReconnects(t *testing.T) {
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	_, a := newCustomer(t, s, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan store.Notification, 100)
	go func() { _ = s.Listen(ctx, func(n store.Notification) { events <- n }) }()
	wait := func(kind string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case n := <-events:
				if n.Kind == kind {
					return
				}
			case <-deadline:
				t.Fatalf("no %s notification within 15s", kind)
			}
		}
	}
	wait(store.NotifyReady)
	if _, err := pool.Exec(context.Background(), `
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		 WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	wait(store.NotifyReady)
	fund(t, s, a.Number, 1)
	wait(store.NotifyBalance)
}

// TestListenManyEntriesInOneStatement: a statement that inserts more ledger
// entries than one notification carries is announced in several, and
// Listen hands every entry on, once.
func TestListenManyEntriesInOneStatement(t *testing.T) {
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	alice, a := newCustomer(t, s, "alice")
	_, b := newCustomer(t, s, "bob")
	fund(t, s, a.Number, 10_000)
	if _, _, err := s.Transfer(context.Background(), store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "first",
		FromNumber: a.Number, ToNumber: b.Number, Amount: 1, Now: t0}); err != nil {
		t.Fatal(err)
	}
	from, err := s.AccountByNumber(context.Background(), a.Number)
	must(t, err)
	to, err := s.AccountByNumber(context.Background(), b.Number)
	must(t, err)

	next, events := listening(t, s, 1000)
	const transfers = 60 // 120 entries: more than two notifications' worth
	addHistory(t, pool, alice.ID, from, to, transfers, t0)
	seen := map[string]bool{}
	for range 2 * transfers {
		n := next()
		key := fmt.Sprint(n.Account, "/", n.TransferID)
		if n.Kind != store.NotifyBalance || n.TransferID == 0 || seen[key] {
			t.Fatalf("notification %+v (seen before: %v)", n, seen[key])
		}
		if (n.Account == a.Number) != (n.CustomerID == alice.ID) || (n.Account != a.Number && n.Account != b.Number) {
			t.Fatalf("notification %+v names the wrong owner", n)
		}
		seen[key] = true
	}
	select {
	case n := <-events:
		t.Fatalf("extra notification %+v", n)
	case <-time.After(200 * time.Millisecond):
	}
}

// "Sign out everywhere" for a customer with more sessions than one
// notification can name (PostgreSQL refuses payloads of 8000 bytes or
// more) succeeds, and every revoked session is announced once.
func TestRevokeManySessionsIsAnnounced(t *testing.T) {
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	alice, _ := newCustomer(t, s, "alice")
	const sessions = 2000 // about 10,000 bytes of ids
	if _, err := pool.Exec(context.Background(), `
		INSERT INTO sessions (token_hash, customer_id, created_at, last_seen_at, expires_at)
		SELECT sha256(i::text::bytea), $1, $2, $2, $2::timestamptz + interval '1 hour'
		  FROM generate_series(1, $3) i`, alice.ID, t0, sessions); err != nil {
		t.Fatal(err)
	}
	next, _ := listening(t, s, 100)
	if err := s.RevokeAllSessions(context.Background(), alice.ID, t0); err != nil {
		t.Fatalf("revoke %d sessions: %v", sessions, err)
	}
	seen := map[int64]bool{}
	for len(seen) < sessions {
		n := next()
		if n.Kind != store.NotifySession || n.CustomerID != alice.ID || len(n.SessionIDs) == 0 {
			t.Fatalf("notification %+v", n)
		}
		for _, id := range n.SessionIDs {
			if seen[id] {
				t.Fatalf("session %d announced twice", id)
			}
			seen[id] = true
		}
	}
}

// listening starts Listen on s until the test ends, waits for its ready
// notification, and returns a reader of the notifications that follow
// (failing the test if none comes within 15 s of the start) and their
// channel.
func listening(t *testing.T, s *store.Store, buffer int) (next func() store.Notification, events chan store.Notification) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events = make(chan store.Notification, buffer)
	go func() { _ = s.Listen(ctx, func(n store.Notification) { events <- n }) }()
	deadline := time.After(15 * time.Second)
	next = func() store.Notification {
		t.Helper()
		select {
		case n := <-events:
			return n
		case <-deadline:
			t.Fatal("notifications missing after 15s")
			return store.Notification{}
		}
	}
	if n := next(); n.Kind != store.NotifyReady {
		t.Fatalf("first notification = %+v, want ready", n)
	}
	return next, events
}
