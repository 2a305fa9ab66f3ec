package apptier_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"bankwire/apptier"
	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/proto/wire"
	"bankwire/store"
	"bankwire/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantErr checks that err is a *wire.Error with the code and (if not
// empty) the field, and that it carries a user-facing message.
func wantErr(t testing.TB, err error, code wire.Code, field string) {
	t.Helper()
	var pe *wire.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T): want *proto.Error %v", err, err, code)
	}
	if pe.Code != code || field != "" && pe.Field != field {
		t.Fatalf("error %v: want code %v field %q", pe, code, field)
	}
	if pe.Message == "" || strings.Contains(strings.ToLower(pe.Message), "sql") || strings.Contains(pe.Message, "pq:") {
		t.Fatalf("error message %q is empty or leaks internals", pe.Message)
	}
}

type bank struct {
	t   testing.TB
	srv *apptiertest.Server
	c   *proto.Client
}

func newBank(t testing.TB, opts ...apptiertest.Option) *bank {
	srv := apptiertest.Start(t, opts...)
	return &bank{t: t, srv: srv, c: srv.Client(t)}
}

// call makes a call to b with the test's deadline.
func call[Req, Resp any](b *bank, m wire.Method[Req, Resp], req Req) (Resp, error) {
	return proto.Call(ctxT(b.t), b.c, m, req)
}

// callErr makes a call to b for its error alone.
func callErr[Req, Resp any](b *bank, m wire.Method[Req, Resp], req Req) error {
	_, err := call(b, m, req)
	return err
}

// must makes a call to b that has to succeed and returns its response.
func must[Req, Resp any](b *bank, m wire.Method[Req, Resp], req Req) Resp {
	b.t.Helper()
	out, err := call(b, m, req)
	if err != nil {
		b.t.Fatalf("%v: %v", m, err)
	}
	return out
}

func (b *bank) signIn(user, pw string) string {
	b.t.Helper()
	return b.srv.SignIn(b.t, b.c, user, pw)
}

func (b *bank) accounts(tok string) []wire.Account {
	b.t.Helper()
	out := must(b, wire.AccountsList, wire.SessionRequest{Session: tok})
	return out.Accounts
}

func (b *bank) account(tok, kind string) wire.Account {
	b.t.Helper()
	for _, a := range b.accounts(tok) {
		if a.Kind == kind {
			return a
		}
	}
	b.t.Fatalf("no %s account", kind)
	return wire.Account{}
}

func TestInfo(t *testing.T) {
	b := newBank(t)
	info := must(b, wire.Info, wire.InfoRequest{})
	if !info.DemoData || info.MinPassword != 8 || info.DailyLimit != 1_000_000 || info.LimitCurrency != "USD" {
		t.Fatalf("info = %+v", info)
	}
}

func TestSignUpAndSignIn(t *testing.T) {
	b := newBank(t, apptiertest.WithoutDemoData())
	up := must(b, wire.SignUp, wire.SignUpRequest{Username: "Carol.W", DisplayName: "Carol White", Password: "a long enough passphrase"})
	if len(up.Token) < 22 || up.Customer.Username != "Carol.W" || up.Customer.DisplayName != "Carol White" {
		t.Fatalf("sign-up answer %+v", up)
	}
	accs := b.accounts(up.Token)
	if len(accs) != 1 || accs[0].Kind != "checking" || accs[0].Balance != 0 || accs[0].Currency != "USD" {
		t.Fatalf("new customer's accounts = %+v", accs)
	}
	// Usernames are unique case-insensitively.
	err := callErr(b, wire.SignUp, wire.SignUpRequest{Username: "carol.w", Password: "another long passphrase"})
	wantErr(t, err, wire.AlreadyExists, "username")
	// Sign in, case-insensitively, gets a new token each time.
	t1 := b.signIn("carol.w", "a long enough passphrase")
	t2 := b.signIn("CAROL.W", "a long enough passphrase")
	if t1 == t2 || t1 == up.Token {
		t.Fatal("sign-in reused a session token")
	}
	sess := must(b, wire.SessionCheck, wire.SessionRequest{Session: t1})
	if sess.Customer.Username != "Carol.W" {
		t.Fatalf("session check = %+v", sess)
	}
	// Only a hash of the token is stored: the session row holds sha256 of
	// the token, and no column anywhere in it holds the token itself.
	sum := sha256.Sum256([]byte(t1))
	var n int
	if err := b.srv.Store.Pool().QueryRow(ctxT(t), "SELECT count(*) FROM sessions WHERE token_hash = $1", sum[:]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("sessions with sha256(token) = %d, %v; want 1", n, err)
	}
	if err := b.srv.Store.Pool().QueryRow(ctxT(t), "SELECT count(*) FROM sessions s WHERE strpos(s::text, $1) > 0", t1).Scan(&n); err != nil || n != 0 {
		t.Fatalf("raw token found in the sessions table (%d, %v)", n, err)
	}
}

