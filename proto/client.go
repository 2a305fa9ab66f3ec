package proto

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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
	orDefault(&c.Name, "bankwire-client")
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LookupHost == nil {
		c.LookupHost = net.DefaultResolver.LookupHost
	}
}

// Client is a pool of multiplexed connections to one or more app tiers. It
// is safe for concurrent use. Connections are dialed lazily, so NewClient
// succeeds while every server is down.
//
// A call picks an endpoint (see ClientConfig) round robin, then a
// connection of it with room for one more request (§11). Goroutines:
// resolveLoop (host names), dials in progress, the pings of an ejected
// endpoint's stream connections, and each connection's background reader
// (clientconn.go); and Close waits for every connection to be closed.
type Client struct {
	cfg     ClientConfig
	log     *slog.Logger
	targets []target

	ctx    context.Context // ends background work on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines the type doc lists; Close waits for them

	resolved chan struct{} // closed when resolveLoop's first lookup is done

	mu     sync.Mutex // guards eps and closed
	eps    []*endpoint
	closed bool

	rr atomic.Uint64 // round robin over endpoints

	// reresolve asks resolveLoop for an early lookup: no endpoint served
	// a call, and an app tier may have come back at a new address.
	reresolve chan struct{}
}

type target struct{ host, port string }

// NewClient returns a client for cfg.Addrs. It fails only on a malformed
// configuration, never because servers are unreachable.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg.setDefaults()
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("proto: ClientConfig.Addrs is empty")
	}
	c := &Client{cfg: cfg, log: cfg.Logger, reresolve: make(chan struct{}, 1), resolved: make(chan struct{})}
	for _, a := range cfg.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("proto: app tier address %q: %w", a, err)
		}
		if host == "" {
			host = "localhost"
		}
		c.targets = append(c.targets, target{host: host, port: port})
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.resolveLoop()
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
	c.cancel() // ends dials in progress
	for _, ep := range eps {
		ep.retire(true)
	}
	c.wg.Wait()
	return nil
}

var errClientClosed = &wire.Error{Code: wire.Unavailable, Message: "client closed"}

// call sends one request for op and decodes the RESPONSE into resp: the
// untyped path under the package function Call, which documents its
// errors. req is a wire.Marshaler (nil sends an empty body) and resp a
// wire.Unmarshaler or nil; another type fails INVALID_ARGUMENT before
// anything is sent.
func (c *Client) call(ctx context.Context, op wire.Op, req, resp any) error {
	u, ok := resp.(wire.Unmarshaler)
	if resp != nil && !ok {
		// Before sending: the request must not be carried out for an
		// answer that cannot be read.
		return &wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("response type %T: %v", resp, wire.ErrNoEncoding)}
	}
	bp := bodyPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBody {
			bodyPool.Put(bp)
		}
	}()
	body, err := wire.Marshal((*bp)[:0], req)
	*bp = body // the frame holds a copy: the buffer is free once call returns
	if err != nil {
		return &wire.Error{Code: wire.InvalidArgument, Message: "request not encodable: " + err.Error()}
	}
	// No context.WithTimeout for the default deadline: its timer would be
	// armed and stopped on every call. The deadline travels as a time, and
	// only the slow paths (dialing, retrying, waiting behind another
	// reader) arm a timer for it.
	dl, ok := ctx.Deadline()
	if !ok {
		dl = monoNow().Add(c.cfg.DefaultTimeout)
	}
	f, err := c.do(ctx, op, body, nil, dl)
	if err == nil && u != nil && wire.Unmarshal(f.Payload, u) != nil {
		err = &wire.Error{Code: wire.Internal, Message: "undecodable response"}
	}
	return err
}

// bodyPool holds request-encoding buffers; a buffer grown past
// maxPooledBody by a big request is left to the collector.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledBody = 64 << 10

