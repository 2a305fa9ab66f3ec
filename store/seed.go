package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// DemoPasswords are the PHC hashes of the demo customers' passwords,
// computed by the caller (the app tier owns password hashing). For the
// compose demo the passwords are "alice-demo-pass" and "bob-demo-pass".
type DemoPasswords struct {
	Alice string
	Bob   string
}

// demoDays is how far back the demo history reaches.
const demoDays = 120

// seedLockKey serialises SeedDemo across app tiers that start together
// (pg_advisory_xact_lock), so only one of them writes the demo data.
const seedLockKey = 0x62616e6b77697265 // "bankwire"

// demoEvent is one transfer of the demo history.
type demoEvent struct {
	at       time.Time
	customer string // who initiates: "alice", "bob" or "" (the outside world)
	from, to string // "alice", "alice-savings", "bob", "bob-savings", "world"
	amount   int64
	memo     string
}

// SeedDemo creates the demo customers alice ("Alice Johnson") and bob ("Bob
// Smith"), each with a checking and a savings account and about four months
// of everyday history before now (paychecks, rent, groceries, bills,
// savings, money between the two), each other as payees and a short chat.
// It is idempotent: when alice exists it does nothing. Everything is
// written in one transaction, so a failed seed leaves nothing behind.
func (s *Store) SeedDemo(ctx context.Context, hashes DemoPasswords, now time.Time) error {
	for _, h := range []string{hashes.Alice, hashes.Bob} {
		if err := checkText("password_hash", h, hashRules); err != nil {
			return err
		}
	}
	at := dbTime(now)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(seedLockKey)); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM customers WHERE lower(username) = 'alice')`).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		return s.seed(ctx, tx, hashes, at)
	})
	if err != nil {
		if isDomainError(err) {
			return fmt.Errorf("store: seed demo: %w", err)
		}
		return s.dbError(ctx, "seed demo", err)
	}
	return nil
}

func (s *Store) seed(ctx context.Context, tx pgx.Tx, hashes DemoPasswords, now time.Time) error {
	start := now.Truncate(24*time.Hour).AddDate(0, 0, -demoDays)
	opened := start.Add(-24 * time.Hour)

	ids := map[string]int64{}
	numbers := map[string]string{}
	for _, c := range []struct{ username, name, hash string }{
		{"alice", "Alice Johnson", hashes.Alice},
		{"bob", "Bob Smith", hashes.Bob},
	} {
		var id int64
		if err := tx.QueryRow(ctx, `
			INSERT INTO customers (username, display_name, password_hash, created_at, last_signin_at)
			VALUES ($1, $2, $3, $4, NULL) RETURNING id`, c.username, c.name, c.hash, opened).Scan(&id); err != nil {
			return err
		}
		ids[c.username] = id
		checking, err := s.insertAccount(ctx, tx, id, KindChecking, DefaultCurrency, opened)
		if err != nil {
			return err
		}
		savings, err := s.insertAccount(ctx, tx, id, KindSavings, DefaultCurrency, opened.Add(time.Minute))
		if err != nil {
			return err
		}
		numbers[c.username] = checking.Number
		numbers[c.username+"-savings"] = savings.Number
	}
	world, err := s.externalAccount(ctx, tx, DefaultCurrency)
	if err != nil {
		return err
	}
	ids[""] = world.CustomerID
	numbers["world"] = world.Number

	events := demoHistory(start, now)
	for i, e := range events {
		p := TransferParams{
			CustomerID:     ids[e.customer],
			IdempotencyKey: fmt.Sprintf("demo-%04d", i+1),
			FromNumber:     numbers[e.from],
			ToNumber:       numbers[e.to],
			Amount:         e.amount,
			Memo:           e.memo,
		}
		if _, _, err := s.transferOnce(ctx, tx, p, e.at); err != nil {
			return fmt.Errorf("demo transfer %d (%s): %w", i+1, e.memo, err)
		}
	}

	payees := []struct {
		owner, nickname, account string
		at                       time.Time
	}{
		{"alice", "Bob Smith", "bob", start.Add(3*24*time.Hour + 19*time.Hour)},
		{"bob", "Alice", "alice", start.Add(4*24*time.Hour + 20*time.Hour)},
	}
	for _, p := range payees {
		if _, err := tx.Exec(ctx, `
			INSERT INTO payees (customer_id, nickname, account_id, created_at)
			SELECT $1, $2, id, $4 FROM accounts WHERE number = $3`,
			ids[p.owner], p.nickname, numbers[p.account], p.at); err != nil {
			return err
		}
	}

	a, b := ids["alice"], ids["bob"]
	chatStart := now.Add(-50 * time.Hour)
	var conversation int64
	if err := tx.QueryRow(ctx, `
		INSERT INTO chat_conversations (member_a, member_b, created_at) VALUES ($1, $2, $3) RETURNING id`,
		min(a, b), max(a, b), chatStart).Scan(&conversation); err != nil {
		return err
	}
	messages := []struct {
		from  int64
		after time.Duration
		body  string
	}{
		{a, 0, "Hi Bob! Thanks for dinner on Friday, sending you my half now."},
		{b, 12 * time.Minute, "Got it, thanks! Luigi's was great, we should go again."},
		{a, 20 * time.Minute, "Definitely. Are we still on for the hike on Saturday?"},
		{b, 26 * time.Hour, "Yes! I'll pick you up at 8. Can you bring the trail map?"},
		{a, 26*time.Hour + 5*time.Minute, "Will do. I'll pay for gas this time 🙂"},
		{b, 26*time.Hour + 9*time.Minute, "Deal. See you Saturday!"},
	}
	for _, m := range messages {
		if _, err := tx.Exec(ctx, `
			INSERT INTO chat_messages (conversation_id, sender_id, body, created_at) VALUES ($1, $2, $3, $4)`,
			conversation, m.from, m.body, chatStart.Add(m.after)); err != nil {
			return err
		}
	}
	return nil
}

// demoHistory lists the demo transfers between start and now in time order.
// Amounts are fixed cycles of integers, so every run produces the same
// story relative to now.
func demoHistory(start, now time.Time) []demoEvent {
	var ev []demoEvent
	add := func(day time.Time, hour, minute int, customer, from, to string, amount int64, memo string) {
		at := day.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
		if at.Before(now) {
			ev = append(ev, demoEvent{at, customer, from, to, amount, memo})
		}
	}
	// Opening deposits, so the first bills find money in place.
	add(start, 9, 0, "", "world", "alice", 320_000, "Opening deposit")
	add(start, 9, 5, "", "world", "alice-savings", 1_250_000, "Opening deposit")
	add(start, 10, 0, "", "world", "bob", 210_000, "Opening deposit")
	add(start, 10, 5, "", "world", "bob-savings", 480_000, "Opening deposit")

	aliceGroceries := []int64{8734, 10219, 6542, 12890, 9375, 7718}
	bobGroceries := []int64{6421, 7310, 5588, 8099, 6975}
	power := []int64{8412, 9120, 7655, 8890}
	friends := []struct {
		from, to string
		amount   int64
		memo     string
	}{
		{"alice", "bob", 3250, "Dinner at Luigi's, my half"},
		{"bob", "alice", 8500, "Concert tickets"},
		{"alice", "bob", 1875, "Pizza night"},
		{"bob", "alice", 4200, "Road trip gas"},
		{"alice", "bob", 2600, "Movie tickets + popcorn"},
		{"bob", "alice", 3000, "Birthday gift for Sam, my share"},
	}
	week, friend := 0, 0
	for day := start.AddDate(0, 0, 1); day.Before(now); day = day.AddDate(0, 0, 1) {
		n := int(day.Sub(start).Hours() / 24)
		switch day.Day() {
		case 1:
			add(day, 8, 0, "alice", "alice", "world", 165_000, "Rent — Maple Street Apartments")
			add(day, 8, 30, "bob", "bob", "world", 140_000, "Rent — Oak Court Rentals")
		case 2:
			add(day, 7, 15, "alice", "alice", "alice-savings", 30_000, "Monthly savings")
		case 5:
			add(day, 6, 0, "bob", "bob", "world", 3999, "Ironworks Gym membership")
		case 10:
			add(day, 6, 30, "bob", "bob", "world", 4500, "Bluewave Mobile phone bill")
		case 15:
			add(day, 12, 0, "alice", "alice", "world", power[(n/30)%len(power)], "City Power & Light")
		case 20:
			add(day, 12, 10, "alice", "alice", "world", 6499, "Fiberlink Internet")
		}
		switch day.Weekday() {
		case time.Friday:
			if week%2 == 0 {
				add(day, 9, 0, "", "world", "alice", 245_000, "Payroll — Northwind Traders")
			}
		case time.Thursday:
			if week%2 == 1 {
				add(day, 9, 0, "", "world", "bob", 218_000, "Payroll — Contoso Ltd")
				add(day, 18, 0, "bob", "bob", "bob-savings", 15_000, "To savings")
			}
		case time.Saturday:
			add(day, 17, 30, "alice", "alice", "world", aliceGroceries[week%len(aliceGroceries)], "Green Grocer")
			if week%3 == 2 {
				f := friends[friend%len(friends)]
				friend++
				add(day, 21, 15, f.from, f.from, f.to, f.amount, f.memo)
			}
		case time.Sunday:
			add(day, 11, 45, "bob", "bob", "world", bobGroceries[week%len(bobGroceries)], "Corner Market")
			week++
		}
	}
	// A recent split that matches the chat.
	add(now.Add(-50*time.Hour).Add(-time.Minute), 0, 0, "alice", "alice", "bob", 3250, "Dinner on Friday, my half")
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].at.Before(ev[j].at) })
	return ev
}
