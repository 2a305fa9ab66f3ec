// Package apptier is bankwire's application tier: the bank's operational
// rules (sign-up, sign-in, sessions, accounts, history, transfers, payees and
// the two-person chat), served over the bankwire protocol (package proto) and
// kept in PostgreSQL through package store. It is the only tier that reaches
// the database.
package apptier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
	"bankwire/store"
)

// Version is reported in the protocol greeting and in InfoResponse.
const Version = "1.0"

// Config holds the bank's rules and the app tier's knobs. DefaultConfig
// holds every default; zero values in a Config given to New take them (see
// Defaults).
type Config struct {
	Name            string        // server name in the greeting
	Currency        string        // the bank's currency
	DailyLimit      int64         // daily outgoing limit to other customers, minor units
	IdleTimeout     time.Duration // session idle timeout
	AbsoluteTimeout time.Duration // session absolute lifetime

	// Sign-in throttling (see the rule beside signIn). Failures count for
	// ThrottleWindow.
	ThrottleWindow time.Duration
	LockAfter      int           // failures per (username, client IP) before that pair is refused
	IPLimit        int           // failures per client IP before it is refused
	DelayBase      time.Duration // first delay per username (after 2 failures)
	DelayMax       time.Duration // cap of the growing delay

	// Rate limits of operations that could be used to enumerate customers
	// or fill the database: about this many per RateWindow, counted in each
	// app tier process.
	RateWindow    time.Duration
	SignUpIPLimit int // sign-ups per client IP
	ChatOpenLimit int // chats opened by username per customer
	// Chat messages a customer may send per minute (a burst of that many,
	// then one every 60/ChatSendLimit seconds), so that nobody floods
	// another customer's chat.
	ChatSendLimit int

	// Retention (see purge): sessions are deleted SessionRetention after
	// they expired, sign-in events AuditRetention after they were
	// recorded, every PurgeInterval.
	SessionRetention time.Duration
	AuditRetention   time.Duration // at least ThrottleWindow
	PurgeInterval    time.Duration
	DemoData         bool         // demo customers exist (reported to the web tier)
	Argon2           Argon2Params // argon2id cost
	HashConcurrency  int          // concurrent argon2id hashes; 0 means GOMAXPROCS
	Now              func() time.Time
	Logger           *slog.Logger
}

// DefaultConfig returns the defaults: the one place they are written.
func DefaultConfig() Config {
	return Config{
		Name:             "bankwire-apptier/" + Version,
		Currency:         store.DefaultCurrency,
		DailyLimit:       1_000_000, // 10,000.00
		IdleTimeout:      15 * time.Minute,
		AbsoluteTimeout:  8 * time.Hour,
		ThrottleWindow:   15 * time.Minute,
		LockAfter:        5,
		IPLimit:          50,
		DelayBase:        250 * time.Millisecond,
		DelayMax:         2 * time.Second,
		RateWindow:       time.Hour,
		SignUpIPLimit:    20,
		ChatOpenLimit:    30,
		ChatSendLimit:    30,
		SessionRetention: 24 * time.Hour,
		AuditRetention:   90 * 24 * time.Hour,
		PurgeInterval:    time.Hour,
		Argon2:           DefaultArgon2,
		Now:              time.Now,
		Logger:           slog.Default(),
	}
}

// Defaults returns c with every zero field set to its DefaultConfig value.
func (c Config) Defaults() Config {
	d := DefaultConfig()
	orDefault(&c.Name, d.Name)
	orDefault(&c.Currency, d.Currency)
	orDefault(&c.DailyLimit, d.DailyLimit)
	orDefault(&c.IdleTimeout, d.IdleTimeout)
	orDefault(&c.AbsoluteTimeout, d.AbsoluteTimeout)
	orDefault(&c.ThrottleWindow, d.ThrottleWindow)
	orDefault(&c.LockAfter, d.LockAfter)
	orDefault(&c.IPLimit, d.IPLimit)
	orDefault(&c.DelayBase, d.DelayBase)
	orDefault(&c.DelayMax, d.DelayMax)
	orDefault(&c.RateWindow, d.RateWindow)
	orDefault(&c.SignUpIPLimit, d.SignUpIPLimit)
	orDefault(&c.ChatOpenLimit, d.ChatOpenLimit)
	orDefault(&c.ChatSendLimit, d.ChatSendLimit)
	orDefault(&c.SessionRetention, d.SessionRetention)
	orDefault(&c.AuditRetention, d.AuditRetention)
	orDefault(&c.PurgeInterval, d.PurgeInterval)
	orDefault(&c.Argon2, d.Argon2)
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

func orDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Validate reports every setting that cannot work, all at once.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	positive("session idle timeout", c.IdleTimeout)
	positive("session lifetime", c.AbsoluteTimeout)
	positive("throttle window", c.ThrottleWindow)
	positive("rate window", c.RateWindow)
	positive("session retention", c.SessionRetention)
	positive("audit retention", c.AuditRetention)
	positive("purge interval", c.PurgeInterval)
	if c.DelayBase < 0 || c.DelayMax < c.DelayBase {
		errs = append(errs, fmt.Errorf("sign-in delays %s up to %s: want 0 <= base <= max", c.DelayBase, c.DelayMax))
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"lock after", c.LockAfter}, {"sign-in IP limit", c.IPLimit}, {"sign-up IP limit", c.SignUpIPLimit}, {"chat open limit", c.ChatOpenLimit}, {"chat send limit", c.ChatSendLimit}} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s %d: must be at least 1", n.name, n.v))
		}
	}
	if c.DailyLimit < 0 || c.DailyLimit > store.MaxAmount {
		errs = append(errs, fmt.Errorf("daily limit %s: want 0 to %s", FormatAmount(c.DailyLimit), FormatAmount(store.MaxAmount)))
	}
	if c.HashConcurrency < 0 {
		errs = append(errs, fmt.Errorf("hash concurrency %d: must not be negative", c.HashConcurrency))
	}
	if c.AuditRetention < c.ThrottleWindow {
		// Sign-in throttling counts the events of the last window.
		errs = append(errs, fmt.Errorf("audit retention %s is shorter than the throttle window %s", c.AuditRetention, c.ThrottleWindow))
	}
	return errors.Join(errs...)
}

