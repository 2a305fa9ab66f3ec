package apptier_test

import (
	"strings"
	"testing"

	"bankwire/apptier/apptiertest"
	"bankwire/proto/wire"
	"bankwire/store"
	"bankwire/store/storetest"
)

// An app tier without a writable database is not ready, and its info (what
// a web tier's readiness asks for) says UNAVAILABLE.
func TestNotReadyWithoutWritableDatabase(t *testing.T) {
	ctx := ctxT(t)
	url := storetest.URL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	// A session whose transactions are read-only looks like a replica.
	pool, err := store.Open(ctx, url+sep+"default_transaction_read_only=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b := newBank(t, apptiertest.WithStore(store.New(pool)), apptiertest.WithoutDemoData())
	if err := b.srv.App.Ready(ctx); wire.ErrorCode(err) != wire.Unavailable {
		t.Fatalf("Ready with a read-only database: %v, want UNAVAILABLE", err)
	}
	if err := callErr(b, wire.Info, wire.InfoRequest{}); wire.ErrorCode(err) != wire.Unavailable {
		t.Fatalf("info with a read-only database: %v, want UNAVAILABLE", err)
	}

	ready := newBank(t)
	if err := ready.srv.App.Ready(ctx); err != nil {
		t.Fatalf("Ready with a writable database: %v", err)
	}
}
