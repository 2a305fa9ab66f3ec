package proto

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"bankwire/proto/wire"
)

// ClientConfig configures a Client. Zero values mean the defaults.
type ClientConfig struct {
	Addrs  []string    // "host:port" of every app tier; host names are re-resolved and each address is an endpoint
	Secret string      // shared secret sent in AUTH (APPTIER_SECRET)
	Name   string      // client name and version sent in AUTH, e.g. "bankwire-webtier/1.0"
	TLS    *tls.Config // when set, connections use TLS; ServerName defaults to the host name

	ConnsPerAddr       int           // multiplexed connections per endpoint for unary calls; default 2
	StreamConnsPerAddr int           // most connections per endpoint for streams, dialed as needed; default 8
	DialTimeout        time.Duration // TCP connect plus handshake; default 3s
	DefaultTimeout     time.Duration // deadline of a Call whose ctx has none; default 10s
	ResolveInterval    time.Duration // how often host names are resolved again; default 5s
	WriteTimeout       time.Duration // for one write to the socket; default 10s
	Logger             *slog.Logger  // default slog.Default()

	// LookupHost resolves a host name to addresses; default
	// net.DefaultResolver.LookupHost. Tests and custom discovery set it.
	LookupHost func(ctx context.Context, host string) ([]string, error)

	// Trace, when set, sees every frame this client sends (sent=true) or
	// receives, the handshake included. conn names the connection (its
	// local address): request ids are per connection, and a client may
	// hold several. For debugging tools such as the terminal client's
	// -trace flag; it must not block.
	Trace func(conn string, sent bool, f wire.Frame)
}

func (c *ClientConfig) setDefaults() {
	orDefault(&c.ConnsPerAddr, 2)
	orDefault(&c.StreamConnsPerAddr, 8)
	orDefault(&c.DialTimeout, 3*time.Second)
	orDefault(&c.DefaultTimeout, 10*time.Second)
	orDefault(&c.ResolveInterval, 5*time.Second)
	orDefault(&c.WriteTimeout, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LookupHost == nil {
		c.LookupHost = net.DefaultResolver.LookupHost
	}
	if c.Name == "" {
		c.Name = "bankwire-client"
	}
}

// Client is a pool of multiplexed connections to one or more app tiers. It
// is safe for concurrent use. Connections are dialed lazily, so NewClient
// succeeds while every server is down.
//
// Every address a host name resolves to is an endpoint; each endpoint has
// up to ConnsPerAddr connections for unary calls and up to
// StreamConnsPerAddr for streams. A call picks an endpoint round robin,
// then a connection of it with room for one more request (§11). Background
// goroutines: resolveLoop (host names), one probe per down endpoint, dials
// in progress, and each connection's reader.
type Client struct {
	cfg     ClientConfig
	log     *slog.Logger
	targets []target

	ctx    context.Context // ends background work on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the client starts

	resolveMu sync.Mutex // held while resolving: one resolution at a time

	mu     sync.Mutex // guards the fields below
	eps    []*endpoint
	closed bool

	rr atomic.Uint64 // round robin over endpoints

	// reresolve asks resolveLoop for an early lookup: every endpoint is
	// down, and an app tier may have come back at a new address. nil when
	// every address is an IP literal.
	reresolve chan struct{}
}

type target struct {
	host, port string
	ip         bool // host is an IP literal: never resolved
}

// NewClient returns a client for cfg.Addrs. It fails only on a malformed
// configuration, never because servers are unreachable.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg.setDefaults()
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("proto: ClientConfig.Addrs is empty")
	}
	c := &Client{cfg: cfg, log: cfg.Logger}
	needResolve := false
	for _, a := range cfg.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("proto: app tier address %q: %w", a, err)
		}
		if host == "" {
			host = "localhost"
		}
		t := target{host: host, port: port, ip: net.ParseIP(host) != nil}
		needResolve = needResolve || !t.ip
		c.targets = append(c.targets, t)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if needResolve {
		c.reresolve = make(chan struct{}, 1)
		c.wg.Add(1)
		go c.resolveLoop()
	}
	return c, nil
}

// Close closes every connection; calls in flight fail with UNAVAILABLE.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	eps := c.eps
	c.eps = nil
	c.mu.Unlock()
	c.cancel() // closes every connection (see newClientConn)
	for _, ep := range eps {
		ep.retire()
	}
	c.wg.Wait()
	return nil
}

