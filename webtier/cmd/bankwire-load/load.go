package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Operation names as the report shows them, and the mix keys that choose
// them.
const (
	opSignUp       = "sign up"
	opSignIn       = "sign in"
	opOverview     = "overview"
	opHistory      = "history"
	opTransfer     = "transfer"
	opPayee        = "payee"
	opChatSend     = "chat send"
	opChatDelivery = "chat delivery"
	opSignOut      = "sign out"
)

var mixKeys = map[string]string{
	"signup": opSignUp, "signin": opSignIn, "overview": opOverview, "history": opHistory,
	"transfer": opTransfer, "payee": opPayee, "chat": opChatSend, "signout": opSignOut,
}

// DefaultMix is the default scenario mix: mostly reading, a quarter money
// movement, a little of everything else.
const DefaultMix = "overview=30,history=15,transfer=25,payee=8,chat=12,signin=3,signout=3,signup=4"

// parseMix reads "name=weight,..." into operation → weight.
func parseMix(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		op, known := mixKeys[strings.TrimSpace(k)]
		w, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || !known || err != nil || w < 0 {
			return nil, fmt.Errorf("mix entry %q: want name=weight with name one of signup, signin, overview, history, transfer, payee, chat, signout", part)
		}
		out[op] = w
	}
	total := 0
	for _, w := range out {
		total += w
	}
	if total == 0 {
		return nil, errors.New("mix: the weights add up to zero")
	}
	return out, nil
}

// Credential is a customer the generator signs in as to fund its own.
type Credential struct{ Username, Password string }

// Config is one load run.
type Config struct {
	Target   string        // base URL of the site
	Rate     float64       // open model: arrivals per second (the ramp's start)
	RampTo   float64       // open model: when > 0, the rate rises linearly to this by the end
	Duration time.Duration // how long the schedule runs
	Users    int           // closed model when > 0: this many users
	Think    time.Duration // closed model: mean pause between a user's operations

	Customers   int            // customers created (and funded) before the run
	Listeners   int            // customers listening on their live stream for chat
	Mix         map[string]int // operation → weight
	Fund        int64          // minor units sent to each customer before the run
	Funders     []Credential   // who sends it (the demo customers by default)
	Overdraft   float64        // share of transfers that ask for more than the balance
	Timeout     time.Duration  // per HTTP request
	MaxInFlight int            // open model: operations running at once at most
	Check       bool           // run the money check at the end
}

// DefaultConfig is a gentle run against a local stack.
func DefaultConfig() Config {
	mix, _ := parseMix(DefaultMix)
	return Config{
		Target: "http://localhost:8080", Rate: 20, Duration: 30 * time.Second, Think: time.Second,
		Customers: 40, Listeners: 2, Mix: mix, Fund: 1000, Overdraft: 0.05,
		Funders:     []Credential{{"alice", "alice-demo-pass"}, {"bob", "bob-demo-pass"}},
		Timeout:     10 * time.Second,
		MaxInFlight: 2000,
		Check:       true,
	}
}

func (c Config) validate() error {
	var errs []error
	if c.Duration <= 0 {
		errs = append(errs, errors.New("duration must be positive"))
	}
	if c.Users <= 0 && (c.Rate <= 0 && c.RampTo <= 0 || c.Rate < 0 || c.RampTo < 0) {
		errs = append(errs, errors.New("rate must be positive (or set users for the closed model)"))
	}
	if c.Users < 0 || c.Think < 0 {
		errs = append(errs, errors.New("users and think time cannot be negative"))
	}
	if c.Customers < 2 {
		errs = append(errs, errors.New("customers: at least 2, so transfers have somewhere to go"))
	}
	if c.Listeners < 0 || c.Listeners > 100 {
		errs = append(errs, errors.New("listeners: 0 to 100"))
	}
	if c.Mix[opChatSend] > 0 && c.Listeners == 0 {
		errs = append(errs, errors.New("the mix sends chat messages but there are no listeners"))
	}
	if c.Fund < 0 || c.Fund > 1_000_000 {
		errs = append(errs, errors.New("fund: 0 to 10000.00"))
	}
	if c.Fund > 0 && len(c.Funders) == 0 {
		errs = append(errs, errors.New("fund needs at least one funder"))
	}
	if c.Overdraft < 0 || c.Overdraft > 1 {
		errs = append(errs, errors.New("overdraft share: 0 to 1"))
	}
	if c.Timeout <= 0 || c.MaxInFlight < 1 {
		errs = append(errs, errors.New("timeout and max in flight must be positive"))
	}
	return errors.Join(errs...)
}

