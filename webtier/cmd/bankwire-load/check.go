package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MoneyCheck is the end-of-run audit, done through the site only.
type MoneyCheck struct {
	Passed    bool  `json:"passed"`
	Customers int   `json:"customers"`
	Expected  int64 `json:"expected_total_minor"` // what the funders sent them
	Actual    int64 `json:"actual_total_minor"`   // what their accounts hold
	// Acknowledged transfers, and how many of them were not found exactly
	// once on each side's history.
	Acknowledged   int `json:"acknowledged_transfers"`
	NotInHistory   int `json:"not_in_history"`
	Duplicated     int `json:"duplicated_in_history"`
	UnknownOutcome int `json:"unknown_outcome_transfers"`
	// Transfers in the customers' histories that the site never
	// acknowledged: at most one for each transfer whose outcome stayed
	// unknown, or the bank made transfers no one asked for (one made
	// twice, for example).
	Unacknowledged int      `json:"unacknowledged_in_history"`
	Problems       []string `json:"problems,omitempty"`
}

// maxHistoryPages bounds the walk of one account's history.
const maxHistoryPages = 10_000

// check audits money: the generator's customers together hold exactly what
// the funders sent them (transfers among them move money, never make or
// lose it), no account of theirs is below zero, every acknowledged
// transfer is in the history of the account it left and of the one it
// reached, once each, and those histories hold no more unacknowledged
// transfers than there were unknown outcomes.
func (r *runner) check(ctx context.Context) MoneyCheck {
	r.mu.Lock()
	customers := append([]*customer(nil), r.customers...)
	transfers := append([]ackTransfer(nil), r.transfers...)
	mc := MoneyCheck{Customers: len(customers), Expected: r.funded, Acknowledged: len(transfers), UnknownOutcome: r.unknown}
	r.mu.Unlock()
	problem := func(format string, args ...any) {
		if len(mc.Problems) < 20 {
			mc.Problems = append(mc.Problems, fmt.Sprintf(format, args...))
		}
	}

	seen := map[string]map[int64]int{} // account → transfer id → times in its history
	unread := 0                        // customers whose balances could not be read
	silent := 0                        // overviews in a row the site did not answer at all
	for i, c := range customers {
		if silent == 3 {
			unread += len(customers) - i
			problem("the site answered none of %d overviews in a row: the check stopped", silent)
			break
		}
		p, err := checkGet(ctx, c.b, "/accounts", http.StatusOK, http.StatusSeeOther)
		if err == nil && p.status == http.StatusSeeOther {
			// The session ended (idle, or revoked in an outage): sign in again.
			if err = r.signIn(ctx, c); err == nil {
				p, err = checkGet(ctx, c.b, "/accounts", http.StatusOK)
			}
		}
		if err != nil {
			var he *httpError
			if silent++; errors.As(err, &he) {
				silent = 0
			}
			unread++
			problem("%s: overview: %v", c.username, err)
			continue
		}
		silent = 0
		bal, err := balancesOf(p.body)
		if err != nil || len(bal) == 0 {
			unread++
			problem("%s: overview without balances (%v)", c.username, err)
			continue
		}
		for number, v := range bal {
			mc.Actual += v
			if v < 0 {
				problem("%s: account %s holds %s: the bank let it go below zero", c.username, number, formatMinor(v))
			}
			ids, err := r.history(ctx, c.b, number)
			if err != nil {
				problem("%s: history of %s: %v", c.username, number, err)
				continue
			}
			seen[number] = ids
		}
	}
	switch {
	case unread > 0:
		problem("the balances of %d customers could not be read: the total was not checked", unread)
	case mc.Actual < mc.Expected:
		problem("the customers hold %s, but were sent %s: %s went missing",
			formatMinor(mc.Actual), formatMinor(mc.Expected), formatMinor(mc.Expected-mc.Actual))
	case mc.Actual > mc.Expected:
		problem("the customers hold %s, but were sent %s: %s more, made from nothing",
			formatMinor(mc.Actual), formatMinor(mc.Expected), formatMinor(mc.Actual-mc.Expected))
	}
	acked := map[int64]bool{}
	for _, t := range transfers {
		acked[t.id] = true
	}
	extra := map[int64]bool{}
	for _, ids := range seen {
		for id := range ids {
			if !acked[id] {
				extra[id] = true
			}
		}
	}
	if mc.Unacknowledged = len(extra); mc.Unacknowledged > mc.UnknownOutcome {
		problem("the customers' histories hold %d transfers the site never acknowledged, but only %d transfers had an unknown outcome: the bank made transfers no one asked for",
			mc.Unacknowledged, mc.UnknownOutcome)
	}
	for _, t := range transfers {
		sides := []string{t.to}
		if !t.funding {
			sides = append(sides, t.from)
		}
		for _, acct := range sides {
			ids, ok := seen[acct]
			if !ok {
				continue // reported above
			}
			switch n := ids[t.id]; {
			case n == 0:
				mc.NotInHistory++
				problem("transfer %d (%s from %s to %s) is not in the history of %s", t.id, formatMinor(t.amount), t.from, t.to, acct)
			case n > 1:
				mc.Duplicated++
				problem("transfer %d is %d times in the history of %s", t.id, n, acct)
			}
		}
	}
	mc.Passed = len(mc.Problems) == 0
	return mc
}

// history walks an account's history pages and counts each transfer id.
func (r *runner) history(ctx context.Context, b *browser, number string) (map[int64]int, error) {
	ids := map[int64]int{}
	path := "/accounts/" + number
	for range maxHistoryPages {
		p, err := checkGet(ctx, b, path, http.StatusOK)
		if err != nil {
			return nil, err
		}
		for _, m := range entryRe.FindAllStringSubmatch(p.body, -1) {
			id, _ := strconv.ParseInt(m[1], 10, 64)
			ids[id]++
		}
		m := nextRe.FindStringSubmatch(p.body)
		if m == nil {
			return ids, nil
		}
		path = strings.ReplaceAll(m[1], "&amp;", "&")
	}
	return nil, fmt.Errorf("more than %d pages", maxHistoryPages)
}

// checkGet gets a page for the check, asking again a few times while the
// site says it is briefly unavailable (503), as a person would reload.
func checkGet(ctx context.Context, b *browser, path string, want ...int) (page, error) {
	for attempt := 1; ; attempt++ {
		p, err := b.do(ctx, http.MethodGet, path, nil, want...)
		var he *httpError
		if attempt == 5 || !errors.As(err, &he) || he.status != http.StatusServiceUnavailable {
			return p, err
		}
		if !sleepUntil(ctx, time.Now().Add(time.Duration(attempt)*200*time.Millisecond)) {
			return p, err
		}
	}
}