var errClientClosed = &wire.Error{Code: wire.Unavailable, Message: "client closed"}

// Call sends one request and decodes the RESPONSE into resp. req is the
// operation's request type (a wire.Marshaler; nil sends an empty body) and
// resp a pointer to its response type (a wire.Unmarshaler) or nil; another
// type fails INVALID_ARGUMENT before anything is sent. Errors are *wire.Error:
// the server's per-request error, DEADLINE_EXCEEDED
// or CANCELED from ctx, or UNAVAILABLE when no server could be reached or
// the connection was lost after the request may have started. A ctx
// without a deadline gets DefaultTimeout.
//
// A request the server provably never started (it was never written, or the
// server's DRAIN named a lower last id) is retried on another connection.
func (c *Client) Call(ctx context.Context, op wire.Op, req, resp any) error {
	u, ok := resp.(wire.Unmarshaler)
	if resp != nil && !ok {
		// Before sending: the request must not be carried out for an
		// answer that cannot be read.
		return &wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("response type %T: %v", resp, wire.ErrNoEncoding)}
	}
	body, err := wire.Marshal(nil, req)
	if err != nil {
		return &wire.Error{Code: wire.InvalidArgument, Message: "request not encodable: " + err.Error()}
	}
	ctx, cancel := c.withDefaultTimeout(ctx)
	defer cancel()
	f, err := c.do(ctx, op, body, nil)
	if err != nil {
		return err
	}
	if u != nil {
		if err := wire.Unmarshal(f.Payload, u); err != nil {
			return &wire.Error{Code: wire.Internal, Message: "undecodable response"}
		}
	}
	return nil
}

// Info asks the app tier for its wire.InfoResponse.
func (c *Client) Info(ctx context.Context) (*wire.InfoResponse, error) {
	var out wire.InfoResponse
	if err := c.Call(ctx, wire.OpInfo, wire.InfoRequest{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Subscribe opens a stream: the server answers with a RESPONSE, then pushes
// EVENT frames that Next returns, until Close, the server ends it, or the
// connection is lost. The subscription has no deadline; ctx bounds only
// opening it (DefaultTimeout if ctx has no deadline).
//
// Streams run on connections of their own (up to StreamConnsPerAddr per
// endpoint, each holding the max_in_flight its server announced), so open
// streams never take the request slots that unary calls need.
func (c *Client) Subscribe(ctx context.Context, op wire.Op, req any) (*Subscription, error) {
	body, err := wire.Marshal(nil, req)
	if err != nil {
		return nil, &wire.Error{Code: wire.InvalidArgument, Message: "request not encodable: " + err.Error()}
	}
	ctx, cancel := c.withDefaultTimeout(ctx)
	defer cancel()
	sub := &Subscription{events: make(chan []byte, subscriptionBuffer), done: make(chan struct{})}
	f, err := c.do(ctx, op, body, sub)
	if err != nil {
		return nil, err
	}
	if f.Flags&wire.FlagStream == 0 {
		// The server answered without opening a stream: it has ended.
		sub.finish(errStreamEnded)
	}
	return sub, nil
}

// do sends one request, retrying it while that is safe: only requests the
// server provably never started are sent again (§7.3). sub is non-nil for
// Subscribe.
func (c *Client) do(ctx context.Context, op wire.Op, body []byte, sub *Subscription) (wire.Frame, error) {
	trace := TraceID(ctx)
	drained, full := false, 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return wire.Frame{}, ctxError(err)
		}
		cc, err := c.pick(ctx, sub != nil)
		if err != nil {
			// Only a request bounced by a drain waits for a server to
			// come back (a rolling restart); a fresh one fails fast.
			if drained && err != errBusy && ctx.Err() == nil && attempt < 50 && sleepCtx(ctx, retryDelay(attempt)) == nil {
				continue
			}
			if cerr := ctx.Err(); cerr != nil && !isUnavailable(err) {
				return wire.Frame{}, ctxError(cerr)
			}
			return wire.Frame{}, err
		}
		f, err := cc.roundTrip(ctx, op, trace, body, sub)
		switch {
		case errors.Is(err, errConnFull):
			// Not sent: another caller took the last slot since pick.
			if full++; full > 8 {
				return wire.Frame{}, errBusy
			}
			continue
		case errors.Is(err, errNotStarted):
			drained = true
			if attempt >= 2 && sleepCtx(ctx, retryDelay(attempt)) != nil {
				return wire.Frame{}, &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: request could not be sent"}
			}
			continue
		}
		return f, err
	}
}

// withDefaultTimeout bounds a ctx without a deadline by DefaultTimeout.
func (c *Client) withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.DefaultTimeout)
}

