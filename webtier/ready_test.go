package webtier_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/store"
	"bankwire/store/storetest"
)

// A web tier whose app tier is alive but has no writable database (a
// failover in progress) is not ready, though it is alive; a load balancer
// then sends browsers to a web tier that can serve them.
func TestReadyzFollowsTheAppTiersDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := storetest.URL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	// Read-only transactions: what the app tier sees of a replica.
	pool, err := store.Open(ctx, url+sep+"default_transaction_read_only=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := startSite(t, withApp(apptiertest.WithStore(store.New(pool)), apptiertest.WithoutDemoData()))
	if p := s.browser().get("/readyz"); p.Status != http.StatusServiceUnavailable {
		t.Errorf("readyz with a read-only database: %d %s", p.Status, p.Body)
	}
	if p := s.browser().get("/healthz"); p.Status != http.StatusOK {
		t.Errorf("healthz with a read-only database: %d", p.Status)
	}
}