// rawBody is a body that is already encoded, sent as is.
type rawBody []byte

func (b rawBody) MarshalWire(dst []byte) []byte { return append(dst, b...) }

func TestSignUpValidation(t *testing.T) {
	b := newBank(t, apptiertest.WithoutDemoData())
	cases := []struct {
		req   wire.SignUpRequest
		field string
	}{
		{wire.SignUpRequest{Username: "ab", Password: "long enough pw"}, "username"},
		{wire.SignUpRequest{Username: strings.Repeat("a", 33), Password: "long enough pw"}, "username"},
		{wire.SignUpRequest{Username: "bad name", Password: "long enough pw"}, "username"},
		{wire.SignUpRequest{Username: "bad/name", Password: "long enough pw"}, "username"},
		{wire.SignUpRequest{Username: "ünicode", Password: "long enough pw"}, "username"},
		{wire.SignUpRequest{Username: "x\x00y", Password: "long enough pw"}, "username"},
		{wire.SignUpRequest{Username: "okname", Password: "short"}, "password"},
		{wire.SignUpRequest{Username: "okname", Password: strings.Repeat("p", 129)}, "password"},
		{wire.SignUpRequest{Username: "okname", Password: "password123"}, "password"},
		{wire.SignUpRequest{Username: "okname123", Password: "okname123"}, "password"},
		{wire.SignUpRequest{Username: "okname", Password: "long enough pw", DisplayName: strings.Repeat("d", 65)}, "display_name"},
		{wire.SignUpRequest{Username: "okname", Password: "long enough pw", DisplayName: "bell\a"}, "display_name"},
		{wire.SignUpRequest{Username: "okname", Password: "long enough pw", DisplayName: string([]byte{0xc3, 0x28})}, "display_name"},
	}
	for _, c := range cases {
		err := callErr(b, wire.SignUp, c.req)
		wantErr(t, err, wire.InvalidArgument, c.field)
	}
	// A 64-character password (ASVS: at least 64 allowed) is accepted.
	must(b, wire.SignUp, wire.SignUpRequest{Username: "longpw", Password: strings.Repeat("Zq9-", 16)})
	// A malformed body is INVALID_ARGUMENT too, with no field: here a
	// sign-up cut short after the username.
	rawSignUp := wire.Method[rawBody, wire.SignInResponse]{Op: wire.OpSignUp, Name: "signup"}
	err := callErr(b, rawSignUp, rawBody(wire.AppendString(nil, "x")))
	wantErr(t, err, wire.InvalidArgument, "")
	if e, ok := errors.AsType[*wire.Error](err); !ok || e.Message != "malformed request body" {
		t.Fatalf("cut-short body: %v", err)
	}
}

func TestSignInUnknownUserLooksLikeWrongPassword(t *testing.T) {
	b := newBank(t)
	h := b.srv.App.Hasher()

	before := h.Computations()
	errWrong := callErr(b, wire.SignIn, wire.SignInRequest{Username: "alice", Password: "not her password"})
	paidWrong := h.Computations() - before

	before = h.Computations()
	errUnknown := callErr(b, wire.SignIn, wire.SignInRequest{Username: "nobody-here", Password: "not her password"})
	paidUnknown := h.Computations() - before

	wantErr(t, errWrong, wire.Unauthenticated, "")
	if errWrong.Error() != errUnknown.Error() {
		t.Fatalf("answers differ: wrong password %q, unknown user %q", errWrong, errUnknown)
	}
	if paidWrong != 1 || paidUnknown != 1 {
		t.Fatalf("argon2id computations: wrong password %d, unknown user %d; want 1 each", paidWrong, paidUnknown)
	}
	// Every attempt is audited.
	var n int
	if err := b.srv.Store.Pool().QueryRow(ctxT(t), "SELECT count(*) FROM signin_events").Scan(&n); err != nil || n < 2 {
		t.Fatalf("sign-in audit events = %d, %v", n, err)
	}
}

func TestSignInThrottlingPerIP(t *testing.T) {
	b := newBank(t, apptiertest.WithConfig(func(c *apptier.Config) {
		c.IPLimit = 4
		c.LockAfter = 100
		c.DelayBase = time.Millisecond
		c.DelayMax = 2 * time.Millisecond
	}))
	ip := wire.ClientInfo{IP: "192.0.2.55"}
	for i := 0; i < 4; i++ {
		err := callErr(b, wire.SignIn, wire.SignInRequest{Username: fmt.Sprintf("guess%d", i), Password: "wrong password", ClientInfo: ip})
		wantErr(t, err, wire.Unauthenticated, "")
	}
	err := callErr(b, wire.SignIn, wire.SignInRequest{Username: "alice", Password: "alice-demo-pass", ClientInfo: ip})
	wantErr(t, err, wire.ResourceExhausted, "")
	// Another address is not affected.
	b.srv.SignIn(t, b.c, "alice", "alice-demo-pass")
}

