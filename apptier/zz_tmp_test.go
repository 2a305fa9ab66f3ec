package apptier_test

import (
	"context"
	"testing"

	"bankwire/apptier/apptiertest"
)

func TestTmpDaily(t *testing.T) {
	srv := apptiertest.Start(t, apptiertest.WithDailyLimit(50_000))
	rows, err := srv.Store.Pool().Query(context.Background(), `SELECT customer_id, day::text, total, coalesce(daily_limit, -1) FROM daily_outgoing ORDER BY day`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c, tot, l int64
		var d string
		rows.Scan(&c, &d, &tot, &l)
		t.Logf("cust %d day %s total %d limit %d", c, d, tot, l)
	}
	rows.Close()
	rows, _ = srv.Store.Pool().Query(context.Background(), `SELECT t.customer_id, t.created_at::text, t.amount, t.memo FROM transfers t ORDER BY created_at DESC LIMIT 8`)
	for rows.Next() {
		var c, a int64
		var d, m string
		rows.Scan(&c, &d, &a, &m)
		t.Logf("transfer cust %d at %s amount %d %s", c, d, a, m)
	}
}