// App serves the bank's operations. Create it with New and register its
// handlers with Mux; Run does both, and runs its push fan-out and
// retention beside the server.
type App struct {
	cfg    Config
	st     *store.Store
	hasher *Hasher
	hub    *hub
	log    *slog.Logger

	sessions *sessionCache

	signUps         *keyedLimiter // per client IP
	signInsChecking checking      // sign-in attempts not yet audited
	chatOpens       *keyedLimiter // per customer
	chatSends       *keyedLimiter // per customer, per minute
}

// rateLimitKeys bounds the keys each rate limiter remembers.
const rateLimitKeys = 100_000

// New returns an App over st.
func New(cfg Config, st *store.Store) (*App, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("apptier: %w", err)
	}
	h, err := NewHasher(cfg.Argon2, cfg.HashConcurrency)
	if err != nil {
		return nil, err
	}
	return &App{cfg: cfg, st: st, hasher: h, hub: newHub(), log: cfg.Logger,
		sessions:  newSessionCache(sessionCacheTTL, sessionCacheMax),
		signUps:   newKeyedLimiter(cfg.SignUpIPLimit, cfg.RateWindow, rateLimitKeys),
		chatOpens: newKeyedLimiter(cfg.ChatOpenLimit, cfg.RateWindow, rateLimitKeys),
		chatSends: newKeyedLimiter(cfg.ChatSendLimit, time.Minute, rateLimitKeys),
	}, nil
}

// Hasher returns the app's password hasher (used to seed demo data).
func (a *App) Hasher() *Hasher { return a.hasher }

// Mux returns a protocol mux with every operation registered. Handlers are
// plain typed functions: handle gives one its decoded request; authed
// also resolves the request's session token first (see authenticate) and
// answers UNAUTHENTICATED without calling it when the session is not live.
func (a *App) Mux() *proto.Mux {
	m := &mux{Mux: proto.NewMux(), app: a}
	handle(m, wire.Info, a.info)
	handle(m, wire.SignUp, a.signUp)
	handle(m, wire.SignIn, a.signIn)
	handle(m, wire.SessionCheck, a.sessionCheck) // keeps the customer in the session cache
	handle(m, wire.SignOut, a.signOut)           // an ended session is no error
	authed(m, wire.SignOutAll, a.signOutAll)
	authed(m, wire.AccountsList, a.accountsList)
	authed(m, wire.AccountOpen, a.accountOpen)
	authed(m, wire.AccountGet, a.accountGet)
	authed(m, wire.AccountHistory, a.accountHistory)
	authed(m, wire.TransferCreate, a.transferCreate)
	authed(m, wire.TransferGet, a.transferGet)
	authed(m, wire.TransferResolve, a.transferResolve)
	authed(m, wire.TransferForm, a.transferForm)
	authed(m, wire.PayeesList, a.payeesList)
	authed(m, wire.PayeeAdd, a.payeeAdd)
	authed(m, wire.PayeeRename, a.payeeRename)
	authed(m, wire.PayeeDelete, a.payeeDelete)
	authed(m, wire.ChatOpen, a.chatOpen)
	authed(m, wire.ChatList, a.chatList)
	authed(m, wire.ChatSend, a.chatSend)
	authed(m, wire.ChatHistory, a.chatHistory)
	proto.HandleStream(m.Mux, wire.Subscribe, func(ctx context.Context, _ *proto.Request, in wire.SessionRequest, st *proto.Stream) error {
		return a.subscribe(ctx, in, st)
	})
	return m.Mux
}

// mux is the mux that Mux fills, with the app whose sessions authed
// resolves.
type mux struct {
	*proto.Mux
	app *App
}

// handle registers h for the operation op.
func handle[Req, Resp any](m *mux, op wire.Method[Req, Resp], h func(ctx context.Context, in Req) (Resp, error)) {
	proto.Handle(m.Mux, op, func(ctx context.Context, _ *proto.Request, in Req) (Resp, error) { return h(ctx, in) })
}