func TestSessionExpiry(t *testing.T) {
	clock := apptiertest.NewClock(apptiertest.Now())
	b := newBank(t, apptiertest.WithClock(clock.Now), apptiertest.WithIdleTimeout(10*time.Minute),
		apptiertest.WithConfig(func(c *apptier.Config) { c.AbsoluteTimeout = 30 * time.Minute }))
	tok := b.signIn("alice", "alice-demo-pass")
	// Use within the idle window extends it, up to the absolute limit.
	for i := 0; i < 3; i++ {
		clock.Advance(8 * time.Minute)
		b.accounts(tok)
	}
	clock.Advance(7 * time.Minute) // 31 minutes after sign-in
	err := callErr(b, wire.AccountsList, wire.SessionRequest{Session: tok})
	wantErr(t, err, wire.Unauthenticated, "")

	tok = b.signIn("alice", "alice-demo-pass")
	clock.Advance(10*time.Minute + time.Second)
	err = callErr(b, wire.AccountsList, wire.SessionRequest{Session: tok})
	wantErr(t, err, wire.Unauthenticated, "")

	for _, bad := range []string{"", "garbage", strings.Repeat("x", 500)} {
		err = callErr(b, wire.AccountsList, wire.SessionRequest{Session: bad})
		wantErr(t, err, wire.Unauthenticated, "")
	}
}

func TestSignOut(t *testing.T) {
	b := newBank(t)
	t1 := b.signIn("alice", "alice-demo-pass")
	t2 := b.signIn("alice", "alice-demo-pass")
	t3 := b.signIn("alice", "alice-demo-pass")
	must(b, wire.SignOut, wire.SessionRequest{Session: t1})
	wantErr(t, callErr(b, wire.AccountsList, wire.SessionRequest{Session: t1}), wire.Unauthenticated, "")
	b.accounts(t2)                                          // others still work
	must(b, wire.SignOut, wire.SessionRequest{Session: t1}) // twice is fine
	must(b, wire.SignOutAll, wire.SessionRequest{Session: t2})
	for _, tok := range []string{t2, t3} {
		wantErr(t, callErr(b, wire.AccountsList, wire.SessionRequest{Session: tok}), wire.Unauthenticated, "")
	}
	bob := b.signIn("bob", "bob-demo-pass")
	b.accounts(bob) // sign out everywhere is per customer
}

func TestAccounts(t *testing.T) {
	b := newBank(t)
	tok := b.signIn("alice", "alice-demo-pass")
	accs := b.accounts(tok)
	if len(accs) != 2 {
		t.Fatalf("alice has %d accounts, want 2", len(accs))
	}
	for _, a := range accs {
		if a.Balance <= 0 || a.Currency != "USD" || len(a.Number) != 12 {
			t.Fatalf("account %+v", a)
		}
	}
	opened := must(b, wire.AccountOpen, wire.OpenAccountRequest{SessionRequest: wire.SessionRequest{Session: tok}, Kind: "savings"})
	if opened.Account.Kind != "savings" || opened.Account.Balance != 0 {
		t.Fatalf("opened %+v", opened.Account)
	}
	got := must(b, wire.AccountGet, wire.AccountRequest{SessionRequest: wire.SessionRequest{Session: tok}, Number: opened.Account.Number})
	if got.Account.Number != opened.Account.Number {
		t.Fatalf("get %+v", got)
	}
	wantErr(t, callErr(b, wire.AccountOpen, wire.OpenAccountRequest{SessionRequest: wire.SessionRequest{Session: tok}, Kind: "crypto"}), wire.InvalidArgument, "kind")
	wantErr(t, callErr(b, wire.AccountOpen, wire.OpenAccountRequest{SessionRequest: wire.SessionRequest{Session: tok}, Kind: "savings", Currency: "EUR"}), wire.InvalidArgument, "currency")
	wantErr(t, callErr(b, wire.AccountGet, wire.AccountRequest{SessionRequest: wire.SessionRequest{Session: tok}, Number: "12345"}), wire.InvalidArgument, "number")
}