// customer is one of the generator's own customers. A customer is used by
// one operation at a time (see runner.take).
type customer struct {
	username, password string
	b                  *browser
	checking           string
	payees             []int64
	payeeNumbers       map[string]bool
	chats              map[int]int64 // listener index → conversation id
	// signedOut: the site sent the customer to the sign-in page (its
	// session ended, or a sign-in failed); the next operation signs in
	// first, as a person would.
	signedOut bool
}

// ackTransfer is a transfer the site acknowledged (redirect to its result).
type ackTransfer struct {
	id       int64
	from, to string
	amount   int64
	funding  bool // from a funder: only the receiving side is checked
}

type runner struct {
	cfg   Config
	site  *site
	rec   *recorder
	runID string
	ops   []string // scenario choice table, one entry per weight unit

	nextIP   atomic.Int64
	nextName atomic.Int64
	nextMsg  atomic.Int64
	pool     chan *customer

	mu        sync.Mutex
	customers []*customer // every generator customer, for the money check
	numbers   []string    // their checking accounts, transfer targets
	transfers []ackTransfer
	unknown   int
	funded    int64

	listeners []*listener
}

func newRunner(cfg Config, transport http.RoundTripper) (*runner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rec := newRecorder(time.Now(), time.Now)
	s, err := newSite(cfg.Target, cfg.Timeout, rec, transport)
	if err != nil {
		return nil, err
	}
	var id [3]byte
	_, _ = rand.Read(id[:])
	r := &runner{cfg: cfg, site: s, rec: rec, runID: hex.EncodeToString(id[:]), pool: make(chan *customer, 1<<16)}
	names := make([]string, 0, len(cfg.Mix))
	for op := range cfg.Mix {
		names = append(names, op)
	}
	sort.Strings(names)
	for _, op := range names {
		for range cfg.Mix[op] {
			r.ops = append(r.ops, op)
		}
	}
	return r, nil
}

func (r *runner) newBrowser() *browser {
	return r.site.newBrowser(clientAddr(int(r.nextIP.Add(1))))
}

// take borrows a free customer, waiting at most the request timeout.
func (r *runner) take(ctx context.Context) (*customer, error) {
	select {
	case c := <-r.pool:
		return c, nil
	default:
	}
	t := time.NewTimer(r.cfg.Timeout)
	defer t.Stop()
	select {
	case c := <-r.pool:
		return c, nil
	case <-t.C:
		return nil, errNoCustomer
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *runner) give(c *customer) { r.pool <- c }

// otherNumber returns a generator customer's checking account other than own.
func (r *runner) otherNumber(own string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.numbers) < 2 {
		return "", false
	}
	for {
		n := r.numbers[mrand.IntN(len(r.numbers))]
		if n != own {
			return n, true
		}
	}
}