// sessionRequest is a request that carries a session: every request type
// that embeds wire.SessionRequest.
type sessionRequest interface{ SessionToken() string }

// authed registers h for the operation op, which needs a live session: h
// runs with the session of the request's token.
func authed[Req sessionRequest, Resp any](m *mux, op wire.Method[Req, Resp], h func(ctx context.Context, s store.Session, in Req) (Resp, error)) {
	a := m.app
	proto.Handle(m.Mux, op, func(ctx context.Context, _ *proto.Request, in Req) (Resp, error) {
		s, err := a.authenticate(ctx, in.SessionToken())
		if err != nil {
			var zero Resp
			return zero, err
		}
		return h(ctx, s, in)
	})
}

// SeedDemo loads the demo customers alice and bob (idempotent).
func (a *App) SeedDemo(ctx context.Context) error {
	alice, err := a.hasher.Hash(ctx, "alice-demo-pass")
	if err != nil {
		return err
	}
	bob, err := a.hasher.Hash(ctx, "bob-demo-pass")
	if err != nil {
		return err
	}
	return a.st.SeedDemo(ctx, store.DemoPasswords{Alice: alice, Bob: bob}, a.cfg.Now())
}

// Ready says whether the app tier can serve customers: nil while it reaches
// a database that accepts writes, an UNAVAILABLE error otherwise (no
// database, or only a replica during a failover). The admin /readyz and
// the protocol's info answer with it.
func (a *App) Ready(ctx context.Context) error {
	if err := a.st.CheckWritable(ctx); err != nil {
		a.log.DebugContext(ctx, "not ready", "err", err)
		return wire.Errorf(wire.Unavailable, "The bank is briefly unavailable.")
	}
	return nil
}

// info answers only while the app tier is ready, so that a web tier's
// readiness (which asks for info) follows the app tier's.
func (a *App) info(ctx context.Context, _ wire.InfoRequest) (wire.InfoResponse, error) {
	if err := a.Ready(ctx); err != nil {
		return wire.InfoResponse{}, err
	}
	return wire.InfoResponse{
		Server:         a.cfg.Name,
		DemoData:       a.cfg.DemoData,
		MinPassword:    MinPasswordLen,
		MaxPassword:    MaxPasswordLen,
		DailyLimit:     a.cfg.DailyLimit,
		LimitCurrency:  a.cfg.Currency,
		IdleTimeoutSec: int(a.cfg.IdleTimeout / time.Second),
	}, nil
}

// storeErr maps a store error to the protocol's codes: one table for the
// store→protocol boundary. The store has already told outages
// (ErrUnavailable, ErrAborted) from bugs (ErrInternal). Errors it does not
// know are returned as they are; the protocol server logs them and sends
// only "internal error".
func storeErr(err error, notFound string) error {
	var in *store.InputError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &in):
		return wire.FieldError(wire.InvalidArgument, in.Field, inputMessage(in))
	case errors.Is(err, store.ErrNotFound):
		return wire.Errorf(wire.NotFound, "%s", notFound)
	case errors.Is(err, store.ErrAlreadyExists):
		return wire.Errorf(wire.AlreadyExists, "That already exists.")
	case errors.Is(err, store.ErrInsufficientFunds):
		return wire.FieldError(wire.FailedPrecondition, "amount", "The amount is more than the available balance.")
	case errors.Is(err, store.ErrDailyLimit):
		return wire.FieldError(wire.FailedPrecondition, "amount", "This transfer would exceed your daily transfer limit.")
	case errors.Is(err, store.ErrCurrencyMismatch):
		return wire.FieldError(wire.FailedPrecondition, "to", "Both accounts must use the same currency.")
	case errors.Is(err, store.ErrSameAccount):
		return wire.FieldError(wire.InvalidArgument, "to", "Choose an account other than the one you pay from.")
	case errors.Is(err, store.ErrIdempotencyConflict):
		return wire.FieldError(wire.FailedPrecondition, "idempotency_key", "This form was already submitted with different details; start a new transfer.")
	case errors.Is(err, store.ErrKeyVoided):
		return wire.FieldError(wire.FailedPrecondition, "idempotency_key", "This transfer was already settled as not made; start a new transfer.")
	case errors.Is(err, store.ErrUnavailable):
		return wire.Errorf(wire.Unavailable, "The bank's systems are briefly unavailable. Please try again in a moment.")
	case errors.Is(err, store.ErrAborted):
		return wire.Errorf(wire.Aborted, "The bank was busy and nothing was changed. Please try again.")
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.DeadlineExceeded, "The request took too long.")
	case errors.Is(err, context.Canceled):
		return wire.Errorf(wire.Canceled, "The request was canceled.")
	}
	return err
}

func inputMessage(in *store.InputError) string {
	if in.Reason == "" {
		return fmt.Sprintf("The %s is not valid.", in.Field)
	}
	return fmt.Sprintf("The %s is not valid: %s.", in.Field, in.Reason)
}
