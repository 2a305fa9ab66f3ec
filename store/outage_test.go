package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/store"
	"bankwire/store/storetest"
)

// TestOutageClassification: the one table that tells outages from bugs.
func TestOutageClassification(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"serialization failure", pg("40001"), store.ErrAborted},
		{"deadlock", pg("40P01"), store.ErrAborted},
		{"admin shutdown", pg("57P01"), store.ErrUnavailable},
		{"crash shutdown", pg("57P02"), store.ErrUnavailable},
		{"cannot connect now", pg("57P03"), store.ErrUnavailable},
		{"connection failure", pg("08006"), store.ErrUnavailable},
		{"connection does not exist", pg("08003"), store.ErrUnavailable},
		{"read-only transaction", pg("25006"), store.ErrUnavailable},
		{"too many connections", pg("53300"), store.ErrUnavailable},
		{"statement timeout", pg("57014"), store.ErrUnavailable},
		{"disk full", pg("53100"), store.ErrUnavailable},
		{"out of memory", pg("53200"), store.ErrUnavailable},
		{"I/O error", pg("58030"), store.ErrUnavailable},
		{"statement completion unknown", pg("40003"), store.ErrUnavailable},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), store.ErrUnavailable},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, store.ErrUnavailable},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), store.ErrUnavailable},
		{"closed conn", errors.New("conn closed"), store.ErrUnavailable},
		{"undefined table is a bug", pg("42P01"), nil},
		{"syntax error is a bug", pg("42601"), nil},
		{"unique violation is not an outage", pg("23505"), nil},
		{"scan error is a bug", errors.New("can't scan into dest[0]"), nil},
	} {
		if got := store.Outage(c.err); got != c.want {
			t.Errorf("%s: outage(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// TestUnreachableDatabaseIsUnavailable: with nothing listening, and with a
// database that became read-only (a standby after a failover), callers get
// ErrUnavailable, never ErrInternal.
func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	pool, err := pgxpool.New(ctx, "postgres://nobody@"+addr+"/none?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = store.New(pool).ListPayees(ctx, 1)
	wantErr(t, err, store.ErrUnavailable)

	url := storetest.URL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	ro, err := store.Open(ctx, url+sep+"default_transaction_read_only=on")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, _, err = store.New(ro).CreateCustomer(ctx, "standby", "Standby", phc, t0)
	wantErr(t, err, store.ErrUnavailable)
}

// TestResolveTransfer: a made transfer resolves as made, any number of
// times; a key with no transfer resolves as not made and is closed, so a
// late copy of the request is refused and moves nothing.
func TestResolveTransfer(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, checking := newCustomer(t, s, "alice")
	_, bobs := newCustomer(t, s, "bob")
	fund(t, s, checking.Number, 10_000)
	p := store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "k-made", FromNumber: checking.Number,
		ToNumber: bobs.Number, Amount: 1_000, Now: t0}
	made, _, err := s.Transfer(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, ok, err := s.ResolveTransfer(ctx, alice.ID, "k-made", checking.Number, t0)
		if err != nil || !ok || got.ID != made.ID {
			t.Fatalf("resolve made key: %+v %v %v, want transfer %d", got, ok, err, made.ID)
		}
	}

	for range 2 {
		_, ok, err := s.ResolveTransfer(ctx, alice.ID, "k-lost", checking.Number, t0)
		if err != nil || ok {
			t.Fatalf("resolve unused key: made=%v err=%v, want not made", ok, err)
		}
	}
	late := p
	late.IdempotencyKey = "k-lost"
	_, _, err = s.Transfer(ctx, late)
	wantErr(t, err, store.ErrKeyVoided)
	if got := balance(t, s, checking.Number); got != 9_000 {
		t.Fatalf("balance %d after one transfer of 1000 from 10000", got)
	}
	// The key is closed for this customer only.
	bob, err := s.CustomerByUsername(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	fund(t, s, bobs.Number, 500)
	if _, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: bob.ID, IdempotencyKey: "k-lost",
		FromNumber: bobs.Number, ToNumber: checking.Number, Amount: 1, Now: t0}); err != nil {
		t.Fatalf("another customer's transfer with the same key: %v", err)
	}

	_, _, err = s.ResolveTransfer(ctx, alice.ID, "k-x", bobs.Number, t0)
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.ResolveTransfer(ctx, alice.ID, "", checking.Number, t0)
	wantInputError(t, err, "idempotency_key")
}

// TestResolveRacesTransfer: a transfer and the resolution of its key, at
// the same moment, always agree: either the transfer is made and the key
// resolves as made (the same transfer), or the key resolves as not made and
// the transfer is refused. With and without a daily limit (the transfer
// takes the customer lock only with one).
func TestResolveRacesTransfer(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, checking := newCustomer(t, s, "alice")
	_, bobs := newCustomer(t, s, "bob")
	fund(t, s, checking.Number, 1_000_000)
	outcomes := map[string]int{}
	for i := range 60 {
		key := fmt.Sprintf("race-%d", i)
		p := store.TransferParams{CustomerID: alice.ID, IdempotencyKey: key, FromNumber: checking.Number,
			ToNumber: bobs.Number, Amount: 100, Now: t0}
		if i%2 == 0 {
			p.DailyLimit = 1_000_000
		}
		var (
			tr       store.Transfer
			trErr    error
			res      store.Transfer
			made     bool
			resErr   error
			start    = make(chan struct{})
			finished = make(chan struct{}, 2)
		)
		go func() { <-start; tr, _, trErr = s.Transfer(ctx, p); finished <- struct{}{} }()
		go func() {
			<-start
			res, made, resErr = s.ResolveTransfer(ctx, alice.ID, key, checking.Number, t0)
			finished <- struct{}{}
		}()
		close(start)
		<-finished
		<-finished
		if resErr != nil {
			t.Fatalf("%s: resolve: %v", key, resErr)
		}
		switch {
		case trErr == nil && made && res.ID == tr.ID:
			outcomes["made"]++
		case errors.Is(trErr, store.ErrKeyVoided) && !made:
			outcomes["not made"]++
		default:
			t.Fatalf("%s: transfer %+v, %v; resolve made=%v %+v", key, tr, trErr, made, res)
		}
	}
	t.Logf("outcomes of 60 races: %v", outcomes)
	if want := 1_000_000 - 100*int64(outcomes["made"]); balance(t, s, checking.Number) != want {
		t.Fatalf("balance %d, want %d", balance(t, s, checking.Number), want)
	}
}