func TestHistoryPagination(t *testing.T) {
	b := newBank(t)
	tok := b.signIn("alice", "alice-demo-pass")
	chk := b.account(tok, "checking")
	req := wire.HistoryRequest{SessionRequest: wire.SessionRequest{Session: tok}, Number: chk.Number, Limit: 7}
	var all []wire.Entry
	seen := map[int64]bool{}
	for pages := 0; ; pages++ {
		if pages > 200 {
			t.Fatal("pagination does not end")
		}
		page := must(b, wire.AccountHistory, req)
		for _, e := range page.Entries {
			if seen[e.ID] {
				t.Fatalf("entry %d on two pages", e.ID)
			}
			seen[e.ID] = true
		}
		all = append(all, page.Entries...)
		if pages == 0 {
			// New entries arriving while paging do not disturb later pages.
			var bobAcc wire.Account
			bob := b.signIn("bob", "bob-demo-pass")
			bobAcc = b.account(bob, "checking")
			must(b, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: bob},
				IdempotencyKey: "hist-1", From: bobAcc.Number, To: chk.Number, Amount: "1.00"})
		}
		if page.NextCursor == "" {
			break
		}
		req.Cursor = page.NextCursor
	}
	if len(all) < 20 {
		t.Fatalf("demo history has only %d entries", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].CreatedAt.After(all[i-1].CreatedAt) {
			t.Fatalf("history not newest first at %d", i)
		}
	}
	// Balance after of the newest entry on the first page matched the
	// balance then; the ledger's running balances chain.
	for i := 0; i+1 < len(all); i++ {
		if all[i+1].BalanceAfter+all[i].Amount != all[i].BalanceAfter {
			t.Fatalf("balance_after does not chain at entry %d: %+v then %+v", i, all[i+1], all[i])
		}
	}
	for _, cur := range []string{"!!!", "bm90LWEtY3Vyc29y", strings.Repeat("A", 100)} {
		req.Cursor = cur
		wantErr(t, callErr(b, wire.AccountHistory, req), wire.InvalidArgument, "cursor")
	}
	req.Cursor, req.Limit = "", 1000
	wantErr(t, callErr(b, wire.AccountHistory, req), wire.InvalidArgument, "limit")
}

func TestTransfers(t *testing.T) {
	// The daily limit below counts the day's transfers, and the demo data
	// books up to 1,650.00 of alice's own bills on the day it is loaded:
	// the test runs on the next day, which holds only its own transfers.
	clock := apptiertest.NewClock(apptiertest.Now())
	b := newBank(t, apptiertest.WithClock(clock.Now), apptiertest.WithDailyLimit(50_000))
	clock.AdvanceToNextDay()
	alice := b.signIn("alice", "alice-demo-pass")
	bob := b.signIn("bob", "bob-demo-pass")
	aChk, aSav := b.account(alice, "checking"), b.account(alice, "savings")
	bChk := b.account(bob, "checking")
	tr := func(key, from, to, amount string) (wire.TransferResponse, error) {
		return call(b, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: alice},
			IdempotencyKey: key, From: from, To: to, Amount: amount, Memo: "test"})
	}
	// To bob, then the same key again: one transfer.
	r1, err := tr("k1", aChk.Number, bChk.Number, "12.34")
	if err != nil || r1.Transfer.Amount != 1234 || r1.Replayed {
		t.Fatalf("transfer: %+v, %v", r1, err)
	}
	r2, err := tr("k1", aChk.Number, bChk.Number, "12.34")
	if err != nil || r2.Transfer.ID != r1.Transfer.ID || !r2.Replayed {
		t.Fatalf("replay: %+v, %v", r2, err)
	}
	_, err = tr("k1", aChk.Number, bChk.Number, "12.35")
	wantErr(t, err, wire.FailedPrecondition, "idempotency_key")
	if got := b.account(bob, "checking").Balance; got != bChk.Balance+1234 {
		t.Fatalf("bob's balance %d, want %d", got, bChk.Balance+1234)
	}
	// Spaces and dashes in the number are fine.
	spaced := aSav.Number[:4] + " " + aSav.Number[4:8] + "-" + aSav.Number[8:]
	if _, err := tr("k2", aChk.Number, spaced, "1"); err != nil {
		t.Fatalf("own transfer with a spaced number: %v", err)
	}
	got := must(b, wire.TransferGet, wire.TransferGetRequest{SessionRequest: wire.SessionRequest{Session: bob}, ID: r1.Transfer.ID})
	if got.Transfer.Amount != 1234 {
		t.Fatalf("bob sees the transfer as %+v", got)
	}

	bad := []struct {
		key, from, to, amount string
		code                  wire.Code
		field                 string
	}{
		{"b1", aChk.Number, bChk.Number, "0", wire.InvalidArgument, "amount"},
		{"b2", aChk.Number, bChk.Number, "-5", wire.InvalidArgument, "amount"},
		{"b3", aChk.Number, bChk.Number, "1.001", wire.InvalidArgument, "amount"},
		{"b4", aChk.Number, bChk.Number, "ten", wire.InvalidArgument, "amount"},
		{"b5", aChk.Number, bChk.Number, "99999999.00", wire.FailedPrecondition, "amount"},
		{"b6", aChk.Number, bChk.Number, "600.00", wire.FailedPrecondition, "amount"}, // over the daily limit of 500
		{"b7", aChk.Number, aChk.Number, "1.00", wire.InvalidArgument, "to"},
		{"b8", aChk.Number, "000000000000", "1.00", wire.NotFound, "to"},
		{"b9", aChk.Number, "123", "1.00", wire.InvalidArgument, "to"},
		{"b10", bChk.Number, aChk.Number, "1.00", wire.NotFound, "from"}, // bob's money
		{"", aChk.Number, bChk.Number, "1.00", wire.InvalidArgument, "idempotency_key"},
		{strings.Repeat("k", 65), aChk.Number, bChk.Number, "1.00", wire.InvalidArgument, "idempotency_key"},
		{"with space", aChk.Number, bChk.Number, "1.00", wire.InvalidArgument, "idempotency_key"},
	}
	for _, c := range bad {
		_, err := tr(c.key, c.from, c.to, c.amount)
		wantErr(t, err, c.code, c.field)
	}
	// The unknown-account number used above must pass its check digit, so
	// that NOT_FOUND (not INVALID_ARGUMENT) is what was tested.
	var memoErr error
	memoErr = callErr(b, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: alice},
		IdempotencyKey: "m1", From: aChk.Number, To: bChk.Number, Amount: "1", Memo: strings.Repeat("m", 141)})
	wantErr(t, memoErr, wire.InvalidArgument, "memo")
	// A NUL, a tab, a right-to-left override (the recipient would read the
	// memo reversed) and a line separator.
	for i, memo := range []string{"nul\x00byte", "tab\there", "Invoice \u202E0001", "two\u2028lines"} {
		memoErr = callErr(b, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: alice},
			IdempotencyKey: fmt.Sprintf("m%d", i+2), From: aChk.Number, To: bChk.Number, Amount: "1", Memo: memo})
		wantErr(t, memoErr, wire.InvalidArgument, "memo")
	}
	// Nothing above moved money.
	if got := b.account(alice, "checking").Balance; got != aChk.Balance-1234-100 {
		t.Fatalf("alice's checking %d, want %d", got, aChk.Balance-1234-100)
	}
}

