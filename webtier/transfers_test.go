package webtier_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"bankwire/apptier/apptiertest"
	"bankwire/store"
	"bankwire/webtier"
)

// unknownAccount returns a well-formed account number (valid check digit)
// that no customer has.
func unknownAccount(t *testing.T, s *site) string {
	t.Helper()
	for body := 10_000_000_007; ; body += 13 {
		for d := 0; d < 10; d++ {
			n := fmt.Sprintf("%d%d", body, d)
			if !store.ValidAccountNumber(n) {
				continue
			}
			if _, err := s.app.Store.AccountByNumber(context.Background(), n); err != nil {
				return n
			}
		}
	}
}

func balanceOf(t *testing.T, s *site, number string) int64 {
	t.Helper()
	a, err := s.app.Store.AccountByNumber(context.Background(), number)
	if err != nil {
		t.Fatalf("account %s: %v", number, err)
	}
	return a.Balance
}

func TestTransferFlow(t *testing.T) {
	s := startSite(t)
	alice, bob := s.alice(), s.bob()
	aChk, bChk := alice.checking(), bob.checking()
	aBefore, bBefore := balanceOf(t, s, aChk), balanceOf(t, s, bChk)

	form := url.Values{"key": {alice.formKey()}, "from": {aChk}, "to_number": {bChk}, "amount": {"12.34"}, "memo": {"Lunch <3"}}
	confirm := alice.post("/transfers/confirm", form)
	if confirm.Status != http.StatusOK {
		t.Fatalf("confirm: %d %s", confirm.Status, snippet(confirm.Body))
	}
	mustContain(t, confirm, "Check your transfer", "12.34", "Lunch &lt;3", "Confirm and send", "Change details",
		`name="key" value="`+form.Get("key")+`"`)
	// Nothing moved at the confirmation step.
	if got := balanceOf(t, s, aChk); got != aBefore {
		t.Fatalf("confirmation moved money: %d → %d", aBefore, got)
	}
	// "Change details" brings the form back filled in, with the same key.
	edit := alice.post("/transfers/edit", form)
	mustContain(t, edit, `value="12.34"`, `name="key" value="`+form.Get("key")+`"`)

	done := alice.post("/transfers", form)
	if done.Status != http.StatusSeeOther || !strings.HasPrefix(done.Location, "/transfers/") {
		t.Fatalf("transfer: %d %q %s", done.Status, done.Location, snippet(done.Body))
	}
	result := alice.get(done.Location)
	if result.Status != http.StatusOK {
		t.Fatalf("result: %d", result.Status)
	}
	mustContain(t, result, "Transfer sent", "12.34", "Transfer complete.", "Lunch &lt;3", "Your checking account "+webtier.DisplayNumber(aChk))
	if got := balanceOf(t, s, aChk); got != aBefore-1234 {
		t.Errorf("alice's balance %d, want %d", got, aBefore-1234)
	}
	if got := balanceOf(t, s, bChk); got != bBefore+1234 {
		t.Errorf("bob's balance %d, want %d", got, bBefore+1234)
	}
	// Both histories show it; bob sees the transfer as received.
	mustContain(t, alice.get("/accounts/"+aChk), "−", "12.34", "Lunch &lt;3")
	mustContain(t, bob.get("/accounts/"+bChk), "+", "12.34")
	mustContain(t, bob.get(done.Location), "Transfer received", "Your checking account "+webtier.DisplayNumber(bChk))
}

