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
	"bankwire/store"
)

// Version is reported in the protocol greeting and in InfoResponse.
const Version = "1.0"

// Config holds the bank's rules and the app tier's knobs. Zero values take
// the defaults listed beside each field (see Defaults).
type Config struct {
	Name            string        // server name in the greeting; "bankwire-apptier/1.0"
	Currency        string        // the bank's currency; store.DefaultCurrency
	DailyLimit      int64         // daily outgoing limit to other customers, minor units; 10,000.00
	IdleTimeout     time.Duration // session idle timeout; 15 min
	AbsoluteTimeout time.Duration // session absolute lifetime; 8 h
	LockAfter       int           // failed sign-ins per username in ThrottleWindow before a lock; 5
	LockFor         time.Duration // how long a lock lasts; 15 min
	ThrottleWindow  time.Duration // window in which failures are counted; 15 min
	IPLimit         int           // failed sign-ins per client IP in ThrottleWindow before refusing; 50
	DelayBase       time.Duration // first throttling delay (after 2 failures); 250 ms
	DelayMax        time.Duration // cap of the growing delay; 2 s

	// Retention (see Run): sessions are deleted SessionRetention after
	// they expired, sign-in events AuditRetention after they were
	// recorded, every PurgeInterval.
	SessionRetention time.Duration // 24 h
	AuditRetention   time.Duration // 90 days; at least ThrottleWindow
	PurgeInterval    time.Duration // 1 h
	DemoData         bool          // demo customers exist (reported to the web tier)
	Argon2           Argon2Params  // DefaultArgon2
	HashConcurrency  int           // concurrent argon2id hashes; GOMAXPROCS
	Now              func() time.Time
	Logger           *slog.Logger
}

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	if c.Name == "" {
		c.Name = "bankwire-apptier/" + Version
	}
	if c.Currency == "" {
		c.Currency = store.DefaultCurrency
	}
	if c.DailyLimit == 0 {
		c.DailyLimit = 1_000_000
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 15 * time.Minute
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = 8 * time.Hour
	}
	if c.LockAfter == 0 {
		c.LockAfter = 5
	}
	if c.LockFor == 0 {
		c.LockFor = 15 * time.Minute
	}
	if c.ThrottleWindow == 0 {
		c.ThrottleWindow = 15 * time.Minute
	}
	if c.IPLimit == 0 {
		c.IPLimit = 50
	}
	if c.DelayBase == 0 {
		c.DelayBase = 250 * time.Millisecond
	}
	if c.DelayMax == 0 {
		c.DelayMax = 2 * time.Second
	}
	if c.SessionRetention == 0 {
		c.SessionRetention = 24 * time.Hour
	}
	if c.AuditRetention == 0 {
		c.AuditRetention = 90 * 24 * time.Hour
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = time.Hour
	}
	if c.Argon2 == (Argon2Params{}) {
		c.Argon2 = DefaultArgon2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// App serves the bank's operations. Create it with New, register its
// handlers with Mux, and run its push fan-out with Run.
type App struct {
	cfg    Config
	st     *store.Store
	hasher *Hasher
	hub    *hub
	log    *slog.Logger
}

// New returns an App over st.
func New(cfg Config, st *store.Store) (*App, error) {
	cfg = cfg.Defaults()
	if cfg.SessionRetention < 0 || cfg.PurgeInterval < 0 {
		return nil, fmt.Errorf("apptier: session retention and purge interval must not be negative")
	}
	if cfg.AuditRetention < cfg.ThrottleWindow {
		// Sign-in throttling counts the events of the last ThrottleWindow.
		return nil, fmt.Errorf("apptier: audit retention %s is shorter than the throttle window %s", cfg.AuditRetention, cfg.ThrottleWindow)
	}
	h, err := NewHasher(cfg.Argon2, cfg.HashConcurrency)
	if err != nil {
		return nil, err
	}
	return &App{cfg: cfg, st: st, hasher: h, hub: newHub(), log: cfg.Logger}, nil
}

// Hasher returns the app's password hasher (used to seed demo data).
func (a *App) Hasher() *Hasher { return a.hasher }

// Mux returns a protocol mux with every operation registered.
func (a *App) Mux() *proto.Mux {
	m := proto.NewMux()
	m.Handle(proto.OpInfo, a.info)
	m.Handle(proto.OpSignUp, a.signUp)
	m.Handle(proto.OpSignIn, a.signIn)
	m.Handle(proto.OpSessionCheck, a.sessionCheck)
	m.Handle(proto.OpSignOut, a.signOut)
	m.Handle(proto.OpSignOutAll, a.signOutAll)
	m.Handle(proto.OpAccountsList, a.accountsList)
	m.Handle(proto.OpAccountOpen, a.accountOpen)
	m.Handle(proto.OpAccountGet, a.accountGet)
	m.Handle(proto.OpAccountHistory, a.accountHistory)
	m.Handle(proto.OpTransferCreate, a.transferCreate)
	m.Handle(proto.OpTransferGet, a.transferGet)
	m.Handle(proto.OpPayeesList, a.payeesList)
	m.Handle(proto.OpPayeeAdd, a.payeeAdd)
	m.Handle(proto.OpPayeeRename, a.payeeRename)
	m.Handle(proto.OpPayeeDelete, a.payeeDelete)
	m.Handle(proto.OpChatOpen, a.chatOpen)
	m.Handle(proto.OpChatList, a.chatList)
	m.Handle(proto.OpChatSend, a.chatSend)
	m.Handle(proto.OpChatHistory, a.chatHistory)
	m.HandleStream(proto.OpSubscribe, a.subscribe)
	return m
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
		return proto.Errorf(proto.Unavailable, "The bank is briefly unavailable.")
	}
	return nil
}

