package webtier_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/apptier/apptiertest"
	"bankwire/store"
	"bankwire/store/storetest"
)

// The words of the confirm-again page, and of its "not made" answer.
const (
	confirmAgainText = "It is safe to press Confirm again"
	checkButtonText  = "Check whether it was made"
	notMadeText      = "This transfer was not made, and it will not be made"
)

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// hiddenFields returns the hidden fields of the first form of a page: what
// a browser posts when the customer presses its button.
func hiddenFields(t testing.TB, p page) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(p.Body, -1) {
		if _, dup := v[m[1]]; dup {
			break // the next form starts
		}
		v.Set(m[1], htmlUnescape(m[2]))
	}
	if v.Get("key") == "" {
		t.Fatalf("no hidden key on the page (status %d): %s", p.Status, snippet(p.Body))
	}
	return v
}

// wantConfirmAgain checks that p is the confirm-again page for key.
func wantConfirmAgain(t testing.TB, p page, key string) {
	t.Helper()
	if p.Status != http.StatusServiceUnavailable {
		t.Fatalf("outcome unknown: status %d, want 503: %s", p.Status, snippet(p.Body))
	}
	mustContain(t, p, "Check your transfer", confirmAgainText, checkButtonText, `name="key" value="`+key+`"`)
	mustNotContain(t, p, "Something went wrong", "briefly unavailable</h1>")
}

// confirmed goes through the form and the confirmation step and returns
// what the confirmation page's "Confirm and send" button posts.
func confirmed(t testing.TB, b *browser, from, to, amount string) url.Values {
	t.Helper()
	form := url.Values{"key": {b.formKey()}, "from": {from}, "to_number": {to}, "amount": {amount}, "memo": {"rent"}}
	p := b.post("/transfers/confirm", form)
	if p.Status != http.StatusOK {
		t.Fatalf("confirm: %d %s", p.Status, snippet(p.Body))
	}
	return hiddenFields(t, p)
}

// TestTransferOutcomeUnknownWithoutAppTier: with the app tier down, a
// transfer submit gets the confirm-again page, built from the form alone
// (the app tier could not have helped), also when the web tier cannot even
// check the session. Once the bank is back, "Check whether it was made"
// settles it as not made, and the lost key can no longer make it.
func TestTransferOutcomeUnknownWithoutAppTier(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	chk, sav := alice.checking(), alice.savings()
	before := balanceOf(t, s, chk)
	fields := confirmed(t, alice, chk, sav, "25.00")
	key := fields.Get("key")

	s.app.Stop()
	p := alice.post("/transfers", fields)
	wantConfirmAgain(t, p, key)
	mustContain(t, p, "$25.00", "Your savings account", "rent")
	mustNotContain(t, p, "Balance afterwards")
	if p.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	// A second web tier, whose session cache is cold, cannot check the
	// session either: still the confirm-again page, never a generic one.
	cold := startWeb(t, s.app, s.cfg)
	other := cold.browser()
	from, _ := url.Parse(s.baseURL)
	to, _ := url.Parse(cold.baseURL)
	other.jar.SetCookies(to, alice.jar.Cookies(from))
	again := hiddenFields(t, p)
	wantConfirmAgain(t, other.post("/transfers", again), key)

	s.app.Restart()
	var resolved page
	for i := 0; i < 50; i++ { // bounded: the client reconnects on its own
		if resolved = alice.post("/transfers/resolve", again); resolved.Status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resolved.Status != http.StatusOK {
		t.Fatalf("resolve: %d %s", resolved.Status, snippet(resolved.Body))
	}
	mustContain(t, resolved, notMadeText, `value="25.00"`)
	if strings.Contains(resolved.Body, key) {
		t.Error("the closed key was offered again")
	}
	// A late copy of the lost submit is refused and moves nothing.
	late := alice.post("/transfers", again)
	if late.Status != http.StatusUnprocessableEntity {
		t.Fatalf("late copy of the lost submit: %d %s", late.Status, snippet(late.Body))
	}
	mustContain(t, late, "already settled as not made")
	if got := balanceOf(t, s, chk); got != before {
		t.Fatalf("balance %d → %d: a transfer settled as not made moved money", before, got)
	}
}

// sessionKiller is a pgx tracer that, while armed, has PostgreSQL terminate
// the session of a transfer's writes from inside their transaction. A
// transfer's writes and their commit reach the server as one batch (one
// implicit transaction), so there is no moment between its last statement
// and COMMIT on the wire; instead the test holds a row lock that the batch
// needs, and the session is terminated while it waits for it, its writes
// begun and not committed.
type sessionKiller struct {
	t      testing.TB
	admin  *pgxpool.Pool
	armed  atomic.Int32 // write batches still to kill
	killed atomic.Int32
	wg     sync.WaitGroup
}

func (k *sessionKiller) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (k *sessionKiller) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData)     {}
func (k *sessionKiller) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (k *sessionKiller) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (k *sessionKiller) TraceBatchStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	writes := false
	for _, q := range d.Batch.QueuedQueries {
		writes = writes || strings.Contains(q.SQL, "INSERT INTO transfers")
	}
	if n := k.armed.Load(); writes && n > 0 && k.armed.CompareAndSwap(n, n-1) {
		pid := conn.PgConn().PID()
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			k.killWhenWaiting(pid)
		}()
	}
	return ctx
}

