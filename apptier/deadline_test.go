package apptier_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/proto/wire"
)

// slowLink forwards TCP connections to target, each chunk of bytes leaving
// delay after it arrived, in both directions: a slow network.
func slowLink(t *testing.T, target string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		type chunk struct {
			b  []byte
			at time.Time
		}
		q := make(chan chunk, 1024)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(q)
			for {
				buf := make([]byte, 32<<10)
				n, err := src.Read(buf)
				if n > 0 {
					q <- chunk{buf[:n], time.Now().Add(delay)}
				}
				if err != nil {
					return
				}
			}
		}()
		for c := range q {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
		for range q {
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestLateTransferIsNotMade: over a link that holds every frame for 300 ms
// each way, a transfer whose caller allows 450 ms cannot be answered in
// time; the app tier, which measured the round trip, must not make it
// (PROTOCOL.md §4.2) — otherwise the customer sees an error for a transfer
// that then happens.
func TestLateTransferIsNotMade(t *testing.T) {
	b := newBank(t)
	link := slowLink(t, b.srv.Addr, 300*time.Millisecond)
	c, err := proto.NewClient(proto.ClientConfig{Addrs: []string{link}, Secret: b.srv.Secret, Name: "slow-link", ConnsPerAddr: 1,
		DialTimeout: 5 * time.Second, Logger: apptiertest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := ctxT(t)
	in, err := proto.Call(ctx, c, wire.SignIn, wire.SignInRequest{Username: "alice", Password: "alice-demo-pass"})
	if err != nil {
		t.Fatal(err)
	}
	tok := in.Token
	from, to := b.account(tok, "checking"), b.account(tok, "savings")
	// The sign-in made the server ping over the slow link; let the PONG
	// arrive (600 ms round trip, plus room).
	time.Sleep(1500 * time.Millisecond)

	tight, cancel := context.WithTimeout(ctx, 450*time.Millisecond)
	_, err = proto.Call(tight, c, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: tok},
		IdempotencyKey: "late-1", From: from.Number, To: to.Number, Amount: "1.00"})
	cancel()
	if code := wire.ErrorCode(err); code != wire.DeadlineExceeded {
		t.Fatalf("transfer with 450 ms over a 600 ms round trip: %v, want DEADLINE_EXCEEDED", err)
	}
	// Long after the REQUEST reached the app tier, nothing moved.
	time.Sleep(1500 * time.Millisecond)
	if got := b.account(tok, "checking"); got.Balance != from.Balance {
		t.Fatalf("balance %d, was %d: the late transfer was made", got.Balance, from.Balance)
	}
	// The same transfer with time to spare is made once.
	if out, err := proto.Call(ctx, c, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: tok},
		IdempotencyKey: "late-1", From: from.Number, To: to.Number, Amount: "1.00"}); err != nil || out.Replayed {
		t.Fatalf("the retry with time: %+v, %v", out, err)
	}
}
