package store_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

// TestUnknownDatabaseErrorsBecomeInternal: a failure the store does not
// recognise reaches the caller as ErrInternal with no database text, while
// the operator's log gets the cause.
func TestUnknownDatabaseErrorsBecomeInternal(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDatabase(t)
	var logs bytes.Buffer
	s := store.New(pool, store.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	c, _ := newCustomer(t, s, "alice")
	if _, err := pool.Exec(ctx, `ALTER TABLE payees RENAME TO payees_gone`); err != nil {
		t.Fatal(err)
	}
	_, err := s.ListPayees(ctx, c.ID)
	wantErr(t, err, store.ErrInternal)
	for _, leak := range []string{`"payees"`, "relation", "does not exist", "SQLSTATE", "42P01", "SELECT"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("error %q leaks %q", err, leak)
		}
	}
	if !strings.Contains(logs.String(), "42P01") {
		t.Fatalf("the log does not record the cause: %q", logs.String())
	}
}

func TestCanceledContext(t *testing.T) {
	s := storetest.NewStore(t)
	c, a := newCustomer(t, s, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.ListAccounts(ctx, c.ID)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ListAccounts with a canceled context: %v", err)
	}
	_, _, err = s.Transfer(ctx, store.TransferParams{CustomerID: c.ID, IdempotencyKey: "k", FromNumber: a.Number,
		ToNumber: a.Number, Amount: 1, Now: t0})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Transfer with a canceled context: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	_, err = s.CustomerByID(ctx, c.ID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CustomerByID after the deadline: %v", err)
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{"postgres://user:secret@127.0.0.1:1/db?connect_timeout=1", "not a url \x00", "postgres://%zz"} {
		pool, err := store.Open(ctx, u)
		if err == nil {
			pool.Close()
			t.Fatalf("Open(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("Open error leaks the password: %v", err)
		}
	}
}