// TestAuthorization proves a customer can never read or move another
// customer's money: every operation on alice's things answers NOT_FOUND to bob.
func TestAuthorization(t *testing.T) {
	b := newBank(t)
	alice := b.signIn("alice", "alice-demo-pass")
	bob := b.signIn("bob", "bob-demo-pass")
	aChk := b.account(alice, "checking")
	bChk := b.account(bob, "checking")
	tr := must(b, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: alice},
		IdempotencyKey: "auth-1", From: aChk.Number, To: b.account(alice, "savings").Number, Amount: "1"})
	conv := must(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: wire.SessionRequest{Session: alice}, Username: "bob"})
	carolTok := func() string {
		up := must(b, wire.SignUp, wire.SignUpRequest{Username: "carol", Password: "carol's long passphrase"})
		return up.Token
	}()
	bs := wire.SessionRequest{Session: bob}
	wantErr(t, callErr(b, wire.AccountGet, wire.AccountRequest{SessionRequest: bs, Number: aChk.Number}), wire.NotFound, "")
	wantErr(t, callErr(b, wire.AccountHistory, wire.HistoryRequest{SessionRequest: bs, Number: aChk.Number}), wire.NotFound, "")
	wantErr(t, callErr(b, wire.TransferCreate, wire.TransferRequest{SessionRequest: bs, IdempotencyKey: "steal",
		From: aChk.Number, To: bChk.Number, Amount: "1"}), wire.NotFound, "from")
	wantErr(t, callErr(b, wire.TransferGet, wire.TransferGetRequest{SessionRequest: bs, ID: tr.Transfer.ID}), wire.NotFound, "")
	cs := wire.SessionRequest{Session: carolTok}
	wantErr(t, callErr(b, wire.ChatHistory, wire.ChatHistoryRequest{SessionRequest: cs, ConversationID: conv.Conversation.ID}), wire.NotFound, "")
	wantErr(t, callErr(b, wire.ChatSend, wire.ChatSendRequest{SessionRequest: cs, ConversationID: conv.Conversation.ID, Body: "hi"}), wire.NotFound, "")
	payees := must(b, wire.PayeesList, wire.SessionRequest{Session: alice})
	if len(payees.Payees) == 0 {
		t.Fatal("alice has no demo payees")
	}
	wantErr(t, callErr(b, wire.PayeeRename, wire.PayeeRenameRequest{SessionRequest: bs, ID: payees.Payees[0].ID, Nickname: "x"}), wire.NotFound, "")
	wantErr(t, callErr(b, wire.PayeeDelete, wire.PayeeDeleteRequest{SessionRequest: bs, ID: payees.Payees[0].ID}), wire.NotFound, "")
	// And the unknown-account answer is the same whether or not it exists.
	e1 := callErr(b, wire.AccountGet, wire.AccountRequest{SessionRequest: bs, Number: aChk.Number})
	e2 := callErr(b, wire.AccountGet, wire.AccountRequest{SessionRequest: bs, Number: "000000000000"})
	if e1.Error() != e2.Error() {
		t.Fatalf("another customer's account (%v) and a missing one (%v) answer differently", e1, e2)
	}
}