// subscribe opens a stream for op: the untyped path under the package
// function Subscribe, which documents it.
func (c *Client) subscribe(ctx context.Context, op wire.Op, req any) (*Subscription, error) {
	body, err := wire.Marshal(nil, req)
	if err != nil {
		return nil, &wire.Error{Code: wire.InvalidArgument, Message: "request not encodable: " + err.Error()}
	}
	ctx, cancel := withDeadline(ctx, time.Now().Add(c.cfg.DefaultTimeout))
	defer cancel()
	dl, _ := ctx.Deadline()
	sub := &Subscription{events: make(chan []byte, subscriptionBuffer), done: make(chan struct{})}
	f, err := c.do(ctx, op, body, sub, dl)
	if err != nil {
		return nil, err
	}
	if f.Flags&wire.FlagStream == 0 {
		sub.finish(io.EOF) // answered without opening a stream: it has ended
	}
	return sub, nil
}

// do sends one request (sub is non-nil for subscribe), retrying it only
// while the server provably never started it (§7.3): it was never
// written, or a DRAIN named a lower last id. dl is the request's
// deadline: ctx's, or the default one.
func (c *Client) do(ctx context.Context, op wire.Op, body []byte, sub *Subscription, dl time.Time) (wire.Frame, error) {
	trace := TraceID(ctx)
	drained, full := false, 0
	cancel := func() {}
	defer func() { cancel() }()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return wire.Frame{}, ctxError(err)
		}
		if attempt == 1 { // a retry: from here on ctx carries dl, so every wait is bounded by it
			ctx, cancel = withDeadline(ctx, dl)
		}
		cc, err := c.pick(ctx, dl, sub != nil)
		if err != nil {
			// Only a request bounced by a drain waits for a server to
			// come back (a rolling restart); a fresh one fails fast.
			if drained && err != errBusy && attempt < 50 && sleepCtx(ctx, retryDelay(attempt)) == nil {
				continue
			}
			if cerr := ctx.Err(); cerr != nil && wire.ErrorCode(err) != wire.Unavailable {
				return wire.Frame{}, ctxError(cerr)
			}
			return wire.Frame{}, err
		}
		f, err := cc.roundTrip(ctx, op, trace, body, sub, dl)
		switch {
		case err == errConnFull: // not sent: another caller took the last slot since pick
			if full++; full > 8 {
				return wire.Frame{}, errBusy
			}
			continue
		case err == errNotStarted:
			drained = true
			if attempt >= 2 && sleepCtx(ctx, retryDelay(attempt)) != nil {
				return wire.Frame{}, ctxError(ctx.Err())
			}
			continue
		}
		return f, err
	}
}

// withDeadline returns ctx bounded by dl, unless it has a deadline already.
func withDeadline(ctx context.Context, dl time.Time) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, dl)
}

// await waits for ch to be closed, until ctx ends or, if ctx has no
// deadline, dl passes (a zero dl: no bound but ctx).
func await(ctx context.Context, dl time.Time, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	default:
	}
	if !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = withDeadline(ctx, dl)
		defer cancel()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctxError(ctx.Err())
	}
}

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
	ctx, cancel := withDeadline(ctx, time.Now().Add(c.cfg.DefaultTimeout))
	defer cancel()
	cc, err := c.pick(ctx, time.Time{}, false)
	if err != nil {
		return err
	}
	return cc.ping(ctx)
}

// Hello returns the greeting of the server behind a pooled connection
// (dialing one if needed).
func (c *Client) Hello(ctx context.Context) (wire.Hello, error) {
	cc, err := c.pick(ctx, time.Time{}, false)
	if err != nil {
		return wire.Hello{}, err
	}
	return cc.hello, nil
}

// pick returns a connection with room for one more request: a unary one,
// or one for streams. Endpoints are tried round robin, those that are up
// first; only when none of them serves are the down ones dialed on demand,
// so that service resumes as soon as an app tier listens again.
// Its waits (the first lookup, a dial) end at dl when ctx has no deadline.
func (c *Client) pick(ctx context.Context, dl time.Time, forStreams bool) (*clientConn, error) {
	eps, err := c.endpoints(ctx, dl)
	if err != nil {
		return nil, err
	}
	n := uint64(len(eps))
	start := c.rr.Add(1)
	var lastErr error = errAllDown
	for _, onDemand := range []bool{false, true} {
		for i := range n {
			cc, err := eps[(start+i)%n].conn(ctx, dl, forStreams, onDemand)
			if err == nil {
				return cc, nil
			}
			if err != errSkipped {
				lastErr = err
			}
			if ctx.Err() != nil {
				return nil, ctxError(ctx.Err())
			}
		}
	}
	select {
	case c.reresolve <- struct{}{}:
	default:
	}
	return nil, unavailable(lastErr)
}