func isUnavailable(err error) bool { return wire.ErrorCode(err) == wire.Unavailable }

// errBusy: every connection already has the max_in_flight requests its
// server announced. UNAVAILABLE, not RESOURCE_EXHAUSTED: it is the link's
// capacity, not the caller's throttle.
var errBusy = &wire.Error{Code: wire.Unavailable, Message: "app tier busy: every connection is at its max_in_flight"}

func retryDelay(attempt int) time.Duration {
	d := 10 * time.Millisecond << min(attempt, 4)
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ctxError turns a context error into the *wire.Error a caller sees.
func ctxError(err error) *wire.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	return &wire.Error{Code: wire.Canceled, Message: "canceled"}
}

// unavailable wraps a transport failure for the caller: the code is always
// UNAVAILABLE, the message says why without server internals.
func unavailable(err error) *wire.Error {
	var e *wire.Error
	if errors.As(err, &e) {
		if e.Code == wire.Unavailable {
			return e
		}
		return &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: " + e.Code.String() + ": " + e.Message}
	}
	return &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: " + err.Error()}
}

// Ping checks that an app tier answers: it sends PING on a pooled
// connection (dialing one if needed) and waits for PONG.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := c.withDefaultTimeout(ctx)
	defer cancel()
	cc, err := c.pick(ctx, false)
	if err != nil {
		return err
	}
	return cc.ping(ctx)
}

// Hello returns the greeting of the server behind a pooled connection
// (dialing one if needed).
func (c *Client) Hello(ctx context.Context) (wire.Hello, error) {
	cc, err := c.pick(ctx, false)
	if err != nil {
		return wire.Hello{}, err
	}
	return cc.hello, nil
}

// pick returns a connection with room for one more request: a unary one,
// or one for streams. Endpoints are tried round robin, those that are up
// first; only when none of them serves are the down ones dialed on demand
// (each at most every onDemandRedial, whatever its back-off), so that
// service resumes as soon as an app tier listens again.
func (c *Client) pick(ctx context.Context, forStreams bool) (*clientConn, error) {
	eps, err := c.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	n := uint64(len(eps))
	start := c.rr.Add(1)
	now := time.Now()
	var lastErr error
	anyUp := false
	for pass := 0; pass < 2; pass++ {
		for i := range n {
			ep := eps[(start+i)%n]
			up, probeDue := ep.state(now)
			anyUp = anyUp || up
			if pass == 0 && !up || pass == 1 && (up || !probeDue) {
				continue
			}
			cc, err := ep.conn(ctx, forStreams)
			if err == nil {
				return cc, nil
			}
			lastErr = err
			if ctx.Err() != nil {
				return nil, ctxError(ctx.Err())
			}
		}
	}
	if !anyUp && c.reresolve != nil {
		select {
		case c.reresolve <- struct{}{}:
		default:
		}
	}
	if lastErr != nil {
		return nil, unavailable(lastErr)
	}
	return nil, &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: every address is down"}
}

// endpoints returns the current endpoint set, resolving first if it is
// empty (on first use, or while every lookup so far failed).
func (c *Client) endpoints(ctx context.Context) ([]*endpoint, error) {
	if eps, err := c.current(); err != nil || len(eps) > 0 {
		return eps, err
	}
	c.resolveMu.Lock()
	defer c.resolveMu.Unlock()
	if eps, err := c.current(); err != nil || len(eps) > 0 {
		return eps, err // resolved while this call waited
	}
	c.resolveLocked(ctx)
	if eps, err := c.current(); err != nil || len(eps) > 0 {
		return eps, err
	}
	return nil, &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: no address resolved"}
}

func (c *Client) current() ([]*endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClientClosed
	}
	return c.eps, nil
}

