package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// A listener whose live stream is slow to open misses no message: the run
// sends none before every stream is open. Every message here goes to the
// one listener, whose stream opens 700 ms late (a busy web tier).
func TestRunWaitsForListenersStreams(t *testing.T) {
	_, target := startStack(t)
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.FlushInterval = -1 // an event stream is passed on as it comes
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			select {
			case <-time.After(700 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)

	cfg := testConfig(slow.URL)
	cfg.Rate, cfg.Duration = 20, time.Second
	cfg.Mix, _ = parseMix("chat=1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, rep, err := run(ctx, cfg, nil, func(live) {})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkCounts(t, rep)
	if n := opCount(rep, "chat send"); n == 0 {
		t.Fatal("no chat message sent")
	}
	if sent, got := opOK(rep, "chat send"), opOK(rep, "chat delivery"); got != sent || opCount(rep, "chat delivery") != sent {
		t.Fatalf("%d messages sent, %d delivered (of %d deliveries recorded)", sent, got, opCount(rep, "chat delivery"))
	}
}