func TestPayees(t *testing.T) {
	b := newBank(t)
	alice := b.signIn("alice", "alice-demo-pass")
	bob := b.signIn("bob", "bob-demo-pass")
	bSav := b.account(bob, "savings")
	as := wire.SessionRequest{Session: alice}
	p := must(b, wire.PayeeAdd, wire.PayeeAddRequest{SessionRequest: as, Nickname: "Bob's savings", Number: bSav.Number})
	if p.Payee.Number != bSav.Number || p.Payee.Nickname != "Bob's savings" {
		t.Fatalf("payee %+v", p)
	}
	p = must(b, wire.PayeeRename, wire.PayeeRenameRequest{SessionRequest: as, ID: p.Payee.ID, Nickname: "Bob (savings)"})
	if p.Payee.Nickname != "Bob (savings)" {
		t.Fatalf("renamed payee %+v", p)
	}
	wantErr(t, callErr(b, wire.PayeeAdd, wire.PayeeAddRequest{SessionRequest: as, Nickname: "again", Number: bSav.Number}), wire.AlreadyExists, "")
	wantErr(t, callErr(b, wire.PayeeAdd, wire.PayeeAddRequest{SessionRequest: as, Nickname: "", Number: bSav.Number}), wire.InvalidArgument, "nickname")
	wantErr(t, callErr(b, wire.PayeeAdd, wire.PayeeAddRequest{SessionRequest: as, Nickname: strings.Repeat("n", store.MaxNicknameLen+1), Number: bSav.Number}), wire.InvalidArgument, "nickname")
	// The longest nickname the store keeps (and the web form allows) is
	// accepted.
	long := must(b, wire.PayeeRename, wire.PayeeRenameRequest{SessionRequest: as, ID: p.Payee.ID, Nickname: strings.Repeat("n", store.MaxNicknameLen)})
	if long.Payee.Nickname != strings.Repeat("n", store.MaxNicknameLen) {
		t.Fatalf("renamed payee %+v", long)
	}
	must(b, wire.PayeeRename, wire.PayeeRenameRequest{SessionRequest: as, ID: p.Payee.ID, Nickname: "Bob (savings)"})
	wantErr(t, callErr(b, wire.PayeeAdd, wire.PayeeAddRequest{SessionRequest: as, Nickname: "ghost", Number: "000000000000"}), wire.NotFound, "number")
	wantErr(t, callErr(b, wire.PayeeAdd, wire.PayeeAddRequest{SessionRequest: as, Nickname: "typo", Number: "12345678901"}), wire.InvalidArgument, "number")
	list := must(b, wire.PayeesList, as)
	found := false
	for _, q := range list.Payees {
		found = found || q.ID == p.Payee.ID
	}
	if !found {
		t.Fatal("new payee not listed")
	}
	must(b, wire.PayeeDelete, wire.PayeeDeleteRequest{SessionRequest: as, ID: p.Payee.ID})
	wantErr(t, callErr(b, wire.PayeeDelete, wire.PayeeDeleteRequest{SessionRequest: as, ID: p.Payee.ID}), wire.NotFound, "")
}

// TestTransferForm: transfers.form answers what accounts.list and
// payees.list answer, in one call, and only to a live session.
func TestTransferForm(t *testing.T) {
	b := newBank(t)
	alice := b.signIn("alice", "alice-demo-pass")
	as := wire.SessionRequest{Session: alice}
	accts := must(b, wire.AccountsList, as)
	payees := must(b, wire.PayeesList, as)
	if len(accts.Accounts) == 0 || len(payees.Payees) == 0 {
		t.Fatalf("alice has %d accounts and %d payees; the demo data gives her both", len(accts.Accounts), len(payees.Payees))
	}
	form := must(b, wire.TransferForm, as)
	if diff := cmp.Diff(accts.Accounts, form.Accounts); diff != "" {
		t.Errorf("transfers.form accounts differ from accounts.list (-list +form):\n%s", diff)
	}
	if diff := cmp.Diff(payees.Payees, form.Payees); diff != "" {
		t.Errorf("transfers.form payees differ from payees.list (-list +form):\n%s", diff)
	}
	must(b, wire.SignOut, as)
	wantErr(t, callErr(b, wire.TransferForm, as), wire.Unauthenticated, "")
}

