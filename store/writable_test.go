package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestCheckWritable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := storetest.URL(t)

	pool, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(pool)
	if err := st.CheckWritable(ctx); err != nil {
		t.Fatalf("primary: %v", err)
	}

	// A standby reports transaction_read_only=on, as does a session whose
	// transactions default to read-only.
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	roPool, err := store.Open(ctx, url+sep+"default_transaction_read_only=on")
	if err != nil {
		t.Fatal(err)
	}
	defer roPool.Close()
	if err := store.New(roPool).CheckWritable(ctx); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("read-only session: %v, want ErrReadOnly", err)
	}

	pool.Close()
	if err := st.CheckWritable(ctx); err == nil || errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("closed pool: %v, want a connection error", err)
	}
}
