package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestConversations(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, _ := newCustomer(t, s, "alice")
	bob, _ := newCustomer(t, s, "bob")
	carol, _ := newCustomer(t, s, "carol")

	ab, err := s.OpenConversation(ctx, bob.ID, alice.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	if ab.MemberA != min(alice.ID, bob.ID) || ab.MemberB != max(alice.ID, bob.ID) || ab.LastAt != nil || ab.Other(alice.ID) != bob.ID {
		t.Fatalf("conversation = %+v", ab)
	}
	again, err := s.OpenConversation(ctx, alice.ID, bob.ID, t0.Add(time.Hour))
	if err != nil || again.ID != ab.ID || !again.CreatedAt.Equal(t0) {
		t.Fatalf("reopen = %+v, %v; want the same conversation", again, err)
	}
	ac, err := s.OpenConversation(ctx, alice.ID, carol.ID, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	_, err = s.OpenConversation(ctx, alice.ID, alice.ID, t0)
	wantInputError(t, err, "customer")
	_, err = s.OpenConversation(ctx, alice.ID, carol.ID+99, t0)
	wantErr(t, err, store.ErrNotFound)

	if got, err := s.ConversationForMember(ctx, ab.ID, bob.ID); err != nil || got.ID != ab.ID {
		t.Fatalf("ConversationForMember = %+v, %v", got, err)
	}
	_, err = s.ConversationForMember(ctx, ab.ID, carol.ID)
	wantErr(t, err, store.ErrNotFound)

	// Newest activity first: ac was created later, until ab gets a message.
	list, err := s.ListConversations(ctx, alice.ID)
	if err != nil || len(list) != 2 || list[0].ID != ac.ID {
		t.Fatalf("ListConversations = %+v, %v", list, err)
	}
	m, err := s.AddMessage(ctx, ab.ID, bob.ID, "Hi Alice!\nLunch?", t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if m.ConversationID != ab.ID || m.SenderID != bob.ID || m.Body != "Hi Alice!\nLunch?" {
		t.Fatalf("message = %+v", m)
	}
	list, _ = s.ListConversations(ctx, alice.ID)
	if list[0].ID != ab.ID || list[0].LastAt == nil || !list[0].LastAt.Equal(m.CreatedAt) {
		t.Fatalf("after a message, ListConversations = %+v", list)
	}
	if got, err := s.MessageByID(ctx, m.ID); err != nil || got != m {
		t.Fatalf("MessageByID = %+v, %v", got, err)
	}
	_, err = s.MessageByID(ctx, m.ID+99)
	wantErr(t, err, store.ErrNotFound)

	_, err = s.AddMessage(ctx, ab.ID, carol.ID, "let me in", t0)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.AddMessage(ctx, ab.ID+99, bob.ID, "nowhere", t0)
	wantErr(t, err, store.ErrNotFound)
	for _, body := range []string{"", " \n ", strings.Repeat("b", store.MaxMessageLen+1), "nul\x00", "bad\xff", "bell\a", "rtl \u202Eoverride", "iso\u2066late\u2069"} {
		_, err = s.AddMessage(ctx, ab.ID, bob.ID, body, t0)
		wantInputError(t, err, "body")
	}
	// Right-to-left text with its marks, and an emoji joined by ZWJ.
	if _, err := s.AddMessage(ctx, ab.ID, bob.ID, "\u05e9\u05dc\u05d5\u05dd\u200f 100 \U0001F468\u200D\U0001F469", t0); err != nil {
		t.Fatalf("right-to-left text: %v", err)
	}
	if _, err := s.AddMessage(ctx, ab.ID, bob.ID, strings.Repeat("ü", store.MaxMessageLen), t0); err != nil {
		t.Fatalf("a message of exactly the maximum length: %v", err)
	}
}

func TestMessagesPagination(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, _ := newCustomer(t, s, "alice")
	bob, _ := newCustomer(t, s, "bob")
	c, err := s.OpenConversation(ctx, alice.ID, bob.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 23
	for i := range n {
		sender := []int64{alice.ID, bob.ID}[i%2]
		if _, err := s.AddMessage(ctx, c.ID, sender, "msg", t0.Add(time.Duration(i/4)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	var all []store.Message
	cursor := store.Cursor{}
	for {
		page, err := s.Messages(ctx, c.ID, cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		last := page[len(page)-1]
		cursor = store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	if len(all) != n {
		t.Fatalf("paged through %d messages, want %d", len(all), n)
	}
	for i := 1; i < n; i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("messages not newest first at %d", i)
		}
	}
	_, err = s.Messages(ctx, c.ID, store.Cursor{}, store.MaxPageSize+1)
	wantInputError(t, err, "limit")
}

// TestOpenConversationRace: both members opening at once get one
// conversation.
func TestOpenConversationRace(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, _ := newCustomer(t, s, "alice")
	bob, _ := newCustomer(t, s, "bob")
	var wg sync.WaitGroup
	ids := make([]int64, 10)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := alice.ID, bob.ID
			if i%2 == 1 {
				a, b = b, a
			}
			c, err := s.OpenConversation(ctx, a, b, t0)
			if err != nil {
				t.Error(err)
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent opens returned different conversations: %v", ids)
		}
	}
}
