package store_test

import (
	"context"
	"crypto/sha256"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/store"
	"bankwire/store/storetest"
)

// sqlRecorder remembers every distinct statement the store sends, with the
// arguments of its first use.
type sqlRecorder struct {
	mu    sync.Mutex
	order []string
	args  map[string][]any
}

func (r *sqlRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.args[data.SQL]; !ok {
		r.args[data.SQL] = data.Args
		r.order = append(r.order, data.SQL)
	}
	return ctx
}

func (r *sqlRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Statements sent in a pgx.Batch reach the batch tracer, not the query one.
func (r *sqlRecorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (r *sqlRecorder) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	r.TraceQueryStart(ctx, conn, pgx.TraceQueryStartData{SQL: data.SQL, Args: data.Args})
}

func (r *sqlRecorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TestEveryQueryHasAnIndex drives every store method on demo data,
// records each statement the store sends, and EXPLAINs it with sequential
// scans disabled: a plan that still scans a table sequentially has no index
// to use, which on a real bank's data volume is an outage.
func TestEveryQueryHasAnIndex(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(storetest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := &sqlRecorder{args: map[string][]any{}}
	cfg.ConnConfig.Tracer = rec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := store.New(pool)

	if err := s.SeedDemo(ctx, store.DemoPasswords{Alice: phc, Bob: phc}, t0); err != nil {
		t.Fatal(err)
	}
	alice, err := s.CustomerByUsername(ctx, "alice")
	must(t, err)
	bob, err := s.CustomerByID(ctx, alice.ID+1)
	must(t, err)
	carol, carolChecking, err := s.CreateCustomer(ctx, "carol", "Carol", phc, t0)
	must(t, err)
	accounts, err := s.ListAccounts(ctx, alice.ID)
	must(t, err)
	bobAccounts, err := s.ListAccounts(ctx, bob.ID)
	must(t, err)
	_, err = s.AccountByNumber(ctx, accounts[0].Number)
	must(t, err)
	page, err := s.History(ctx, accounts[0].ID, store.Cursor{}, 10)
	must(t, err)
	_, err = s.History(ctx, accounts[0].ID, store.Cursor{CreatedAt: page[9].CreatedAt, ID: page[9].ID}, 10)
	must(t, err)
	p := store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "plan", FromNumber: accounts[0].Number,
		ToNumber: bobAccounts[0].Number, Amount: 100, DailyLimit: 1_000_000, Now: t0}
	tr, _, err := s.Transfer(ctx, p)
	must(t, err)
	_, _, err = s.Transfer(ctx, p) // replay
	must(t, err)
	_, err = s.TransferByID(ctx, bob.ID, tr.ID)
	must(t, err)
	eur, err := s.OpenAccount(ctx, carol.ID, store.KindSavings, "EUR", t0)
	must(t, err)
	_, err = s.Deposit(ctx, eur.Number, 100, "", t0) // opens the EUR external account
	must(t, err)
	id := alice.ID
	must(t, s.AddSignInEvent(ctx, store.SignInEvent{CustomerID: &id, Username: "alice", ClientIP: "1.2.3.4", Outcome: store.OutcomeBadPassword}))
	_, err = s.RecentFailures(ctx, "alice", "1.2.3.4", t0.Add(-time.Hour))
	must(t, err)
	_, _, err = s.RecordSignInFailure(ctx, alice.ID, t0, 5, time.Minute)
	must(t, err)
	must(t, s.RecordSignInSuccess(ctx, alice.ID, t0))
	h := sha256.Sum256([]byte("plan"))
	sess, err := s.CreateSession(ctx, h[:], alice.ID, t0, t0.Add(time.Hour), "ua", "ip")
	must(t, err)
	_, err = s.SessionByTokenHash(ctx, h[:])
	must(t, err)
	must(t, s.TouchSession(ctx, sess.ID, t0))
	must(t, s.RevokeSession(ctx, h[:], t0))
	must(t, s.RevokeAllSessions(ctx, alice.ID, t0))
	_, err = s.PurgeSessions(ctx, t0.Add(-time.Hour))
	must(t, err)
	_, err = s.PurgeSignInEvents(ctx, t0.Add(-24*time.Hour))
	must(t, err)
	payee, err := s.AddPayee(ctx, alice.ID, "Carol", carolChecking.Number, t0)
	must(t, err)
	_, err = s.RenamePayee(ctx, alice.ID, payee.ID, "Caro")
	must(t, err)
	_, err = s.ListPayees(ctx, alice.ID)
	must(t, err)
	_, _, err = s.AccountsAndPayees(ctx, alice.ID)
	must(t, err)
	must(t, s.DeletePayee(ctx, alice.ID, payee.ID))
	conv, err := s.OpenConversation(ctx, alice.ID, carol.ID, t0)
	must(t, err)
	_, err = s.ConversationForMember(ctx, conv.ID, alice.ID)
	must(t, err)
	_, err = s.ListConversations(ctx, alice.ID)
	must(t, err)
	m, err := s.AddMessage(ctx, conv.ID, alice.ID, "hi", t0)
	must(t, err)
	_, err = s.MessageByID(ctx, m.ID)
	must(t, err)
	_, err = s.Messages(ctx, conv.ID, store.Cursor{}, 10)
	must(t, err)
	_, err = s.Messages(ctx, conv.ID, store.Cursor{CreatedAt: m.CreatedAt, ID: m.ID}, 10)
	must(t, err)

	conn, err := pgx.Connect(ctx, cfg.ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Sign-in events are the one table the demo leaves nearly empty; give
	// it the shape of a real audit trail (many users, many addresses).
	if _, err := conn.Exec(ctx, `
		INSERT INTO signin_events (username, client_ip, user_agent, outcome, created_at)
		SELECT 'user' || (g % 500), '10.0.' || (g % 250) || '.' || (g % 7), 'ua', 'bad_password',
		       timestamptz '2025-01-01' + g * interval '1 minute'
		  FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	// On a few hundred rows the planner rightly prefers scanning whole
	// tables or joining by hash; switch those off so the plan shows what it
	// would do at scale: look rows up by index, or be unable to.
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off"); err != nil {
		t.Fatal(err)
	}
	// A partial index may serve a query through its predicate alone, with
	// no Index Cond; every other index scan must constrain the index's
	// leading key, or it reads the whole index (a B-tree accepts conditions
	// on later columns too, which hides a missing index).
	type indexInfo struct {
		leading string
		partial bool
	}
	indexes := map[string]indexInfo{}
	rows, err := conn.Query(ctx, `
		SELECT c.relname, pg_get_indexdef(i.indexrelid, 1, true), i.indpred IS NOT NULL
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var info indexInfo
		if err := rows.Scan(&name, &info.leading, &info.partial); err != nil {
			t.Fatal(err)
		}
		indexes[name] = info
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, sql := range rec.order {
		verb := strings.ToUpper(strings.Fields(sql)[0])
		switch verb {
		case "SELECT", "INSERT", "UPDATE", "DELETE", "WITH":
		default:
			continue // BEGIN, COMMIT, LISTEN ...
		}
		var plan []map[string]any
		if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, rec.args[sql]...).Scan(&plan); err != nil {
			t.Fatalf("EXPLAIN %s: %v", sql, err)
		}
		for _, problem := range scanProblems(plan[0]["Plan"].(map[string]any), func(index, cond string) bool {
			info := indexes[index]
			if cond == "" {
				return info.partial
			}
			leading := regexp.MustCompile(`(^|[(\s])` + regexp.QuoteMeta(info.leading) + `\s*(=|<|>|IS|~)`)
			return leading.MatchString(cond)
		}) {
			t.Errorf("%s in the plan of:\n%s", problem, strings.TrimSpace(sql))
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d statements were checked; the recorder missed the store's queries", checked)
	}
	t.Logf("%d distinct statements checked", checked)
}

// scanProblems walks an EXPLAIN (FORMAT JSON) plan node and reports every
// table scan that does not narrow the rows by an index; narrows says
// whether an index condition (possibly empty) does.
func scanProblems(node map[string]any, narrows func(index, cond string) bool) []string {
	var problems []string
	typ, _ := node["Node Type"].(string)
	rel, _ := node["Relation Name"].(string)
	index, _ := node["Index Name"].(string)
	cond, _ := node["Index Cond"].(string)
	switch typ {
	case "Seq Scan":
		problems = append(problems, "sequential scan of "+rel)
	case "Index Scan", "Index Only Scan", "Bitmap Index Scan":
		if !narrows(index, cond) {
			problems = append(problems, "full scan of index "+index+" (condition "+cond+")")
		}
	}
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		problems = append(problems, scanProblems(c.(map[string]any), narrows)...)
	}
	return problems
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
