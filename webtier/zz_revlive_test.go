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
