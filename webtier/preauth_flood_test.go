package webtier_test

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/webtier"
)

// TestWebTierConnectsDuringPreAuthFlood: while strangers on five other
// addresses keep the app tier's port full of connections that never
// authenticate, a web tier that starts then (so it must connect during the
// flood) signs a customer in and serves their pages. The app tier keeps a
// handshake budget of its own and evicts the flood's connections to make
// room (PROTOCOL.md §3).
func TestWebTierConnectsDuringPreAuthFlood(t *testing.T) {
	app := apptiertest.Start(t, apptiertest.WithServerConfig(func(c *proto.ServerConfig) { c.MaxConns = 64 }))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var dials atomic.Int64
	for i := 2; i < 7; i++ {
		wg.Add(1)
		go func(ip string) {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: time.Second}
			var held []net.Conn
			defer func() {
				for _, nc := range held {
					nc.Close()
				}
			}()
			for n := 0; n < 2000; n++ { // bounded in count, and by stop
				select {
				case <-stop:
					return
				default:
				}
				nc, err := d.Dial("tcp", app.Addr)
				if err != nil {
					time.Sleep(time.Millisecond)
					continue
				}
				dials.Add(1)
				held = append(held, nc)
				if len(held) > 200 {
					held[0].Close()
					held = held[1:]
				}
				time.Sleep(time.Millisecond)
			}
		}("127.0.0." + strconv.Itoa(i))
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for dials.Load() < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the flood made only %d connections in 10 s", dials.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	cfg := webtier.DefaultConfig()
	cfg.AppTierAddrs = []string{app.Addr}
	cfg.AppTierSecret = app.Secret
	cfg.SignInLimit, cfg.SignUpLimit = 1000, 1000
	s := startWeb(t, app, cfg)
	b := s.alice()
	if byKind, _ := b.accounts(); byKind["Checking"] == "" {
		t.Fatalf("no checking account on alice's overview during the flood: %v", byKind)
	}
}