var errAllDown = &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: every address is down"}

// endpoints returns the current endpoint set, once the first lookup is
// done.
func (c *Client) endpoints(ctx context.Context, dl time.Time) ([]*endpoint, error) {
	if err := await(ctx, dl, c.resolved); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, errClientClosed
	case len(c.eps) == 0:
		select { // as pick does when no endpoint serves
		case c.reresolve <- struct{}{}:
		default:
		}
		return nil, &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: no address resolved"}
	}
	return c.eps, nil
}

// resolveLoop is the only goroutine that resolves: at once, then every
// ResolveInterval, and early (at most every reresolveMin) when pick found
// no endpoint that serves.
func (c *Client) resolveLoop() {
	defer c.wg.Done()
	c.resolve()
	close(c.resolved)
	t := time.NewTicker(c.cfg.ResolveInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.reresolve:
			if wait := reresolveMin - time.Since(last); wait > 0 && sleepCtx(c.ctx, wait) != nil {
				return
			}
		}
		c.resolve()
		last = time.Now()
	}
}

const reresolveMin = 500 * time.Millisecond

// resolve looks every target up again and updates the endpoint set: new
// addresses become endpoints, vanished ones are retired (closed once
// idle). A failed lookup keeps that target's previous addresses.
func (c *Client) resolve() {
	c.mu.Lock()
	old := c.eps
	c.mu.Unlock()
	hostOf := map[string]string{} // ip:port → the configured host
	for _, t := range c.targets {
		ips := []string{t.host}
		if net.ParseIP(t.host) == nil { // an IP literal is never resolved
			lctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
			found, err := c.cfg.LookupHost(lctx, t.host)
			cancel()
			if err == nil && len(found) == 0 {
				err = errors.New("no addresses")
			}
			if err != nil {
				c.log.Warn("resolve app tier address", "host", t.host, "err", err)
				found = nil
				for _, ep := range old {
					if ep.host == t.host {
						hostOf[ep.addr] = t.host
					}
				}
			}
			ips = found
		}
		for _, ip := range ips {
			hostOf[net.JoinHostPort(ip, t.port)] = t.host
		}
	}
	keep := map[string]*endpoint{}
	for _, ep := range old {
		keep[ep.addr] = ep
	}
	var eps []*endpoint
	for _, a := range slices.Sorted(maps.Keys(hostOf)) {
		ep := keep[a]
		if ep == nil {
			ep = &endpoint{c: c, addr: a, host: hostOf[a],
				unary:   connSet{max: c.cfg.ConnsPerAddr},
				streams: connSet{max: c.cfg.StreamConnsPerAddr, forStreams: true}}
		}
		delete(keep, a)
		eps = append(eps, ep)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.eps = eps
	c.mu.Unlock()
	for _, ep := range keep {
		ep.retire(false)
	}
	if len(keep) > 0 || len(eps) != len(old) {
		c.log.Info("app tier endpoints", "addrs", slices.Sorted(maps.Keys(hostOf)))
	}
}

// endpoint is one resolved address with its connections.
//
// An endpoint is down after a failed dial or handshake while none of its
// connections is open, or once one of them found the server dead (eject). A down endpoint is skipped
// while others serve; a call that skips it once its back-off (exponential
// with jitter, 100 ms doubling to 10 s) has passed starts a redial in the
// background. When no up endpoint serves, calls dial the down ones on
// demand, each at most every onDemandRedial whatever its back-off, sharing
// a dial in progress. A successful dial marks the endpoint up again.
type endpoint struct {
	c    *Client
	addr string // ip:port
	host string // the configured host name, for TLS and logs

	mu       sync.Mutex // guards the fields below; taken before a clientConn's locks
	unary    connSet
	streams  connSet
	failures int       // dials failed in a row (or an ejection); 0: up
	failedAt time.Time // when it was last marked down
	retryAt  time.Time // end of the back-off
	retired  bool      // out of service (vanished from DNS, or the client closed)
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
	retryAt    time.Time     // after a failed dial while other connections serve: no dial before
}

// extraDialPause is how long a connection set waits to dial again after a
// dial failed while the endpoint's other connections serve.
const extraDialPause = time.Second

const onDemandRedial = 100 * time.Millisecond

// testHookDialed, set only by tests, runs after a dial, before the new
// connection joins its set.
var testHookDialed func()

// errSkipped: pick does not try this endpoint in this pass.
var errSkipped = errors.New("proto: endpoint skipped")

// conn returns a connection of this endpoint with room for one more
// request, or errSkipped if the endpoint is not for this pass of pick (up
// endpoints in the first, down ones on demand in the second; see
// endpoint). Unary calls go round robin over ConnsPerAddr connections,
// dialed as calls come (while one dials, the others serve); streams fill
// their connections one after another and dial the next when all are full.
func (ep *endpoint) conn(ctx context.Context, dl time.Time, forStreams, onDemand bool) (*clientConn, error) {
	s := &ep.unary
	if forStreams {
		s = &ep.streams
	}
	ep.mu.Lock()
	if ep.failures > 0 {
		now := time.Now()
		due := !now.Before(ep.retryAt)
		if due && !onDemand && ep.unary.dialing == nil && !now.Before(ep.unary.retryAt) && !ep.retired {
			ep.startDialLocked(&ep.unary)
		}
		if !onDemand || !due && now.Sub(ep.failedAt) < onDemandRedial {
			ep.mu.Unlock()
			return nil, errSkipped
		}
	} else if onDemand {
		ep.mu.Unlock()
		return nil, errSkipped
	}
	for {
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
		if s.dialing == nil && len(s.conns) < s.max && (cc == nil || !forStreams) && !time.Now().Before(s.retryAt) {
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
		if err := await(ctx, dl, wait); err != nil {
			return nil, err
		}
		ep.mu.Lock()
		if err := s.dialErr; err != nil {
			ep.mu.Unlock()
			return nil, err
		}
	}
}

// startDialLocked dials a connection for s in the background. The dial is
// not tied to any caller's context, so a caller giving up does not waste
// it for the others. A connection dialed into a full set (a redial of a
// down endpoint) replaces the oldest, which is closed once idle.
func (ep *endpoint) startDialLocked(s *connSet) {
	done := make(chan struct{})
	s.dialing = done
	c := ep.c
	c.wg.Add(1) // under mu, after the retired check: Client.Close waits for it
	go func() {
		defer c.wg.Done()
		defer close(done)
		cc, err := c.dial(ep, s.forStreams)
		if testHookDialed != nil {
			testHookDialed()
		}
		ep.mu.Lock()
		defer ep.mu.Unlock()
		if err == nil && cc.isClosed() {
			// It closed before joining the set (the server went away
			// right after READY), so its detach found nothing to remove.
			err = cc.closeErr
		}
		s.dialing, s.dialErr = nil, err
		switch {
		case err != nil && len(ep.unary.conns)+len(ep.streams.conns) > 0:
			// One more connection failed (the server is at its
			// connection limit, say) while others serve: the endpoint
			// stays up, or, if it is down (ejected), its back-off
			// grows; this set dials again after a pause.
			s.retryAt = time.Now().Add(extraDialPause)
			if ep.failures > 0 {
				ep.markDownLocked(err)
			}
		case err != nil:
			ep.markDownLocked(err)
		case ep.retired:
			go cc.close(errClientClosed)
		default:
			s.retryAt = time.Time{}
			if len(s.conns) >= s.max {
				s.conns[0].retireWhenIdle()
				s.conns = s.conns[1:]
			}
			s.conns = append(s.conns, cc)
			if ep.failures > 0 {
				c.log.Info("app tier endpoint up", "addr", ep.addr)
			}
			ep.failures = 0
		}
	}()
}

// markDownLocked records a failed dial or an ejection (see endpoint).
func (ep *endpoint) markDownLocked(err error) {
	ep.failures++
	back := min(100*time.Millisecond<<min(ep.failures-1, 8), 10*time.Second)
	ep.failedAt = time.Now()
	ep.retryAt = ep.failedAt.Add(back/2 + rand.N(back/2+1))
	if ep.failures == 1 {
		ep.c.log.Warn("app tier endpoint down", "addr", ep.addr, "err", err)
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
// as if a dial had failed. Its stream connections go to the same server,
// so each is pinged at once rather than at the keepalive's pace; a silent
// one is closed, which ends its streams with UNAVAILABLE so that
// subscribers can open them elsewhere.
func (ep *endpoint) eject(err error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.retired {
		return
	}
	if ep.failures == 0 {
		ep.markDownLocked(err)
	}
	c := ep.c
	for _, cc := range ep.streams.conns {
		c.wg.Add(1) // under mu, after the retired check: Client.Close waits for it
		go func() {
			defer c.wg.Done()
			ctx, cancel := context.WithTimeout(c.ctx, probeTimeout)
			defer cancel()
			if cc.ping(ctx) != nil && ctx.Err() != nil && c.ctx.Err() == nil {
				cc.close(errStreamConnSilent)
			}
		}()
	}
}

// errStreamConnSilent closes a stream connection that did not answer the
// PING sent when its endpoint was ejected (not errNotResponding: the
// endpoint is ejected already).
var errStreamConnSilent = &wire.Error{Code: wire.Unavailable, Message: "app tier not responding"}

// retire takes the endpoint out of service: its connections stop taking
// requests and close once idle, or at once when now is set (Client.Close).
func (ep *endpoint) retire(now bool) {
	ep.mu.Lock()
	ep.retired = true
	conns := append(ep.unary.conns, ep.streams.conns...)
	ep.unary.conns, ep.streams.conns = nil, nil
	ep.mu.Unlock()
	for _, cc := range conns {
		if now {
			cc.close(errClientClosed)
		} else {
			cc.retireWhenIdle()
		}
	}
}

// dial connects to ep and performs the client side of the handshake.
// forStreams marks a connection for streams only.
func (c *Client) dial(ep *endpoint, forStreams bool) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", ep.addr)
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
	nc = &stallReader{Conn: nc}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	var trace func(sent bool, f wire.Frame)
	if t := c.cfg.Trace; t != nil {
		conn := nc.LocalAddr().String()
		trace = func(sent bool, f wire.Frame) { t(conn, sent, f) }
	}
	hello, fr, err := clientHandshake(nc, c.cfg.Name, c.cfg.Secret, trace)
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
	return newClientConn(c, ep, nc, fr, hello, trace, forStreams), nil
}

// clientHandshake reads HELLO, sends AUTH and waits for READY. The caller
// sets the deadline.
func clientHandshake(nc net.Conn, name, secret string, trace func(bool, wire.Frame)) (wire.Hello, *wire.Framer, error) {
	fr := wire.NewFramer(nc, nc)
	fr.SetMaxPayload(wire.HandshakeMaxPayload)
	// read returns the payload of the next frame, which must be of type want.
	read := func(want wire.FrameType) ([]byte, error) {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("handshake: %w", err)
		}
		if trace != nil {
			trace(false, f)
		}
		switch {
		case f.Type == wire.FrameFatal:
			e, perr := wire.ParseFatal(f.Payload)
			if perr != nil {
				return nil, perr
			}
			return nil, e
		case f.Type != want:
			return nil, &wire.Error{Code: wire.ProtocolError, Message: "expected " + want.String() + ", got " + f.Type.String()}
		}
		return f.Payload, nil
	}
	p, err := read(wire.FrameHello)
	if err != nil {
		return wire.Hello{}, nil, err
	}
	hello, err := wire.ParseHello(p)
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
	if p, err = read(wire.FrameReady); err != nil {
		return hello, nil, err
	}
	var ready wire.Ready // checked; nothing in it is used
	if wire.UnmarshalHandshake(p, &ready) != nil {
		return hello, nil, &wire.Error{Code: wire.ProtocolError, Message: "undecodable READY"}
	}
	fr.SetMaxPayload(min(hello.MaxPayload, math.MaxInt32))
	return hello, fr, nil
}