func TestChat(t *testing.T) {
	b := newBank(t)
	alice := b.signIn("alice", "alice-demo-pass")
	bob := b.signIn("bob", "bob-demo-pass")
	as, bs := wire.SessionRequest{Session: alice}, wire.SessionRequest{Session: bob}
	c1 := must(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: as, Username: "bob"})
	c2 := must(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: bs, Username: "ALICE"})
	if c1.Conversation.ID != c2.Conversation.ID || c1.Conversation.With.Username != "bob" || c2.Conversation.With.Username != "alice" {
		t.Fatalf("conversations %+v / %+v", c1, c2)
	}
	sent := must(b, wire.ChatSend, wire.ChatSendRequest{SessionRequest: as, ConversationID: c1.Conversation.ID, Body: "Lunch at noon?\nMy treat."})
	if sent.Message.From.Username != "alice" {
		t.Fatalf("sent %+v", sent)
	}
	hist := must(b, wire.ChatHistory, wire.ChatHistoryRequest{SessionRequest: bs, ConversationID: c1.Conversation.ID, Limit: 2})
	if len(hist.Messages) == 0 || hist.Messages[0].Body != "Lunch at noon?\nMy treat." {
		t.Fatalf("bob's history %+v", hist)
	}
	list := must(b, wire.ChatList, bs)
	if len(list.Conversations) != 1 || list.Conversations[0].With.Username != "alice" {
		t.Fatalf("bob's conversations %+v", list)
	}
	wantErr(t, callErr(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: as, Username: "alice"}), wire.InvalidArgument, "username")
	wantErr(t, callErr(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: as, Username: "nobody"}), wire.NotFound, "username")
	wantErr(t, callErr(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: as, Username: "bankwire-system"}), wire.NotFound, "username")
	wantErr(t, callErr(b, wire.ChatSend, wire.ChatSendRequest{SessionRequest: as, ConversationID: c1.Conversation.ID, Body: "  "}), wire.InvalidArgument, "body")
	wantErr(t, callErr(b, wire.ChatSend, wire.ChatSendRequest{SessionRequest: as, ConversationID: c1.Conversation.ID, Body: strings.Repeat("w", 2001)}), wire.InvalidArgument, "body")
	wantErr(t, callErr(b, wire.ChatSend, wire.ChatSendRequest{SessionRequest: as, ConversationID: 999999, Body: "hi"}), wire.NotFound, "")
}

// TestPush proves that a chat message and a received transfer reach a
// subscribed connection, including one served by another app-tier replica
// on the same database.
func TestPush(t *testing.T) {
	b := newBank(t)
	replica := apptiertest.Start(t, apptiertest.WithStore(b.srv.Store), apptiertest.WithoutDemoData())
	rc := replica.Client(t)
	alice := b.signIn("alice", "alice-demo-pass")
	bob := b.signIn("bob", "bob-demo-pass")
	ctx := ctxT(t)
	sub, err := proto.Subscribe(ctx, rc, wire.Subscribe, wire.SessionRequest{Session: bob})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	conv := must(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: wire.SessionRequest{Session: alice}, Username: "bob"})
	must(b, wire.ChatSend, wire.ChatSendRequest{SessionRequest: wire.SessionRequest{Session: alice}, ConversationID: conv.Conversation.ID, Body: "ping from alice"})
	bChk := b.account(bob, "checking")
	must(b, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: alice}, IdempotencyKey: "push-1",
		From: b.account(alice, "checking").Number, To: bChk.Number, Amount: "3.21"})

	var gotChat, gotBalance bool
	for !(gotChat && gotBalance) {
		var ev wire.Event
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := sub.Next(nctx, &ev)
		cancel()
		if err != nil {
			t.Fatalf("waiting for events (chat %v, balance %v): %v", gotChat, gotBalance, err)
		}
		switch ev.Kind {
		case wire.EventChatMessage:
			gotChat = ev.Message != nil && ev.Message.Body == "ping from alice" && ev.Message.From.Username == "alice"
		case wire.EventBalance:
			gotBalance = ev.Account != nil && ev.Account.Number == bChk.Number && ev.Account.Balance == bChk.Balance+321
		}
	}
	// An invalid session cannot subscribe.
	if _, err := proto.Subscribe(ctx, rc, wire.Subscribe, wire.SessionRequest{Session: "nope"}); wire.ErrorCode(err) != wire.Unauthenticated {
		t.Fatalf("subscribe with a bad session: %v", err)
	}
}

// TestConcurrentTransfersKeepInvariant: 32 clients transfer at random among
// the demo accounts; money is neither made nor lost and no balance goes
// negative.
func TestConcurrentTransfersKeepInvariant(t *testing.T) {
	b := newBank(t)
	users := []struct{ name, pw string }{{"alice", "alice-demo-pass"}, {"bob", "bob-demo-pass"}}
	var toks []string
	var numbers []string
	for _, u := range users {
		tok := b.signIn(u.name, u.pw)
		toks = append(toks, tok)
		for _, a := range b.accounts(tok) {
			numbers = append(numbers, a.Number)
		}
	}
	owner := map[string]int{}
	for i, tok := range toks {
		for _, a := range b.accounts(tok) {
			owner[a.Number] = i
		}
	}
	total := func() int64 {
		var sum int64
		for _, tok := range toks {
			for _, a := range b.accounts(tok) {
				sum += a.Balance
			}
		}
		return sum
	}
	before := total()
	const clients, each = 32, 15
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := b.srv.Client(t)
			for i := 0; i < each; i++ {
				from := numbers[(w+i)%len(numbers)]
				to := numbers[(w+i+1+w%3)%len(numbers)]
				if from == to {
					continue
				}
				amount := fmt.Sprintf("%d.%02d", (w*7+i*13)%400, (w+i)%100)
				_, err := proto.Call(ctxT(t), c, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: toks[owner[from]]},
					IdempotencyKey: fmt.Sprintf("inv-%d-%d", w, i), From: from, To: to, Amount: amount})
				switch code := wire.ErrorCode(err); code {
				case wire.OK:
					ok.Add(1)
				case wire.FailedPrecondition, wire.InvalidArgument:
					refused.Add(1)
				default:
					t.Errorf("transfer %s -> %s %s: %v", from, to, amount, err)
				}
			}
		}(w)
	}
	wg.Wait()
	if ok.Load() == 0 {
		t.Fatal("no transfer succeeded")
	}
	if after := total(); after != before {
		t.Fatalf("total of customer balances changed from %d to %d", before, after)
	}
	for _, tok := range toks {
		for _, a := range b.accounts(tok) {
			if a.Balance < 0 {
				t.Fatalf("negative balance %+v", a)
			}
		}
	}
	t.Logf("%d transfers applied, %d refused by the rules", ok.Load(), refused.Load())
}