// signUp opens a new customer through the sign-up form and reads its
// checking account from the overview it lands on.
func (r *runner) signUp(ctx context.Context) (*customer, error) {
	n := r.nextName.Add(1)
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	c := &customer{
		username: fmt.Sprintf("ld%s-%d", r.runID, n), password: hex.EncodeToString(pw[:]),
		b: r.newBrowser(), payeeNumbers: map[string]bool{}, chats: map[int]int64{},
	}
	p, err := c.b.post(ctx, "/signup", url.Values{
		"username": {c.username}, "display_name": {fmt.Sprintf("Load Customer %d", n)},
		"password": {c.password}, "password_confirm": {c.password},
	})
	if err != nil {
		return nil, err
	}
	if p.location != "/accounts" {
		return nil, fmt.Errorf("sign up: redirected to %q: %w", p.location, errBadPage)
	}
	p, err = c.b.get(ctx, "/accounts")
	if err != nil {
		return nil, err
	}
	num, ok := checkingOf(p.body)
	if !ok {
		return nil, fmt.Errorf("sign up: no checking account on the overview: %w", errBadPage)
	}
	c.checking = num
	return c, nil
}

// register makes c one of the customers the run uses and checks.
func (r *runner) register(c *customer, pooled bool) {
	r.mu.Lock()
	r.customers = append(r.customers, c)
	r.numbers = append(r.numbers, c.checking)
	r.mu.Unlock()
	if pooled {
		r.give(c)
	}
}

// signIn signs c in from a new client address, as a person signs in from
// wherever they are, so no one address collects more sign-ins than a
// household would.
func (r *runner) signIn(ctx context.Context, c *customer) error {
	c.b.ip = clientAddr(int(r.nextIP.Add(1)))
	p, err := c.b.post(ctx, "/signin", url.Values{"username": {c.username}, "password": {c.password}})
	if err != nil {
		return err
	}
	if p.location != "/accounts" {
		return fmt.Errorf("sign in: redirected to %q: %w", p.location, errBadPage)
	}
	_, err = c.b.get(ctx, "/accounts")
	return err
}

var optionRe = regexp.MustCompile(`<option value="([^"]+)"[^>]*>[^<]*— ([^<]+)</option>`)

// transferResult is how a transfer attempt ended.
type transferResult int

const (
	transferDone transferResult = iota
	transferRejected
	transferUnknown
)