func (c *Client) resolveLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.ResolveInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.reresolve:
			// Every endpoint is down: look again early, but at most
			// every reresolveMin.
			if wait := reresolveMin - time.Since(last); wait > 0 && sleepCtx(c.ctx, wait) != nil {
				return
			}
		}
		c.resolveMu.Lock()
		c.resolveLocked(c.ctx)
		c.resolveMu.Unlock()
		last = time.Now()
	}
}

// reresolveMin is the shortest time between two lookups asked for because
// every endpoint is down.
const reresolveMin = 500 * time.Millisecond

// resolveLocked looks every target up again and updates the endpoint set:
// new addresses become endpoints, vanished ones are retired (closed once
// idle). A failed lookup keeps that target's previous addresses. The
// caller holds resolveMu.
func (c *Client) resolveLocked(ctx context.Context) {
	c.mu.Lock()
	old := map[string]*endpoint{}
	for _, ep := range c.eps {
		old[ep.addr] = ep
	}
	c.mu.Unlock()

	var addrs []string
	hostOf := map[string]string{}
	add := func(addr, host string) {
		if _, dup := hostOf[addr]; !dup {
			addrs = append(addrs, addr)
			hostOf[addr] = host
		}
	}
	for _, t := range c.targets {
		if t.ip {
			add(net.JoinHostPort(t.host, t.port), t.host)
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ips, err := c.cfg.LookupHost(lctx, t.host)
		cancel()
		if err == nil && len(ips) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			c.log.Warn("resolve app tier address", "host", t.host, "err", err)
			for a, ep := range old {
				if ep.host == t.host {
					add(a, t.host)
				}
			}
			continue
		}
		for _, ip := range ips {
			add(net.JoinHostPort(ip, t.port), t.host)
		}
	}
	slices.Sort(addrs)

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	eps := make([]*endpoint, 0, len(addrs))
	for _, a := range addrs {
		if ep, ok := old[a]; ok {
			eps = append(eps, ep)
			delete(old, a)
			continue
		}
		eps = append(eps, &endpoint{c: c, addr: a, host: hostOf[a],
			unary:   connSet{max: c.cfg.ConnsPerAddr},
			streams: connSet{max: c.cfg.StreamConnsPerAddr, forStreams: true}})
	}
	changed := len(old) > 0 || len(eps) != len(c.eps)
	c.eps = eps
	c.mu.Unlock()
	for _, ep := range old {
		ep.retire()
	}
	if changed {
		c.log.Info("app tier endpoints", "addrs", addrs)
	}
}

// endpoint is one resolved address with its connections.
type endpoint struct {
	c    *Client
	addr string // ip:port
	host string // the configured host name, for TLS and logs

	mu        sync.Mutex // guards the fields below
	unary     connSet
	streams   connSet
	failures  int       // dials failed in a row (or an ejection); 0: up
	failedAt  time.Time // when it was last marked down
	downUntil time.Time // end of the back-off: when the probe dials next
	probing   bool      // a probe goroutine runs
	retired   bool      // out of service (vanished from DNS, or the client closed)
}

// connSet is an endpoint's connections of one kind: for unary calls or for
// streams. Guarded by the endpoint's mu.
type connSet struct {
	forStreams bool
	max        int
	conns      []*clientConn
	next       int           // round robin over conns
	dialing    chan struct{} // non-nil while a dial runs; closed when it ends
	dialErr    error         // why the last dial failed
}

// onDemandRedial is how often a request dials a down endpoint when every
// endpoint is down: recovery then follows an app tier coming back within
// about this long, whatever the background probe's back-off.
const onDemandRedial = 100 * time.Millisecond

// state reports whether the endpoint is up and, if not, whether a request
// may dial it now.
func (ep *endpoint) state(now time.Time) (up, probeDue bool) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.failures == 0 {
		return true, false
	}
	return false, !now.Before(ep.downUntil) || now.Sub(ep.failedAt) >= onDemandRedial
}