func TestTransferBadInputs(t *testing.T) {
	// The day of the demo data's bills is not the day of this test (see
	// apptiertest.Clock.AdvanceToNextDay): the daily limit sees only what
	// the test sends.
	clock := apptiertest.NewClock(apptiertest.Now())
	s := startSite(t, withApp(apptiertest.WithClock(clock.Now), apptiertest.WithDailyLimit(50_000)))
	clock.AdvanceToNextDay()
	alice := s.alice()
	chk, sav := alice.checking(), alice.savings()
	bobChk := s.bob().checking()
	unknown := unknownAccount(t, s)
	balance := balanceOf(t, s, chk)
	overBalance := fmt.Sprintf("%d.00", balance/100+1)

	cases := []struct {
		name, from, to, amount, want string
	}{
		{"zero", chk, sav, "0", "greater than zero"},
		{"zero with decimals", chk, sav, "0.00", "greater than zero"},
		{"negative", chk, sav, "-5", "greater than zero"},
		{"too many decimals", chk, sav, "1.234", "at most 2 decimal places"},
		{"not a number", chk, sav, "ten", "Enter an amount like"},
		{"exponent", chk, sav, "1e3", "Enter an amount like"},
		{"bad thousands separator", chk, sav, "1,00", "Enter an amount like 1,250.00"},
		{"empty amount", chk, sav, "", "Enter an amount."},
		{"huge", chk, sav, "99999999999999999999", "too large"},
		{"over balance", chk, sav, overBalance, "more than the available balance"},
		{"over daily limit", chk, bobChk, "600.00", "daily transfer limit"},
		{"same account", chk, chk, "1.00", "other than the one you pay from"},
		{"unknown account", chk, unknown, "1.00", "No account with that number."},
		{"malformed account", chk, "12345", "1.00", "not a valid account number"},
		{"no recipient", chk, "", "1.00", "Choose who to pay"},
		{"hostile recipient", chk, "<script>", "1.00", "not a valid account number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			form := url.Values{"key": {alice.formKey()}, "from": {c.from}, "to_number": {c.to}, "amount": {c.amount}}
			// The final submit goes to the app tier unless the web tier's
			// own pre-check already knows better; either way the customer
			// sees the form again with a friendly message by the field.
			p := alice.post("/transfers", form)
			if p.Status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422: %s", p.Status, snippet(p.Body))
			}
			mustContain(t, p, c.want, `class="field-error"`, `aria-invalid="true"`, "Move money")
			mustNotContain(t, p, "<script>")
		})
	}
	if got := balanceOf(t, s, chk); got != balance {
		t.Errorf("bad transfers moved money: %d → %d", balance, got)
	}
	// The confirmation step catches what it can before anything is sent.
	for _, amount := range []string{"0", "-1", "1.234", "abc", overBalance} {
		p := alice.post("/transfers/confirm", url.Values{"key": {alice.formKey()}, "from": {chk}, "to_number": {sav}, "amount": {amount}})
		if p.Status != http.StatusUnprocessableEntity {
			t.Errorf("confirm amount %q: %d", amount, p.Status)
		}
	}
	// A missing or forged idempotency key is not a form error but a 400.
	for _, key := range []string{"", "short", strings.Repeat("z", 32), strings.Repeat("a", 5000)} {
		p := alice.post("/transfers", url.Values{"key": {key}, "from": {chk}, "to_number": {sav}, "amount": {"1"}})
		if p.Status != http.StatusBadRequest {
			t.Errorf("key %.10q: %d, want 400", key, p.Status)
		}
	}
}

func TestTransferResubmitMovesMoneyOnce(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	chk, bobChk := alice.checking(), s.bob().checking()
	before := balanceOf(t, s, chk)
	form := url.Values{"key": {alice.formKey()}, "from": {chk}, "to_number": {bobChk}, "amount": {"5.00"}}

	first := alice.post("/transfers", form)
	second := alice.post("/transfers", form) // the back button and submit again
	if first.Status != http.StatusSeeOther || second.Status != http.StatusSeeOther || first.Location != second.Location {
		t.Fatalf("resubmit: %d %q then %d %q", first.Status, first.Location, second.Status, second.Location)
	}
	mustContain(t, alice.get(second.Location), "already been submitted")

	// A double click: two submits at once.
	form.Set("key", alice.formKey())
	var wg sync.WaitGroup
	locs := make([]string, 2)
	for i := range locs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			locs[i] = alice.post("/transfers", form).Location
		}()
	}
	wg.Wait()
	if locs[0] == "" || locs[0] != locs[1] {
		t.Errorf("double click gave %q and %q", locs[0], locs[1])
	}
	if got := balanceOf(t, s, chk); got != before-1000 {
		t.Errorf("balance %d, want %d: two submits of two forms must move 2 × 5.00", got, before-1000)
	}

	// The same key with other details is refused, and the form comes back
	// with a fresh key.
	form.Set("amount", "6.00")
	p := alice.post("/transfers", form)
	if p.Status != http.StatusUnprocessableEntity {
		t.Fatalf("reused key with new amount: %d", p.Status)
	}
	mustContain(t, p, "already submitted with different details")
	if strings.Contains(p.Body, form.Get("key")) {
		t.Error("the refused key was offered again")
	}
}