// transfer walks the transfer pages as a customer does: the form (with its
// idempotency key), the confirmation, the submit, the result. amount 0
// sends up to a fifth of the balance the form shows; amount < 0 asks for
// |amount| more than it (an overdraft). After an
// unknown outcome (503 with the confirm-again page) it presses Confirm
// again, with the same key, up to twice.
func (r *runner) transfer(ctx context.Context, b *browser, from, to string, amount int64, funding bool) (transferResult, error) {
	p, err := b.get(ctx, "/transfers/new?from="+url.QueryEscape(from))
	if err != nil {
		return 0, err
	}
	key := keyRe.FindStringSubmatch(p.body)
	if key == nil {
		return 0, fmt.Errorf("transfer form without a key: %w", errBadPage)
	}
	if amount <= 0 {
		bal := int64(-1)
		for _, m := range optionRe.FindAllStringSubmatch(p.body, -1) {
			if m[1] == from {
				if v, err := parseMoney(m[2]); err == nil {
					bal = v
				}
			}
		}
		if bal < 0 {
			return 0, fmt.Errorf("transfer form without the balance of %s: %w", from, errBadPage)
		}
		if amount < 0 {
			amount = bal - amount
		} else {
			amount = 1 + mrand.Int64N(max(1, bal/5))
		}
	}
	form := url.Values{
		"key": {key[1]}, "from": {from}, "to_number": {to}, "amount": {formatMinor(amount)},
		"memo": {"bankwire-load " + r.runID},
	}
	p, err = b.do(ctx, http.MethodPost, "/transfers/confirm", form, http.StatusOK, http.StatusUnprocessableEntity)
	if err != nil {
		return 0, err
	}
	if p.status == http.StatusUnprocessableEntity {
		return transferRejected, nil
	}
	if !strings.Contains(p.body, "Confirm and send") {
		return 0, fmt.Errorf("confirmation page: %w", errBadPage)
	}
	for attempt := 0; ; attempt++ {
		p, err = b.do(ctx, http.MethodPost, "/transfers", form, http.StatusSeeOther, http.StatusUnprocessableEntity, http.StatusServiceUnavailable)
		if err != nil {
			// The request may have reached the bank: the outcome is unknown.
			r.markUnknown()
			return transferUnknown, err
		}
		if p.status != http.StatusServiceUnavailable || attempt == 2 {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			r.markUnknown()
			return transferUnknown, ctx.Err()
		}
	}
	switch p.status {
	case http.StatusUnprocessableEntity:
		return transferRejected, nil
	case http.StatusServiceUnavailable:
		r.markUnknown()
		return transferUnknown, &httpError{method: http.MethodPost, path: "/transfers", status: p.status}
	}
	m := transferIDRe.FindStringSubmatch(p.location)
	if m == nil {
		// The bank may have made it: the outcome is unknown.
		r.markUnknown()
		return transferUnknown, fmt.Errorf("transfer redirected to %q: %w", p.location, errBadPage)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	r.mu.Lock()
	r.transfers = append(r.transfers, ackTransfer{id: id, from: from, to: to, amount: amount, funding: funding})
	if funding {
		r.funded += amount
	}
	r.mu.Unlock()
	if _, err := b.get(ctx, p.location); err != nil {
		return transferDone, err
	}
	return transferDone, nil
}

func (r *runner) markUnknown() {
	r.mu.Lock()
	r.unknown++
	r.mu.Unlock()
}

// setup creates the run's customers and listeners and funds the customers.
func (r *runner) setup(ctx context.Context) error {
	total := r.cfg.Customers + r.cfg.Listeners
	made := make([]*customer, total)
	errs := make([]error, total)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4) // sign-up hashes a password: a few at a time
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// "Briefly unavailable" during setup is retried with a new
			// name (the first attempt's outcome is unknown); the run
			// itself counts every 503.
			for attempt := range 3 {
				made[i], errs[i] = r.signUp(ctx)
				var he *httpError
				if !errors.As(errs[i], &he) || he.status != http.StatusServiceUnavailable || attempt == 2 {
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	failed, first := 0, error(nil)
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("setup: %d of %d sign-ups failed, the first: %w", failed, total, first)
	}
	if r.cfg.Fund > 0 {
		if err := r.fund(ctx, made[:r.cfg.Customers]); err != nil {
			return fmt.Errorf("setup: fund: %w", err)
		}
	}
	for _, c := range made[:r.cfg.Customers] {
		r.register(c, true)
	}
	for i, c := range made[r.cfg.Customers:] {
		r.register(c, false)
		r.listeners = append(r.listeners, newListener(r, i, c))
	}
	return nil
}

// fund sends cfg.Fund to each customer from the funders' accounts with the
// most money.
func (r *runner) fund(ctx context.Context, cs []*customer) error {
	type source struct {
		b       *browser
		number  string
		balance int64
	}
	var sources []*source
	for _, f := range r.cfg.Funders {
		c := &customer{username: f.Username, password: f.Password, b: r.newBrowser()}
		if err := r.signIn(ctx, c); err != nil {
			return fmt.Errorf("sign in as %s: %w", f.Username, err)
		}
		p, err := c.b.get(ctx, "/accounts")
		if err != nil {
			return err
		}
		bal, err := balancesOf(p.body)
		if err != nil {
			return err
		}
		for n, v := range bal {
			sources = append(sources, &source{b: c.b, number: n, balance: v})
		}
	}
	for _, c := range cs {
		for {
			sort.Slice(sources, func(i, j int) bool { return sources[i].balance > sources[j].balance })
			if len(sources) == 0 || sources[0].balance < r.cfg.Fund {
				return fmt.Errorf("no funder account has %s left that it may still send today", formatMinor(r.cfg.Fund))
			}
			s := sources[0]
			res, err := r.transfer(ctx, s.b, s.number, c.checking, r.cfg.Fund, true)
			if err != nil {
				return err
			}
			if res == transferDone {
				s.balance -= r.cfg.Fund
				break
			}
			// Refused: most likely the customer's daily limit. Next account.
			sources = sources[1:]
		}
	}
	return nil
}

// one runs one operation of the mix whose intended start was at, and
// records it with its latency from then.
func (r *runner) one(ctx context.Context, at time.Time) {
	op := r.ops[mrand.IntN(len(r.ops))]
	o, err := r.scenario(ctx, op)
	kind := ""
	if err != nil {
		o, kind = outcomeError, classify(err)
	}
	r.rec.record(op, time.Since(at), o, kind)
}

func (r *runner) scenario(ctx context.Context, op string) (outcome, error) {
	if op == opSignUp {
		c, err := r.signUp(ctx)
		if err != nil {
			return outcomeError, err
		}
		r.register(c, true)
		return outcomeOK, nil
	}
	c, err := r.take(ctx)
	if err != nil {
		return outcomeError, err
	}
	defer r.give(c)
	if c.signedOut && op != opSignIn {
		if err := r.signIn(ctx, c); err != nil {
			return outcomeError, err
		}
		c.signedOut = false
	}
	o, err := r.customerScenario(ctx, op, c)
	var he *httpError
	switch {
	case err == nil:
		if op == opSignIn || op == opSignOut {
			c.signedOut = false
		}
	case errors.As(err, &he) && he.status == http.StatusSeeOther, op == opSignIn, op == opSignOut:
		c.signedOut = true
	}
	return o, err
}

func (r *runner) customerScenario(ctx context.Context, op string, c *customer) (outcome, error) {
	switch op {
	case opSignIn:
		return outcomeOK, r.signIn(ctx, c)
	case opSignOut:
		p, err := c.b.post(ctx, "/signout", url.Values{})
		if err != nil {
			return outcomeError, err
		}
		if p.location != "/signin" {
			return outcomeError, fmt.Errorf("sign out: redirected to %q: %w", p.location, errBadPage)
		}
		// Back in, so the customer stays usable.
		return outcomeOK, r.signIn(ctx, c)
	case opOverview:
		p, err := c.b.get(ctx, "/accounts")
		if err == nil && !strings.Contains(p.body, "data-balance-for") {
			err = fmt.Errorf("overview without balances: %w", errBadPage)
		}
		return outcomeOK, err
	case opHistory:
		path := "/accounts/" + c.checking
		for range 3 {
			p, err := c.b.get(ctx, path)
			if err != nil {
				return outcomeError, err
			}
			m := nextRe.FindStringSubmatch(p.body)
			if m == nil || mrand.IntN(2) == 0 {
				break
			}
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		return outcomeOK, nil
	case opTransfer:
		to, ok := r.otherNumber(c.checking)
		if !ok {
			return outcomeRejected, nil
		}
		amount := int64(0) // a part of the balance
		if mrand.Float64() < r.cfg.Overdraft {
			amount = -int64(1 + mrand.IntN(10_000))
		}
		res, err := r.transfer(ctx, c.b, c.checking, to, amount, false)
		if res == transferRejected && err == nil {
			return outcomeRejected, nil
		}
		return outcomeOK, err
	case opPayee:
		return r.payee(ctx, c)
	case opChatSend:
		return r.chat(ctx, c)
	}
	return outcomeError, fmt.Errorf("unknown operation %q", op)
}

// payee adds a payee (another generator customer) while the customer has
// fewer than three, else (or when the customer picked is a payee already)
// renames one.
func (r *runner) payee(ctx context.Context, c *customer) (outcome, error) {
	to, add := "", false
	if len(c.payees) < 3 {
		to, add = r.otherNumber(c.checking)
		add = add && !c.payeeNumbers[to]
	}
	if !add && len(c.payees) == 0 {
		return outcomeRejected, nil
	}
	if add {
		p, err := c.b.do(ctx, http.MethodPost, "/payees", url.Values{
			"nickname": {fmt.Sprintf("Payee %d", r.nextMsg.Add(1))}, "number": {to},
		}, http.StatusSeeOther, http.StatusUnprocessableEntity)
		if err != nil {
			return outcomeError, err
		}
		if p.status == http.StatusUnprocessableEntity {
			return outcomeRejected, nil
		}
		c.payeeNumbers[to] = true
	} else {
		id := c.payees[mrand.IntN(len(c.payees))]
		if _, err := c.b.post(ctx, "/payees/"+strconv.FormatInt(id, 10)+"/rename",
			url.Values{"nickname": {fmt.Sprintf("Renamed %d", r.nextMsg.Add(1))}}); err != nil {
			return outcomeError, err
		}
	}
	p, err := c.b.get(ctx, "/payees")
	if err != nil {
		return outcomeError, err
	}
	c.payees = c.payees[:0]
	for _, m := range payeeIDRe.FindAllStringSubmatch(p.body, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		c.payees = append(c.payees, id)
	}
	return outcomeOK, nil
}

// chat sends a message to one of the listeners, whose live stream should
// bring it (see listener).
func (r *runner) chat(ctx context.Context, c *customer) (outcome, error) {
	li := mrand.IntN(len(r.listeners))
	l := r.listeners[li]
	conv, ok := c.chats[li]
	if !ok {
		p, err := c.b.post(ctx, "/chat", url.Values{"username": {l.c.username}})
		if err != nil {
			return outcomeError, err
		}
		m := chatIDRe.FindStringSubmatch(p.location)
		if m == nil {
			return outcomeError, fmt.Errorf("chat opened at %q: %w", p.location, errBadPage)
		}
		conv, _ = strconv.ParseInt(m[1], 10, 64)
		c.chats[li] = conv
	}
	token := fmt.Sprintf("m%s-%d", r.runID, r.nextMsg.Add(1))
	path := "/chat/" + strconv.FormatInt(conv, 10)
	l.expect(token)
	if _, err := c.b.post(ctx, path+"/messages", url.Values{"body": {"bankwire-load " + token}}); err != nil {
		l.forget(token)
		return outcomeError, err
	}
	l.sent(token)
	if _, err := c.b.get(ctx, path); err != nil {
		return outcomeError, err
	}
	return outcomeOK, nil
}

// schedule runs the open or the closed model until the duration is over
// and every operation has finished.
func (r *runner) schedule(ctx context.Context) {
	start := time.Now()
	end := start.Add(r.cfg.Duration)
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.cfg.Users > 0 {
		for range r.cfg.Users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && time.Now().Before(end) {
					r.rec.began()
					r.one(ctx, time.Now())
					if r.cfg.Think > 0 {
						think := time.Duration(mrand.ExpFloat64() * float64(r.cfg.Think))
						if !sleepUntil(ctx, time.Now().Add(think)) {
							return
						}
					}
				}
			}()
		}
		return
	}
	sem := make(chan struct{}, r.cfg.MaxInFlight)
	for i := 0; ; i++ {
		at := start.Add(r.offset(i))
		if !at.Before(end) || !sleepUntil(ctx, at) {
			return
		}
		r.rec.began()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				r.rec.record("canceled", time.Since(at), outcomeError, "canceled")
				return
			}
			r.one(ctx, at)
		}()
	}
}

// offset is when the i-th arrival is due: i/rate for a constant rate; for
// a ramp from r0 to r1 over T, the t where r0·t + (r1−r0)·t²/(2T) = i.
func (r *runner) offset(i int) time.Duration {
	r0, r1, T := r.cfg.Rate, r.cfg.RampTo, r.cfg.Duration.Seconds()
	if r1 <= 0 || r1 == r0 {
		return time.Duration(float64(i) / r0 * float64(time.Second))
	}
	k := (r1 - r0) / T
	t := (-r0 + math.Sqrt(r0*r0+2*k*float64(i))) / k
	if math.IsNaN(t) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(t * float64(time.Second))
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