// info answers only while the app tier is ready, so that a web tier's
// readiness (which asks for info) follows the app tier's.
func (a *App) info(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.InfoRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	if err := a.Ready(ctx); err != nil {
		return nil, err
	}
	return proto.InfoResponse{
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
// store→protocol boundary. Errors it does not know are returned as they are;
// the protocol server logs them and sends only "internal error".
func storeErr(err error, notFound string) error {
	var in *store.InputError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &in):
		return proto.FieldError(proto.InvalidArgument, in.Field, inputMessage(in))
	case errors.Is(err, store.ErrNotFound):
		return proto.Errorf(proto.NotFound, "%s", notFound)
	case errors.Is(err, store.ErrAlreadyExists):
		return proto.Errorf(proto.AlreadyExists, "That already exists.")
	case errors.Is(err, store.ErrInsufficientFunds):
		return proto.FieldError(proto.FailedPrecondition, "amount", "The amount is more than the available balance.")
	case errors.Is(err, store.ErrDailyLimit):
		return proto.FieldError(proto.FailedPrecondition, "amount", "This transfer would exceed your daily transfer limit.")
	case errors.Is(err, store.ErrCurrencyMismatch):
		return proto.FieldError(proto.FailedPrecondition, "to", "Both accounts must use the same currency.")
	case errors.Is(err, store.ErrSameAccount):
		return proto.FieldError(proto.InvalidArgument, "to", "Choose an account other than the one you pay from.")
	case errors.Is(err, store.ErrIdempotencyConflict):
		return proto.FieldError(proto.FailedPrecondition, "idempotency_key", "This form was already submitted with different details; start a new transfer.")
	case errors.Is(err, context.DeadlineExceeded):
		return proto.Errorf(proto.DeadlineExceeded, "The request took too long.")
	case errors.Is(err, context.Canceled):
		return proto.Errorf(proto.Canceled, "The request was canceled.")
	}
	return err
}

func inputMessage(in *store.InputError) string {
	if in.Reason == "" {
		return fmt.Sprintf("The %s is not valid.", in.Field)
	}
	return fmt.Sprintf("The %s is not valid: %s.", in.Field, in.Reason)
}
