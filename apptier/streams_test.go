package apptier_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"bankwire/apptier"
	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/proto/limits"
	"bankwire/proto/wire"
)

// waitStreamEnd reads a subscription until its terminal error, failing if
// none comes within bound.
func waitStreamEnd(t *testing.T, sub *proto.Subscription, bound time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for {
		var ev wire.Event
		err := sub.Next(ctx, &ev)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("stream still open %s later: %v", bound, err)
		}
		return err
	}
}

// TestSignOutEndsStreams: signing out ends that session's open streams, and
// "sign out everywhere" ends every session's, on every replica, with
// UNAUTHENTICATED, through the database's notification and not the
// periodic re-check (which comes only after 30 s; the bound is 10 s).
func TestSignOutEndsStreams(t *testing.T) {
	b := newBank(t)
	replica := apptiertest.Start(t, apptiertest.WithStore(b.srv.Store), apptiertest.WithoutDemoData())
	rc := replica.Client(t)
	ctx := ctxT(t)
	subscribe := func(c *proto.Client, tok string) *proto.Subscription {
		t.Helper()
		sub, err := proto.Subscribe(ctx, c, wire.Subscribe, wire.SessionRequest{Session: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Close() })
		return sub
	}

	t.Run("signout", func(t *testing.T) {
		tok, other := b.signIn("alice", "alice-demo-pass"), b.signIn("alice", "alice-demo-pass")
		mine, theirs := subscribe(rc, tok), subscribe(rc, other)
		must(b, wire.SignOut, wire.SessionRequest{Session: tok})
		if code := wire.ErrorCode(waitStreamEnd(t, mine, 10*time.Second)); code != wire.Unauthenticated {
			t.Fatalf("stream of the signed-out session ended with %s, want UNAUTHENTICATED", code)
		}
		// The other session's stream stays open.
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := theirs.Next(short, &wire.Event{}); wire.ErrorCode(err) != wire.DeadlineExceeded {
			t.Fatalf("the other session's stream: %v, want still open", err)
		}
	})
	t.Run("signout.all", func(t *testing.T) {
		t1, t2 := b.signIn("bob", "bob-demo-pass"), b.signIn("bob", "bob-demo-pass")
		s1, s2 := subscribe(b.c, t1), subscribe(rc, t2)
		must(b, wire.SignOutAll, wire.SessionRequest{Session: t1})
		for i, s := range []*proto.Subscription{s1, s2} {
			if code := wire.ErrorCode(waitStreamEnd(t, s, 10*time.Second)); code != wire.Unauthenticated {
				t.Fatalf("stream %d ended with %s, want UNAUTHENTICATED", i+1, code)
			}
		}
	})
}

// TestStreamEndsWithUnavailableOnDrain: a rolling restart ends open streams
// with UNAVAILABLE (subscribe again elsewhere), not OK.
func TestStreamEndsWithUnavailableOnDrain(t *testing.T) {
	b := newBank(t)
	tok := b.signIn("alice", "alice-demo-pass")
	sub, err := proto.Subscribe(ctxT(t), b.c, wire.Subscribe, wire.SessionRequest{Session: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	go b.srv.Stop()
	if code := wire.ErrorCode(waitStreamEnd(t, sub, 10*time.Second)); code != wire.Unavailable {
		t.Fatalf("stream ended with %s on drain, want UNAVAILABLE", code)
	}
}

// TestPageLimitsAtTheirMaxima: every limit PROTOCOL.md §10 allows is
// served, and one past it is INVALID_ARGUMENT on "limit".
func TestPageLimitsAtTheirMaxima(t *testing.T) {
	b := newBank(t)
	tok := b.signIn("alice", "alice-demo-pass")
	as := wire.SessionRequest{Session: tok}
	acc := b.account(tok, "checking")
	for _, n := range []int{1, limits.HistoryDefaultPage, limits.HistoryMaxPage} {
		h := must(b, wire.AccountHistory, wire.HistoryRequest{SessionRequest: as, Number: acc.Number, Limit: n})
		if len(h.Entries) > n {
			t.Fatalf("history limit %d returned %d entries", n, len(h.Entries))
		}
	}
	wantErr(t, callErr(b, wire.AccountHistory, wire.HistoryRequest{SessionRequest: as, Number: acc.Number, Limit: limits.HistoryMaxPage + 1}), wire.InvalidArgument, "limit")

	conv := must(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: as, Username: "bob"})
	for _, n := range []int{1, limits.ChatDefaultPage, limits.ChatMaxPage} {
		must(b, wire.ChatHistory, wire.ChatHistoryRequest{SessionRequest: as, ConversationID: conv.Conversation.ID, Limit: n})
	}
	wantErr(t, callErr(b, wire.ChatHistory, wire.ChatHistoryRequest{SessionRequest: as, ConversationID: conv.Conversation.ID, Limit: limits.ChatMaxPage + 1}), wire.InvalidArgument, "limit")
}

// TestChatHistoryFullPageOfLongestMessages: the largest chat page, full of
// the longest messages in 4-byte characters, is served (it fits in one
// frame), not refused INTERNAL by the protocol's payload limit.
func TestChatHistoryFullPageOfLongestMessages(t *testing.T) {
	b := newBank(t, apptiertest.WithConfig(func(c *apptier.Config) { c.ChatSendLimit = 10 * limits.ChatMaxPage }))
	tok := b.signIn("alice", "alice-demo-pass")
	as := wire.SessionRequest{Session: tok}
	conv := must(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: as, Username: "bob"})
	body := strings.Repeat("\U0001F600", limits.MaxMessageLen)
	for range limits.ChatMaxPage {
		must(b, wire.ChatSend, wire.ChatSendRequest{SessionRequest: as, ConversationID: conv.Conversation.ID, Body: body})
	}
	page := must(b, wire.ChatHistory, wire.ChatHistoryRequest{SessionRequest: as, ConversationID: conv.Conversation.ID, Limit: limits.ChatMaxPage})
	if len(page.Messages) != limits.ChatMaxPage {
		t.Fatalf("page of %d messages, want %d", len(page.Messages), limits.ChatMaxPage)
	}
}
