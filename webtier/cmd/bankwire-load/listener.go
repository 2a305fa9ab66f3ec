package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// listener is a generator customer with its live stream (/events) open, as
// a browser tab on the chat page has. It times every message sent to it
// from the send until the stream brings it.
type listener struct {
	r     *runner
	index int
	c     *customer

	connected     chan struct{} // closed when the stream first opened
	connectedOnce sync.Once

	mu      sync.Mutex
	pending map[string]*pendingMsg
}

type pendingMsg struct {
	at   time.Time
	sent bool // the send was acknowledged
}

func newListener(r *runner, index int, c *customer) *listener {
	return &listener{r: r, index: index, c: c, connected: make(chan struct{}), pending: map[string]*pendingMsg{}}
}

func (l *listener) expect(token string) {
	l.mu.Lock()
	l.pending[token] = &pendingMsg{at: time.Now()}
	l.mu.Unlock()
}

func (l *listener) sent(token string) {
	l.mu.Lock()
	if p := l.pending[token]; p != nil {
		p.sent = true
	}
	l.mu.Unlock()
}

func (l *listener) forget(token string) {
	l.mu.Lock()
	delete(l.pending, token)
	l.mu.Unlock()
}

func (l *listener) received(body string) {
	_, token, ok := strings.Cut(body, "bankwire-load ")
	if !ok {
		return
	}
	l.mu.Lock()
	p := l.pending[token]
	delete(l.pending, token)
	l.mu.Unlock()
	if p != nil {
		l.r.rec.record(opChatDelivery, time.Since(p.at), outcomeOK, "")
	}
}

// waiting says how many acknowledged messages have not arrived yet.
func (l *listener) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.pending {
		if p.sent {
			n++
		}
	}
	return n
}

// giveUp records every acknowledged message that never arrived.
func (l *listener) giveUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for token, p := range l.pending {
		if p.sent {
			l.r.rec.record(opChatDelivery, time.Since(p.at), outcomeError, kindNotDelivered)
		}
		delete(l.pending, token)
	}
}

// run keeps the stream open until ctx ends, reconnecting (and signing in
// again when the session is gone) after a pause when it breaks.
func (l *listener) run(ctx context.Context) {
	client := &http.Client{Transport: l.c.b.client.Transport, Jar: l.c.b.client.Jar,
		CheckRedirect: l.c.b.client.CheckRedirect}
	for ctx.Err() == nil {
		if err := l.stream(ctx, client); err != nil && ctx.Err() == nil {
			if strings.Contains(err.Error(), "sign in") {
				sctx, cancel := context.WithTimeout(ctx, l.r.cfg.Timeout)
				_ = l.r.signIn(sctx, l.c)
				cancel()
			}
		}
		if !sleepUntil(ctx, time.Now().Add(250*time.Millisecond)) {
			return
		}
	}
}

func (l *listener) stream(ctx context.Context, client *http.Client) error {
	req, err := l.c.b.request(ctx, http.MethodGet, "/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("events: status %d: sign in again", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("events: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == ": connected":
			// The web tier writes it once its subscription is open:
			// from now on a message to this customer comes this way.
			l.connectedOnce.Do(func() { close(l.connected) })
		case line == "":
			event = ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "chat":
			var m struct {
				Body string `json:"body"`
				Mine bool   `json:"mine"`
			}
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m) == nil && !m.Mine {
				l.received(m.Body)
			}
		}
	}
	return sc.Err()
}
