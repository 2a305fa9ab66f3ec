package apptier_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"bankwire/apptier"
	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/proto/wire"
	"bankwire/store"
)

// Each benchmark runs a baseline and the app tier over the protocol in the
// same run, b.N operations each, and reports both rates and their ratio
// (x_baseline). The two alternate in ten slices (interleave), so that
// neither gets the machine's quieter moments, a warmer cache or the garbage
// collector's debt of the other. Run them with:
//
//	go test -run '^$' -bench . -benchtime 2000x ./apptier/

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// parallel runs f for i in [lo, hi) on workers goroutines.
func parallel(lo, hi, workers int, f func(worker, i int)) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := lo + w; i < hi; i += workers {
				f(w, i)
			}
		}(w)
	}
	wg.Wait()
	return time.Since(start)
}

// rounds is how many alternating slices interleave cuts b.N into.
const rounds = 10

// interleave runs b.N operations of the baseline and of the tier, in
// alternating slices, each with its own number of workers, and returns the
// total time of each. Operation indexes are unique across slices.
func interleave(b *testing.B, baseWorkers int, baseOp func(w, i int), tierWorkers int, tierOp func(w, i int)) (base, tier time.Duration) {
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		lo, hi := b.N*r/rounds, b.N*(r+1)/rounds
		base += parallel(lo, hi, baseWorkers, baseOp)
		tier += parallel(lo, hi, tierWorkers, tierOp)
	}
	b.StopTimer()
	return base, tier
}

// warmUp runs each side a few times untimed, so that neither pays for
// opening pool connections or preparing statements inside its timing.
func warmUp(n int, fs ...func(worker, i int)) {
	for _, f := range fs {
		parallel(0, n, 4, f)
	}
}

func report(b *testing.B, unit string, base, tier time.Duration) {
	b.ReportMetric(rate(b.N, base), "baseline_"+unit+"/s")
	b.ReportMetric(rate(b.N, tier), unit+"/s")
	b.ReportMetric(base.Seconds()/tier.Seconds(), "x_baseline")
	b.ReportMetric(0, "ns/op") // the per-op time of a mixed loop means nothing
}

// BenchmarkTransfer: transfers through the protocol vs store.Transfer called
// directly with the parameters the app tier passes (its default daily
// limit, which makes the store lock the customer row), moving money back and
// forth between alice's two accounts.
func BenchmarkTransfer(b *testing.B) {
	srv := apptiertest.Start(b)
	c := srv.Client(b)
	tok := srv.SignIn(b, c, "alice", "alice-demo-pass")
	ctx := context.Background()
	accs, err := proto.Call(ctx, c, wire.AccountsList, wire.SessionRequest{Session: tok})
	if err != nil {
		b.Fatal(err)
	}
	chk, sav := accs.Accounts[0].Number, accs.Accounts[1].Number
	cust, err := srv.Store.CustomerByUsername(ctx, "alice")
	if err != nil {
		b.Fatal(err)
	}
	limit := apptier.Config{}.Defaults().DailyLimit
	workers := 4
	round := 0 // keeps idempotency keys unique across warm-up and timed runs
	baseOp := func(w, i int) {
		from, to := chk, sav
		if i%2 == 1 {
			from, to = sav, chk
		}
		_, _, err := srv.Store.Transfer(ctx, store.TransferParams{CustomerID: cust.ID, IdempotencyKey: fmt.Sprintf("base-%d-%d-%d", round, b.N, i),
			FromNumber: from, ToNumber: to, Amount: 1, DailyLimit: limit, Now: time.Now()})
		if err != nil {
			b.Error(err)
		}
	}
	tierOp := func(w, i int) {
		from, to := chk, sav
		if i%2 == 1 {
			from, to = sav, chk
		}
		_, err := proto.Call(ctx, c, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: tok},
			IdempotencyKey: fmt.Sprintf("tier-%d-%d-%d", round, b.N, i), From: from, To: to, Amount: "0.01"})
		if err != nil {
			b.Error(err)
		}
	}
	warmUp(40, baseOp, tierOp)
	round++
	base, tier := interleave(b, workers, baseOp, workers, tierOp)
	report(b, "transfers", base, tier)
}

// BenchmarkAccountsOverview: the accounts overview through the protocol vs
// the store queries it needs (session lookup and account list) made directly.
func BenchmarkAccountsOverview(b *testing.B) {
	srv := apptiertest.Start(b)
	c := srv.Client(b)
	tok := srv.SignIn(b, c, "alice", "alice-demo-pass")
	ctx := context.Background()
	sum := sha256.Sum256([]byte(tok))
	workers := 8
	baseOp := func(w, i int) {
		s, err := srv.Store.SessionByTokenHash(ctx, sum[:])
		if err != nil {
			b.Error(err)
			return
		}
		if _, err := srv.Store.ListAccounts(ctx, s.CustomerID); err != nil {
			b.Error(err)
		}
	}
	tierOp := func(w, i int) {
		if _, err := proto.Call(ctx, c, wire.AccountsList, wire.SessionRequest{Session: tok}); err != nil {
			b.Error(err)
		}
	}
	warmUp(100, baseOp, tierOp)
	base, tier := interleave(b, workers, baseOp, workers, tierOp)
	report(b, "overviews", base, tier)
}

// BenchmarkSignIn: sign-ins through the protocol vs the bare argon2id cost
// with the same parameters on the same cores.
func BenchmarkSignIn(b *testing.B) {
	srv := apptiertest.Start(b)
	c := srv.Client(b)
	ctx := context.Background()
	p := apptier.DefaultArgon2
	salt := make([]byte, p.SaltLen)
	workers := runtime.GOMAXPROCS(0)
	baseOp := func(w, i int) {
		argon2.IDKey([]byte("alice-demo-pass"), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	}
	tierOp := func(w, i int) {
		_, err := proto.Call(ctx, c, wire.SignIn, wire.SignInRequest{Username: "alice", Password: "alice-demo-pass",
			ClientInfo: wire.ClientInfo{IP: "127.0.0.1"}})
		if err != nil {
			b.Error(err)
		}
	}
	warmUp(8, baseOp, tierOp)
	// A server under a sign-in load has more requests in flight than cores:
	// while some wait for the database, others hash. The hashing semaphore
	// still bounds concurrent hashes to the cores.
	base, tier := interleave(b, workers, baseOp, 2*workers, tierOp)
	report(b, "signins", base, tier)
}
