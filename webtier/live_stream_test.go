package webtier_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
)

// TestLiveBalanceEventsDoNotKeepSessionAlive: an open page that receives
// balance events (money sent to the customer by someone else) is not the
// customer's activity, so it must not extend the idle timeout: an
// unattended page would otherwise stay signed in for as long as others
// keep sending money.
func TestLiveBalanceEventsDoNotKeepSessionAlive(t *testing.T) {
	clock := apptiertest.NewClock(apptiertest.Now())
	s := startSite(t, withApp(apptiertest.WithClock(clock.Now), apptiertest.WithIdleTimeout(10*time.Minute)))
	alice := s.alice()
	aChk := alice.checking()
	stream := openEvents(t, alice)

	clock.Advance(7 * time.Minute)
	bob := s.bob()
	bob.transfer(bob.checking(), aChk, "1.00", "while alice is away")
	stream.waitFor(t, "event: balance", 10*time.Second)
	data := stream.waitFor(t, "data: ", 5*time.Second)
	if !strings.Contains(data, `"totals"`) {
		t.Errorf("balance event without totals: %s", data)
	}

	// 11 minutes after alice's last page: her session has ended.
	clock.Advance(4 * time.Minute)
	p := alice.get("/accounts")
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/signin") {
		t.Fatalf("alice idle for 11 minutes with a live page open: %d %q, want the session ended", p.Status, p.Location)
	}
}

// TestReconnectedStreamBringsBalancesUpToDate: money that arrives while a
// live page's stream is down (the app tier restarting) would otherwise
// never reach the page, which would show the old balance with no hint.
// The stream gives the browser an event id, and a stream reopened with it
// starts with every account's current balance.
func TestReconnectedStreamBringsBalancesUpToDate(t *testing.T) {
	s := startSite(t)
	alice, bob := s.alice(), s.bob()
	aChk := alice.checking()
	bobChk := bob.checking()
	first := openEventsAfter(t, alice, "")
	id := strings.TrimSpace(strings.TrimPrefix(first.waitFor(t, "id:", 10*time.Second), "id:"))

	s.app.Stop()
	ended := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-first.lines: // the stream ends with the app tier
		case <-ended:
			t.Fatal("the stream stayed open after the app tier stopped")
		}
	}
	s.app.Restart()
	var p page
	for range 50 {
		if p = bob.get("/accounts"); p.Status == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	bob.transfer(bobChk, aChk, "2.50", "while the stream was down")
	want := alice.balance(aChk)

	again := openEventsAfter(t, alice, id)
	again.waitFor(t, ": connected", 10*time.Second)
	for {
		data := again.waitFor(t, "data: ", 10*time.Second)
		if strings.Contains(data, `"number":"`+aChk+`"`) {
			if !strings.Contains(data, `"balance":"`+want+`"`) {
				t.Fatalf("balance on reconnection %s, want %s", data, want)
			}
			return
		}
	}
}