func TestPayees(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	bobChk := s.bob().savings() // the demo data already has bob's checking as a payee

	p := alice.post("/payees", url.Values{"nickname": {"Bob <b>"}, "number": {bobChk}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("add payee: %d %s", p.Status, snippet(p.Body))
	}
	list := alice.get("/payees")
	mustContain(t, list, "Payee saved.", "Bob &lt;b&gt;", "/transfers/new?to="+bobChk)
	mustContain(t, alice.get("/transfers/new?to="+bobChk), `value="`+bobChk+`" selected`, "Bob &lt;b&gt;")

	for name, c := range map[string]struct {
		form url.Values
		want string
	}{
		"duplicate":      {url.Values{"nickname": {"Bob again"}, "number": {bobChk}}, "already have a payee"},
		"empty nickname": {url.Values{"nickname": {""}, "number": {bobChk}}, "Enter a nickname"},
		"long nickname":  {url.Values{"nickname": {strings.Repeat("n", 65)}, "number": {bobChk}}, "64 characters or fewer"},
		"bad number":     {url.Values{"nickname": {"X"}, "number": {"12"}}, "not a valid account number"},
		"unknown number": {url.Values{"nickname": {"X"}, "number": {unknownAccount(t, s)}}, "No account with that number."},
		"control chars":  {url.Values{"nickname": {"a\x01b"}, "number": {bobChk}}, "not allowed"},
	} {
		p := alice.post("/payees", c.form)
		if p.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d", name, p.Status)
		}
		mustContain(t, p, c.want)
	}

	id := regexpFind(t, list.Body, `action="/payees/([0-9]+)/rename"`)
	if p := alice.post("/payees/"+id+"/rename", url.Values{"nickname": {"Bobby"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("rename: %d %s", p.Status, snippet(p.Body))
	}
	mustContain(t, alice.get("/payees"), "Bobby", "Payee renamed.")
	p = alice.post("/payees/"+id+"/rename", url.Values{"nickname": {""}})
	if p.Status != http.StatusUnprocessableEntity {
		t.Errorf("rename to empty: %d", p.Status)
	}
	mustContain(t, p, "Enter a nickname", "<details class=\"payee-manage\" open>")

	// Bob cannot touch alice's payee.
	bob := s.bob()
	if p := bob.post("/payees/"+id+"/rename", url.Values{"nickname": {"mine"}}); p.Status != http.StatusNotFound {
		t.Errorf("bob renaming alice's payee: %d", p.Status)
	}
	if p := bob.post("/payees/"+id+"/delete", nil); p.Status != http.StatusNotFound {
		t.Errorf("bob deleting alice's payee: %d", p.Status)
	}
	if p := alice.post("/payees/"+id+"/delete", nil); p.Status != http.StatusSeeOther {
		t.Fatalf("delete: %d", p.Status)
	}
	mustNotContain(t, alice.get("/payees"), "Bobby")
	for _, bad := range []string{"0", "-3", "x", "99999999999999999999999"} {
		if p := alice.post("/payees/"+bad+"/delete", nil); p.Status != http.StatusNotFound {
			t.Errorf("delete payee %q: %d", bad, p.Status)
		}
	}
}

func TestOpenAccount(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	p := alice.post("/accounts", url.Values{"kind": {"savings"}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/accounts/") {
		t.Fatalf("open account: %d %q %s", p.Status, p.Location, snippet(p.Body))
	}
	mustContain(t, alice.get(p.Location), "Your new account is open.", "Savings account", "No activity yet")
	p = alice.post("/accounts", url.Values{"kind": {"bitcoin"}})
	if p.Status != http.StatusUnprocessableEntity {
		t.Errorf("bad kind: %d", p.Status)
	}
	mustContain(t, p, "Choose a checking or a savings account.")
}

func TestChat(t *testing.T) {
	s := startSite(t)
	alice, bob := s.alice(), s.bob()
	p := alice.post("/chat", url.Values{"username": {"bob"}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/chat/") {
		t.Fatalf("open chat: %d %q %s", p.Status, p.Location, snippet(p.Body))
	}
	conv := p.Location // the demo data has a conversation already
	mustContain(t, alice.get(conv), "Bob", "Deal. See you Saturday!")
	p = alice.post(conv+"/messages", url.Values{"body": {"Hi Bob <img src=x onerror=alert(1)>\nsecond line"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("send: %d %s", p.Status, snippet(p.Body))
	}
	page := bob.get(conv)
	mustContain(t, page, "Hi Bob &lt;img src=x onerror=alert(1)&gt;", "second line", "Alice")
	mustNotContain(t, page, "<img src=x")
	mustContain(t, bob.get("/chat"), "Alice", conv)
	// Opening again finds the same conversation.
	if p := bob.post("/chat", url.Values{"username": {"alice"}}); p.Location != conv {
		t.Errorf("bob opening the chat with alice: %q, want %q", p.Location, conv)
	}

	for name, c := range map[string]struct{ path, field, value, want string }{
		"unknown user":  {"/chat", "username", "nobody-at-all", "No customer with that username."},
		"self":          {"/chat", "username", "alice", "cannot open a chat with yourself"},
		"bad username":  {"/chat", "username", strings.Repeat("u", 100), "not a valid username"},
		"empty message": {conv + "/messages", "body", "   ", "Write a message first."},
		"long message":  {conv + "/messages", "body", strings.Repeat("é", 2001), "2000 characters or fewer"},
		"control chars": {conv + "/messages", "body", "bell\x07", "not allowed"},
		"bidi override": {conv + "/messages", "body", "pay \u202Eevil", "not allowed"},
	} {
		p := alice.post(c.path, url.Values{c.field: {c.value}})
		if p.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d", name, p.Status)
		}
		mustContain(t, p, c.want)
	}

	// A third customer sees neither the conversation nor can post to it.
	carol := s.browser()
	carol.post("/signup", url.Values{"username": {"carol"}, "display_name": {"Carol"}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}})
	if p := carol.get(conv); p.Status != http.StatusNotFound {
		t.Errorf("carol reading alice and bob's chat: %d", p.Status)
	}
	if p := carol.post(conv+"/messages", url.Values{"body": {"hi"}}); p.Status != http.StatusNotFound {
		t.Errorf("carol posting to alice and bob's chat: %d", p.Status)
	}
	p = carol.post("/chat", url.Values{"username": {"alice"}})
	if p.Status != http.StatusSeeOther || p.Location == conv {
		t.Fatalf("carol opening a chat with alice: %d %q", p.Status, p.Location)
	}
	mustContain(t, carol.get(p.Location), "Alice", "No messages yet")
}

func TestHostileRequests(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	// A body over the limit.
	p := alice.post("/payees", url.Values{"nickname": {strings.Repeat("x", 200<<10)}})
	if p.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: %d", p.Status)
	}
	mustContain(t, p, "too much to send")
	// A body that is not a form.
	req, _ := http.NewRequest(http.MethodPost, s.baseURL+"/payees", strings.NewReader("%zz=%"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p := alice.do(req); p.Status != http.StatusBadRequest {
		t.Errorf("malformed form: %d", p.Status)
	}
	// Methods the site does not use.
	req, _ = http.NewRequest(http.MethodPut, s.baseURL+"/accounts", nil)
	if p := alice.do(req); p.Status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", p.Status)
	}
	// A long path.
	if p := alice.get("/" + strings.Repeat("a/", 2000)); p.Status != http.StatusNotFound {
		t.Errorf("long path: %d", p.Status)
	}
	// Invalid UTF-8 and control characters in a message never reach a page raw.
	conv := alice.post("/chat", url.Values{"username": {"bob"}}).Location
	p = alice.post(conv+"/messages", url.Values{"body": {"\xff\xfe"}})
	if p.Status != http.StatusUnprocessableEntity {
		t.Errorf("invalid UTF-8 message: %d", p.Status)
	}
	// A forged session cookie is just "signed out".
	b := s.browser()
	u, _ := url.Parse(s.baseURL)
	for _, v := range []string{"x", strings.Repeat("A", 4000), "abcdefghijklmnopqrstuvwxyz0123456789"} {
		b.jar.SetCookies(u, []*http.Cookie{{Name: "bankwire_session", Value: v, Path: "/"}})
		if p := b.get("/accounts"); p.Status != http.StatusSeeOther {
			t.Errorf("forged cookie %.8q: %d", v, p.Status)
		}
	}
	// next= never leaves the site, even from the sign-in form's GET.
	p = s.browser().get("/signin?next=" + url.QueryEscape("//evil.example"))
	mustNotContain(t, p, "evil.example")
}

func regexpFind(t *testing.T, body, expr string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s not found in:\n%s", expr, snippet(body))
	}
	return m[1]
}

// TestTransferMemoRefusedAtConfirm: a memo the bank will not keep (control
// characters, line separators, a right-to-left override that would make
// the recipient read it reversed) is refused on the confirmation step, with
// the form, before the customer confirms anything.
func TestTransferMemoRefusedAtConfirm(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	from, to := alice.checking(), s.bob().checking()
	for _, memo := range []string{"bell\x07", "C1\u0085mid", "two\u2028lines", "Invoice \u202E0001", "iso\u2066late\u2069"} {
		form := url.Values{"key": {alice.formKey()}, "from": {from}, "to_number": {to}, "amount": {"1.00"}, "memo": {memo}}
		p := alice.post("/transfers/confirm", form)
		if p.Status != http.StatusUnprocessableEntity {
			t.Errorf("memo %q: %d, want 422", memo, p.Status)
		}
		mustContain(t, p, "The note contains characters that are not allowed.")
	}
	// Right-to-left text with its mark is a memo like any other.
	form := url.Values{"key": {alice.formKey()}, "from": {from}, "to_number": {to}, "amount": {"1.00"}, "memo": {"\u05e9\u05db\u05e8 \u05d3\u05d9\u05e8\u05d4\u200f"}}
	if p := alice.post("/transfers/confirm", form); p.Status != http.StatusOK {
		t.Errorf("right-to-left memo: %d %s", p.Status, snippet(p.Body))
	}
}