// killWhenWaiting terminates session pid once it waits for a lock inside a
// transaction; it gives up, failing the test, after 10 s.
func (k *sessionKiller) killWhenWaiting(pid uint32) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var waiting bool
		if err := k.admin.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			                WHERE pid = $1 AND wait_event_type = 'Lock' AND xact_start IS NOT NULL)`, int64(pid)).Scan(&waiting); err != nil {
			k.t.Errorf("watch the transfer's session: %v", err)
			return
		}
		if waiting {
			break
		}
		select {
		case <-ctx.Done():
			k.t.Errorf("the transfer's session never waited for the held lock")
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	// pg_terminate_backend with a timeout waits until the session is gone.
	var ok bool
	if err := k.admin.QueryRow(ctx, `SELECT pg_terminate_backend($1, 5000)`, int64(pid)).Scan(&ok); err != nil || !ok {
		k.t.Errorf("terminate the transfer's session: %v (ok=%v)", err, ok)
		return
	}
	k.killed.Add(1)
}

// holdAccount locks an account's row until the returned function is called.
func holdAccount(t testing.TB, ctx context.Context, admin *pgxpool.Pool, number string) (release func()) {
	t.Helper()
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE number = $1 FOR UPDATE`, number); err != nil {
		t.Fatal(err)
	}
	return func() { _ = tx.Rollback(ctx) }
}

// TestTransferSessionKilledBeforeCommit: PostgreSQL ends the transfer's
// session inside its transaction, before it commits (see sessionKiller). The customer gets the
// confirm-again page with the same key, the outcome resolves as "not made",
// and pressing Confirm again instead makes the transfer exactly once.
func TestTransferSessionKilledBeforeCommit(t *testing.T) {
	dbURL := storetest.URL(t)
	ctx := ctxTimeout(t, 30*time.Second)
	admin, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	killer := &sessionKiller{t: t, admin: admin}
	t.Cleanup(killer.wg.Wait)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = killer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool, store.WithLogger(testLogger()))
	s := startSite(t, withApp(apptiertest.WithStore(st)))
	alice := s.alice()
	chk, sav := alice.checking(), alice.savings()
	before := balanceOf(t, s, chk)

	// Killed, then resolved: not made, and the key is closed.
	fields := confirmed(t, alice, chk, sav, "10.00")
	killer.armed.Store(1)
	release := holdAccount(t, ctx, admin, chk)
	p := alice.post("/transfers", fields)
	release()
	killer.wg.Wait()
	if killer.killed.Load() != 1 {
		t.Fatalf("%d sessions killed before COMMIT, want 1", killer.killed.Load())
	}
	wantConfirmAgain(t, p, fields.Get("key"))
	if got := balanceOf(t, s, chk); got != before {
		t.Fatalf("balance %d → %d although the transaction never committed", before, got)
	}
	mustContain(t, alice.post("/transfers/resolve", hiddenFields(t, p)), notMadeText)
	if got := alice.post("/transfers", fields); got.Status != http.StatusUnprocessableEntity {
		t.Fatalf("submit after 'not made': %d %s", got.Status, snippet(got.Body))
	}

	// Killed, then confirmed again: made once; resolving says so.
	fields = confirmed(t, alice, chk, sav, "7.00")
	killer.armed.Store(1)
	release = holdAccount(t, ctx, admin, chk)
	p = alice.post("/transfers", fields)
	release()
	killer.wg.Wait()
	if killer.killed.Load() != 2 {
		t.Fatalf("%d sessions killed before COMMIT, want 2", killer.killed.Load())
	}
	wantConfirmAgain(t, p, fields.Get("key"))
	done := alice.post("/transfers", hiddenFields(t, p))
	if done.Status != http.StatusSeeOther || !strings.HasPrefix(done.Location, "/transfers/") {
		t.Fatalf("confirm again: %d %q %s", done.Status, done.Location, snippet(done.Body))
	}
	mustContain(t, alice.get(done.Location), "Transfer complete.")
	check := alice.post("/transfers/resolve", hiddenFields(t, p))
	if check.Status != http.StatusSeeOther || check.Location != done.Location {
		t.Fatalf("resolve a made transfer: %d %q, want a redirect to %s", check.Status, check.Location, done.Location)
	}
	mustContain(t, alice.get(check.Location), "Your transfer was made, once.")
	if got := balanceOf(t, s, chk); got != before-700 {
		t.Fatalf("balance %d, want %d: made exactly once", got, before-700)
	}
}