// TestDrainDuringLoad: the app tier drains (as on SIGTERM) while clients are
// busy; no request fails, because the client retries what was never started
// on a second replica and the drained server finishes what it started.
func TestDrainDuringLoad(t *testing.T) {
	b := newBank(t)
	second := apptiertest.Start(t, apptiertest.WithStore(b.srv.Store), apptiertest.WithoutDemoData())
	c, err := proto.NewClient(proto.ClientConfig{Addrs: []string{b.srv.Addr, second.Addr}, Secret: apptiertest.Secret,
		Name: "drain-test", DefaultTimeout: 10 * time.Second, Logger: apptiertest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok := b.signIn("alice", "alice-demo-pass")
	ctx := ctxT(t)
	var wg sync.WaitGroup
	var done, failed atomic.Int64
	stop := make(chan struct{})
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := proto.Call(ctx, c, wire.AccountsList, wire.SessionRequest{Session: tok}); err != nil {
					failed.Add(1)
					t.Errorf("call during drain: %v", err)
					return
				}
				done.Add(1)
			}
		}()
	}
	for done.Load() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	b.srv.Stop()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during drain (%d succeeded)", failed.Load(), done.Load())
	}
	t.Logf("%d requests succeeded across the drain", done.Load())
}

// Sessions are deleted a while after they expired, sign-in events after the
// audit retention; a retention shorter than the throttle window (which
// reads those events) is refused.
func TestRetentionPurgesOldSessionsAndSignInEvents(t *testing.T) {
	ctx := context.Background()
	clock := apptiertest.NewClock(apptiertest.Now())
	st := storetest.NewStore(t)
	b := newBank(t, apptiertest.WithStore(st), apptiertest.WithClock(clock.Now), apptiertest.WithConfig(func(c *apptier.Config) {
		c.AbsoluteTimeout = time.Hour
		c.SessionRetention = time.Hour
		c.AuditRetention = 24 * time.Hour
		c.PurgeInterval = 10 * time.Millisecond
	}))
	tok := b.signIn("alice", "alice-demo-pass")
	err := callErr(b, wire.SignIn, wire.SignInRequest{Username: "alice", Password: "not-alice-pass"})
	wantErr(t, err, wire.Unauthenticated, "")
	hash := sha256.Sum256([]byte(tok))
	failures := func() int {
		f, err := st.RecentFailures(ctx, "alice", "", clock.Now().Add(-365*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return f.Username
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s", what)
			}
		}
	}

	// Expired, but not for long enough: kept (several purges run meanwhile).
	clock.Advance(90 * time.Minute)
	time.Sleep(100 * time.Millisecond)
	if _, err := st.SessionByTokenHash(ctx, hash[:]); err != nil {
		t.Fatalf("session purged within its retention: %v", err)
	}
	clock.Advance(31 * time.Minute) // expired 1 h 1 min ago
	eventually("session purged", func() bool {
		_, err := st.SessionByTokenHash(ctx, hash[:])
		return errors.Is(err, store.ErrNotFound)
	})
	if n := failures(); n != 1 {
		t.Fatalf("%d failed sign-ins recorded before the audit retention passed, want 1", n)
	}
	clock.Advance(23 * time.Hour)
	eventually("sign-in events purged", func() bool { return failures() == 0 })

	_, err = apptier.New(apptier.Config{AuditRetention: time.Minute, ThrottleWindow: time.Hour}, st)
	if err == nil {
		t.Fatal("an audit retention shorter than the throttle window was accepted")
	}
	for _, c := range []apptier.Config{{SessionRetention: -time.Hour}, {PurgeInterval: -time.Minute}} {
		if _, err := apptier.New(c, st); err == nil {
			t.Fatalf("a negative retention setting was accepted: %+v", c)
		}
	}
}
