package storetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/store"
	"bankwire/store/storetest"
)

// BenchmarkFreshDatabase compares what each test pays for its database —
// a clone of the migrated template — with the baseline of creating an empty
// database and migrating it, measured side by side in the same run.
//
//	go test -run '^$' -bench FreshDatabase -benchtime 10x ./store/storetest/
func BenchmarkFreshDatabase(b *testing.B) {
	ctx := context.Background()
	storetest.URL(b) // start the server outside the measurement
	var cloneTime, migrateTime time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		storetest.URL(b)
		cloneTime += time.Since(start)

		start = time.Now()
		pool, err := pgxpool.New(ctx, storetest.EmptyURL(b))
		if err != nil {
			b.Fatal(err)
		}
		if err := store.Migrate(ctx, pool); err != nil {
			b.Fatal(err)
		}
		pool.Close()
		migrateTime += time.Since(start)
	}
	b.ReportMetric(float64(cloneTime.Milliseconds())/float64(b.N), "clone-ms/db")
	b.ReportMetric(float64(migrateTime.Milliseconds())/float64(b.N), "create+migrate-ms/db")
	b.ReportMetric(migrateTime.Seconds()/cloneTime.Seconds(), "speedup")
}
