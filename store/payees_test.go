package store_test

import (
	"context"
	"strings"
	"testing"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestPayees(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, own := newCustomer(t, s, "alice")
	_, bob := newCustomer(t, s, "bob")
	_, carol := newCustomer(t, s, "carol")

	p, err := s.AddPayee(ctx, alice.ID, "Bob", store.FormatAccountNumber(bob.Number), t0)
	if err != nil {
		t.Fatal(err)
	}
	if p.CustomerID != alice.ID || p.Nickname != "Bob" || p.Number != bob.Number || !p.CreatedAt.Equal(t0) {
		t.Fatalf("payee = %+v", p)
	}
	// Unique per customer by account and by nickname in any case.
	_, err = s.AddPayee(ctx, alice.ID, "Bobby", bob.Number, t0)
	wantErr(t, err, store.ErrAlreadyExists)
	_, err = s.AddPayee(ctx, alice.ID, "BOB", carol.Number, t0)
	wantErr(t, err, store.ErrAlreadyExists)
	c, err := s.AddPayee(ctx, alice.ID, "Carol", carol.Number, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Another customer may use the same nickname and account.
	if _, err := s.AddPayee(ctx, carol.CustomerID, "Bob", bob.Number, t0); err != nil {
		t.Fatal(err)
	}

	list, err := s.ListPayees(ctx, alice.ID)
	if err != nil || len(list) != 2 || list[0].ID != p.ID || list[1].ID != c.ID {
		t.Fatalf("ListPayees = %+v, %v", list, err)
	}
	renamed, err := s.RenamePayee(ctx, alice.ID, c.ID, "Carol (landlord)")
	if err != nil || renamed.Nickname != "Carol (landlord)" || renamed.Number != carol.Number {
		t.Fatalf("RenamePayee = %+v, %v", renamed, err)
	}
	_, err = s.RenamePayee(ctx, alice.ID, c.ID, "bob")
	wantErr(t, err, store.ErrAlreadyExists)
	_, err = s.RenamePayee(ctx, carol.CustomerID, c.ID, "mine now")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeletePayee(ctx, carol.CustomerID, c.ID), store.ErrNotFound)
	if err := s.DeletePayee(ctx, alice.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeletePayee(ctx, alice.ID, c.ID), store.ErrNotFound)
	list, _ = s.ListPayees(ctx, alice.ID)
	if len(list) != 1 {
		t.Fatalf("%d payees after delete, want 1", len(list))
	}

	_, err = s.AddPayee(ctx, alice.ID, "Me", own.Number, t0)
	wantInputError(t, err, "number")
	_, err = s.AddPayee(ctx, alice.ID, "Nobody", "100000000008", t0)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.AddPayee(ctx, alice.ID+99, "Bob", bob.Number, t0)
	wantErr(t, err, store.ErrNotFound)
	for nick, field := range map[string]string{
		"": "nickname", " ": "nickname", " Bob": "nickname", strings.Repeat("n", store.MaxNicknameLen+1): "nickname",
		"a\x00": "nickname", "\xff": "nickname", "two\nlines": "nickname", "Bob\u202E": "nickname",
	} {
		_, err = s.AddPayee(ctx, alice.ID, nick, carol.Number, t0)
		wantInputError(t, err, field)
		_, err = s.RenamePayee(ctx, alice.ID, p.ID, nick)
		wantInputError(t, err, field)
	}
	for _, n := range []string{"12", "100000000009", "\xff", "\x00"} {
		_, err = s.AddPayee(ctx, alice.ID, "X", n, t0)
		wantInputError(t, err, "number")
	}
}