// conn returns a connection of this endpoint with room for one more
// request. Unary calls go round robin over ConnsPerAddr connections, dialed
// as calls come (while one dials, the others serve); streams fill their
// connections one after another and dial the next when all are full.
func (ep *endpoint) conn(ctx context.Context, forStreams bool) (*clientConn, error) {
	s := &ep.unary
	if forStreams {
		s = &ep.streams
	}
	for {
		ep.mu.Lock()
		if ep.retired {
			ep.mu.Unlock()
			return nil, &wire.Error{Code: wire.Unavailable, Message: "endpoint retired"}
		}
		var cc *clientConn
		for i := range s.conns {
			if k := (s.next + i) % len(s.conns); s.conns[k].hasRoom() {
				cc = s.conns[k]
				s.next = k + 1
				break
			}
		}
		if s.dialing == nil && len(s.conns) < s.max && (cc == nil || !forStreams) {
			ep.startDialLocked(s)
		}
		wait := s.dialing
		ep.mu.Unlock()
		switch {
		case cc != nil:
			return cc, nil
		case wait == nil && forStreams:
			return nil, &wire.Error{Code: wire.Unavailable, Message: "app tier busy: too many open streams"}
		case wait == nil:
			return nil, errBusy
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctxError(ctx.Err())
		}
		ep.mu.Lock()
		err := s.dialErr
		ep.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// startDialLocked dials a connection for s in the background. The dial is
// not tied to any caller's context, so a caller giving up does not waste
// it for the others. A connection dialed into a full set (by the probe)
// replaces the oldest, which is closed once idle.
func (ep *endpoint) startDialLocked(s *connSet) {
	done := make(chan struct{})
	s.dialing = done
	c := ep.c
	c.wg.Add(1) // under mu, after the retired check: Client.Close waits for it
	go func() {
		defer c.wg.Done()
		defer close(done)
		cc, err := c.dial(ep, s.forStreams)
		ep.mu.Lock()
		s.dialing, s.dialErr = nil, err
		if err == nil && ep.retired {
			ep.mu.Unlock()
			cc.close(errClientClosed)
			return
		}
		if err != nil {
			ep.markDownLocked(err)
		} else {
			if len(s.conns) >= s.max {
				s.conns[0].retireWhenIdle()
				s.conns = s.conns[1:]
			}
			s.conns = append(s.conns, cc)
			if ep.failures > 0 {
				ep.c.log.Info("app tier endpoint up", "addr", ep.addr)
			}
			ep.failures = 0
		}
		ep.mu.Unlock()
	}()
}

// markDownLocked records a failed dial (or an ejection): the endpoint is
// skipped while others are up, and a background probe dials it after each
// back-off (exponential with jitter) until it answers again. When every
// endpoint is down, requests dial it on demand too (see pick).
func (ep *endpoint) markDownLocked(err error) {
	ep.failures++
	back := min(100*time.Millisecond<<min(ep.failures-1, 8), 10*time.Second)
	back = back/2 + rand.N(back/2+1)
	ep.failedAt = time.Now()
	ep.downUntil = ep.failedAt.Add(back)
	if ep.failures == 1 {
		ep.c.log.Warn("app tier endpoint down", "addr", ep.addr, "err", err)
	}
	if ep.probing || ep.retired {
		return
	}
	ep.probing = true
	ep.c.wg.Add(1)
	go ep.probe()
}

// probe redials a down endpoint after each back-off until it is up, retired,
// or the client is closed.
func (ep *endpoint) probe() {
	c := ep.c
	defer c.wg.Done()
	for {
		ep.mu.Lock()
		if ep.failures == 0 || ep.retired || c.ctx.Err() != nil {
			ep.probing = false
			ep.mu.Unlock()
			return
		}
		wait := time.Until(ep.downUntil)
		ep.mu.Unlock()
		_ = sleepCtx(c.ctx, max(wait, time.Millisecond))
		ep.mu.Lock()
		if ep.failures > 0 && !ep.retired && ep.unary.dialing == nil && c.ctx.Err() == nil {
			ep.startDialLocked(&ep.unary)
		}
		wait2 := ep.unary.dialing
		ep.mu.Unlock()
		if wait2 != nil {
			select {
			case <-wait2:
			case <-c.ctx.Done():
			}
		}
	}
}

// detach removes cc from its endpoint so that new requests go elsewhere.
func (ep *endpoint) detach(cc *clientConn) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	s := &ep.unary
	if cc.forStreams {
		s = &ep.streams
	}
	s.conns = slices.DeleteFunc(s.conns, func(x *clientConn) bool { return x == cc })
}

// eject takes an endpoint whose server stopped answering out of rotation
// as if a dial had failed: calls go to other endpoints, and the
// background probe dials it until it answers again. Its stream
// connections go to the same server, so each is probed at once rather
// than at the keepalive's pace; a dead one is closed, which ends its
// streams with UNAVAILABLE so their subscribers can open them elsewhere.
func (ep *endpoint) eject(err error) {
	ep.mu.Lock()
	if !ep.retired && ep.failures == 0 {
		ep.markDownLocked(err)
	}
	streams := slices.Clone(ep.streams.conns)
	ep.mu.Unlock()
	for _, cc := range streams {
		cc.probe()
	}
}

// retire takes the endpoint out of service: its connections stop taking
// requests and close once idle.
func (ep *endpoint) retire() {
	ep.mu.Lock()
	ep.retired = true
	conns := append(ep.unary.conns, ep.streams.conns...)
	ep.unary.conns, ep.streams.conns = nil, nil
	ep.mu.Unlock()
	for _, cc := range conns {
		cc.retireWhenIdle()
	}
}

// dial connects to ep and performs the client side of the handshake.
// forStreams marks a connection for streams only.
func (c *Client) dial(ep *endpoint, forStreams bool) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", ep.addr)
	if err != nil {
		return nil, &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: " + err.Error()}
	}
	if c.cfg.TLS != nil {
		tc := c.cfg.TLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName = ep.host
		}
		nc = tls.Client(nc, tc)
	}
	in := &arrivals{Conn: nc, born: time.Now()}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	var trace func(sent bool, f wire.Frame)
	if t := c.cfg.Trace; t != nil {
		conn := nc.LocalAddr().String()
		trace = func(sent bool, f wire.Frame) { t(conn, sent, f) }
	}
	hello, fr, err := clientHandshake(in, c.cfg.Name, c.cfg.Secret, trace)
	stop()
	if err != nil {
		nc.Close()
		var e *wire.Error
		if errors.As(err, &e) && (e.Code == wire.BadSecret || e.Code == wire.UnsupportedVersion) {
			c.log.Error("app tier rejected the handshake", "addr", ep.addr, "code", e.Code.String(), "reason", e.Message)
		}
		return nil, unavailable(err)
	}
	_ = nc.SetDeadline(time.Time{})
	return newClientConn(c, ep, in, fr, hello, forStreams, trace), nil
}

