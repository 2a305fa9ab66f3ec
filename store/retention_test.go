package store_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestPurgeSessionsAndSignInEvents(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	c, _ := newCustomer(t, s, "alice")
	cutoff := t0.Add(10 * time.Hour)

	// Sessions: expired before the cutoff (live or revoked) go; one that
	// expires after it stays, revoked or not.
	sessions := []struct {
		token   string
		expires time.Time
		revoke  bool
		kept    bool
	}{
		{"expired", t0.Add(time.Hour), false, false},
		{"revoked-and-expired", t0.Add(2 * time.Hour), true, false},
		{"just-before", cutoff.Add(-time.Microsecond), false, false},
		{"at-cutoff", cutoff, false, true},
		{"live", t0.Add(20 * time.Hour), false, true},
		{"revoked-live", t0.Add(20 * time.Hour), true, true},
	}
	for _, sess := range sessions {
		h := sha256.Sum256([]byte(sess.token))
		if _, err := s.CreateSession(ctx, h[:], c.ID, t0, sess.expires, "", ""); err != nil {
			t.Fatal(err)
		}
		if sess.revoke {
			if err := s.RevokeSession(ctx, h[:], t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Sign-in events: five before the cutoff, two at or after it; a batch
	// of two makes the purge take several statements.
	defer store.SetPurgeBatch(2)()
	for i, at := range []time.Time{t0, t0.Add(time.Hour), t0.Add(2 * time.Hour), t0.Add(3 * time.Hour), cutoff.Add(-time.Second), cutoff, cutoff.Add(time.Hour)} {
		if err := s.AddSignInEvent(ctx, store.SignInEvent{Username: "alice", ClientIP: "203.0.113.7", Outcome: store.OutcomeBadPassword, CreatedAt: at}); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}

	n, err := s.PurgeSessions(ctx, cutoff)
	if err != nil || n != 3 {
		t.Fatalf("PurgeSessions = %d, %v; want 3", n, err)
	}
	for _, sess := range sessions {
		h := sha256.Sum256([]byte(sess.token))
		_, err := s.SessionByTokenHash(ctx, h[:])
		if sess.kept && err != nil {
			t.Errorf("session %q was purged: %v", sess.token, err)
		}
		if !sess.kept {
			wantErr(t, err, store.ErrNotFound)
		}
	}
	n, err = s.PurgeSignInEvents(ctx, cutoff)
	if err != nil || n != 5 {
		t.Fatalf("PurgeSignInEvents = %d, %v; want 5", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM signin_events WHERE created_at >= $1`, cutoff).Scan(&left); err != nil || left != 2 {
		t.Fatalf("%d events at or after the cutoff left (%v), want 2", left, err)
	}
	// Nothing left to purge: a second run deletes nothing.
	if n, err := s.PurgeSessions(ctx, cutoff); err != nil || n != 0 {
		t.Fatalf("second PurgeSessions = %d, %v", n, err)
	}
	if n, err := s.PurgeSignInEvents(ctx, cutoff); err != nil || n != 0 {
		t.Fatalf("second PurgeSignInEvents = %d, %v", n, err)
	}

	// Bad input: no cutoff would mean nothing, and is refused.
	_, err = s.PurgeSessions(ctx, time.Time{})
	wantInputError(t, err, "cutoff")
	_, err = s.PurgeSignInEvents(ctx, time.Time{})
	wantInputError(t, err, "cutoff")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.PurgeSessions(canceled, cutoff); err == nil {
		t.Fatal("PurgeSessions with a canceled context succeeded")
	}
}