// clientHandshake reads HELLO, sends AUTH and waits for READY (checked, not
// kept: nothing in it is needed later). The caller sets the deadline.
func clientHandshake(nc net.Conn, name, secret string, trace func(bool, wire.Frame)) (wire.Hello, *wire.Framer, error) {
	fr := wire.NewFramer(nc, nc)
	fr.SetMaxPayload(wire.HandshakeMaxPayload)
	read := func() (wire.Frame, error) {
		f, err := fr.ReadFrame()
		if err != nil {
			return f, fmt.Errorf("handshake: %w", err)
		}
		if trace != nil {
			trace(false, f)
		}
		if f.Type == wire.FrameFatal {
			e, perr := wire.ParseFatal(f.Payload)
			if perr != nil {
				return f, perr
			}
			return f, e
		}
		return f, nil
	}
	f, err := read()
	if err != nil {
		return wire.Hello{}, nil, err
	}
	if f.Type != wire.FrameHello {
		return wire.Hello{}, nil, &wire.Error{Code: wire.ProtocolError, Message: "expected HELLO, got " + f.Type.String()}
	}
	hello, err := wire.ParseHello(f.Payload)
	if err != nil {
		return hello, nil, err
	}
	auth, _ := json.Marshal(wire.Auth{Version: wire.Version, Client: name, Secret: secret})
	af := wire.Frame{Type: wire.FrameAuth, Payload: auth}
	if trace != nil {
		trace(true, af)
	}
	if err := fr.WriteFrame(af); err != nil {
		return hello, nil, fmt.Errorf("handshake: %w", err)
	}
	f, err = read()
	if err != nil {
		return hello, nil, err
	}
	if f.Type != wire.FrameReady {
		return hello, nil, &wire.Error{Code: wire.ProtocolError, Message: "expected READY, got " + f.Type.String()}
	}
	var ready wire.Ready
	if err := wire.UnmarshalHandshake(f.Payload, &ready); err != nil {
		return hello, nil, &wire.Error{Code: wire.ProtocolError, Message: "undecodable READY"}
	}
	fr.SetMaxPayload(min(hello.MaxPayload, math.MaxInt32))
	return hello, fr, nil
}
