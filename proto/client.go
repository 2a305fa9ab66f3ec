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
	if c.ConnsPerAddr <= 0 {
		c.ConnsPerAddr = 2
	}
	if c.StreamConnsPerAddr <= 0 {
		c.StreamConnsPerAddr = 8
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 3 * time.Second
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 10 * time.Second
	}
	if c.ResolveInterval <= 0 {
		c.ResolveInterval = 5 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
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
type Client struct {
	cfg     ClientConfig
	log     *slog.Logger
	targets []target

	ctx    context.Context // ends background work on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	eps       []*endpoint
	snap      atomic.Pointer[[]*endpoint] // eps for the lock-free fast path of every call
	resolved  bool
	resolving chan struct{} // non-nil while a resolution runs
	closed    bool

	rr atomic.Uint64

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
	c.snap.Store(nil)
	c.mu.Unlock()
	c.cancel()
	for _, ep := range eps {
		ep.retire(true)
	}
	c.wg.Wait()
	return nil
}

var errClientClosed = &wire.Error{Code: wire.Unavailable, Message: "client closed"}

// Call sends one request and decodes the RESPONSE into resp. req is the
// operation's request type (a wire.Marshaler; nil sends an empty body) and
// resp a pointer to its response type (a wire.Unmarshaler) or nil; another
// type fails INVALID_ARGUMENT before anything is sent. Errors are *Error:
// the server's per-request error, DEADLINE_EXCEEDED
// or CANCELED from ctx, or UNAVAILABLE when no server could be reached or
// the connection was lost after the request may have started.
//
// A request the server provably never started (it was never written, or the
// server's DRAIN named a lower last id) is retried on another connection.
func (c *Client) Call(ctx context.Context, op wire.Op, req, resp any) error {
	bp := bodyPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBody {
			bodyPool.Put(bp)
		}
	}()
	u, ok := resp.(wire.Unmarshaler)
	if resp != nil && !ok {
		// Before sending: the request must not be carried out for an
		// answer that cannot be read.
		return &wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("response type %T: %v", resp, wire.ErrNoEncoding)}
	}
	body, err := wire.Marshal((*bp)[:0], req)
	*bp = body // the frame holds a copy: the buffer is free once Call returns
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

// bodyPool holds request-encoding buffers; a buffer grown past
// maxPooledBody by a big request is left to the collector.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledBody = 64 << 10

// Info asks the app tier for its InfoResponse.
func (c *Client) Info(ctx context.Context) (*wire.InfoResponse, error) {
	var out wire.InfoResponse
	if err := c.Call(ctx, wire.OpInfo, wire.InfoRequest{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// do runs the retry loop around one request. sub is non-nil for Subscribe.
// dl is the request's deadline: ctx's, or the default one.
func (c *Client) do(ctx context.Context, op wire.Op, body []byte, sub *Subscription, dl time.Time) (wire.Frame, error) {
	trace := TraceID(ctx)
	drained := false
	var cancel context.CancelFunc
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	var spare *clientConn // a connection with room, after one was full
	full := 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return wire.Frame{}, ctxError(err)
		}
		var cc *clientConn
		next := pickNext{slot: -1}
		switch {
		case spare != nil:
			cc, spare = spare, nil
		case attempt == 0 && sub == nil:
			cc, next = c.pickReady()
		}
		if cc == nil {
			// A slow path: from here on ctx carries dl, so every wait is
			// bounded by it.
			if cancel == nil {
				ctx, cancel = withDeadline(ctx, dl)
			}
			var err error
			if sub != nil {
				cc, err = c.pickFrom(ctx, next, (*endpoint).streamConn)
			} else {
				cc, err = c.pickFrom(ctx, next, (*endpoint).conn)
			}
			if err != nil {
				// Only a request bounced by a drain waits for a server to
				// come back (a rolling restart); a fresh one fails fast.
				if drained && ctx.Err() == nil && attempt < 50 {
					if sleepCtx(ctx, retryDelay(attempt)) == nil {
						continue
					}
				}
				if cerr := ctx.Err(); cerr != nil && !isUnavailable(err) {
					return wire.Frame{}, ctxError(cerr)
				}
				return wire.Frame{}, err
			}
		}
		f, err := cc.roundTrip(ctx, op, trace, body, sub, dl)
		if errors.Is(err, errConnFull) {
			// Not sent: the app tier announced it would refuse it there.
			if full++; full > 8 {
				return wire.Frame{}, errBusy
			}
			if sub == nil {
				if cancel == nil {
					ctx, cancel = withDeadline(ctx, dl)
				}
				if spare = c.connWithRoom(ctx); spare == nil {
					return wire.Frame{}, errBusy
				}
			}
			continue // a stream: pickFrom finds or dials a stream connection with room
		}
		if errors.Is(err, errNotStarted) {
			drained = true
			if attempt >= 2 && sleepCtx(ctx, retryDelay(attempt)) != nil {
				return wire.Frame{}, &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: request could not be sent"}
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

func isUnavailable(err error) bool { return wire.ErrorCode(err) == wire.Unavailable }

// errBusy: every connection already has the max_in_flight requests its
// server announced. UNAVAILABLE, not RESOURCE_EXHAUSTED: it is the link's
// capacity, not the caller's throttle.
var errBusy = &wire.Error{Code: wire.Unavailable, Message: "app tier busy: every connection is at its max_in_flight"}

// connWithRoom returns a unary connection of an up endpoint that may take
// another request: a ready one, else one dialed into an empty slot (the
// pool's size is ConnsPerAddr). nil when there is none.
func (c *Client) connWithRoom(ctx context.Context) *clientConn {
	p := c.snap.Load()
	if p == nil {
		return nil
	}
	eps := *p
	start := c.rr.Add(1)
	for i := range eps {
		ep := eps[(start+uint64(i))%uint64(len(eps))]
		if !ep.up.Load() {
			continue
		}
		for j := range ep.fast {
			if cc := ep.fast[j].Load(); cc != nil && cc.hasRoom() {
				return cc
			}
		}
	}
	for i := range eps {
		ep := eps[(start+uint64(i))%uint64(len(eps))]
		if ep.up.Load() {
			if cc := ep.fillSlot(ctx); cc != nil && cc.hasRoom() {
				return cc
			}
		}
	}
	return nil
}

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

// ctxError turns a context error into the *Error a caller sees.
func ctxError(err error) *wire.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	return &wire.Error{Code: wire.Canceled, Message: "canceled"}
}

// Ping checks that an app tier answers: it sends PING on a pooled
// connection (dialing one if needed) and waits for PONG.
func (c *Client) Ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.DefaultTimeout)
		defer cancel()
	}
	for attempt := 0; attempt < 3; attempt++ {
		cc, err := c.pickFrom(ctx, pickNext{slot: -1}, (*endpoint).conn)
		if err != nil {
			return err
		}
		err = cc.ping(ctx)
		if !errors.Is(err, errNotStarted) {
			return err
		}
	}
	return &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable"}
}

// Hello returns the greeting of the server behind a pooled connection
// (dialing one if needed).
func (c *Client) Hello(ctx context.Context) (wire.Hello, error) {
	cc, err := c.pickFrom(ctx, pickNext{slot: -1}, (*endpoint).conn)
	if err != nil {
		return wire.Hello{}, err
	}
	return cc.hello, nil
}

// Subscribe opens a stream: the server answers with a RESPONSE, then pushes
// EVENT frames that Next returns, until Close, the server ends it, or the
// connection is lost. The subscription has no deadline; ctx bounds only
// opening it.
//
// Streams run on connections of their own (up to StreamConnsPerAddr per
// endpoint, each holding the max_in_flight its server announced), so open
// streams never take the request slots that unary calls need.
func (c *Client) Subscribe(ctx context.Context, op wire.Op, req any) (*Subscription, error) {
	body, err := wire.Marshal(nil, req)
	if err != nil {
		return nil, &wire.Error{Code: wire.InvalidArgument, Message: "request not encodable: " + err.Error()}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.DefaultTimeout)
		defer cancel()
	}
	sub := &Subscription{events: make(chan []byte, subscriptionBuffer), done: make(chan struct{})}
	dl, _ := ctx.Deadline()
	f, err := c.do(ctx, op, body, sub, dl)
	if err != nil {
		return nil, err
	}
	if f.Flags&wire.FlagStream == 0 {
		// The server answered without opening a stream: it has ended.
		sub.finish(errStreamEnded)
	}
	return sub, nil
}

// pickNext is where pickFrom continues after pickReady: the round-robin
// position it drew (valid when set) and the connection slot it tried on
// that endpoint (-1: none), so each call advances round robin once.
type pickNext struct {
	start uint64
	set   bool
	slot  int
}

// pickReady is pick's fast path, which waits for nothing: the next
// connection in round-robin order if it is ready and its endpoint up.
// Otherwise it returns nil and where pickFrom should go on.
func (c *Client) pickReady() (*clientConn, pickNext) {
	p := c.snap.Load()
	if p == nil || len(*p) == 0 {
		return nil, pickNext{slot: -1}
	}
	eps := *p
	start := c.rr.Add(1)
	next := pickNext{start: start, set: true, slot: -1}
	ep := eps[start%uint64(len(eps))]
	if !ep.up.Load() {
		return nil, next
	}
	next.slot = int(ep.next.Add(1)) % len(ep.fast)
	return ep.fast[next.slot].Load(), next
}

// pickFrom returns a ready connection got from an endpoint by get (conn for
// unary calls, streamConn for streams), dialing lazily. Endpoints marked
// down are skipped while others are up; when all are down, each is dialed
// on demand (at most every onDemandRedial), whatever its back-off.
func (c *Client) pickFrom(ctx context.Context, next pickNext, get func(ep *endpoint, ctx context.Context, slot int) (*clientConn, error)) (*clientConn, error) {
	eps, err := c.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	n := uint64(len(eps))
	start := next.start
	if !next.set {
		start = c.rr.Add(1)
	}
	now := time.Now()
	var lastErr error
	for pass := 0; pass < 2; pass++ {
		for i := uint64(0); i < n; i++ {
			ep := eps[(start+i)%n]
			up, probeDue := ep.state(now)
			if pass == 0 && !up || pass == 1 && (up || !probeDue) {
				continue
			}
			slot := -1
			if pass == 0 && i == 0 {
				slot = next.slot
			}
			cc, err := get(ep, ctx, slot)
			if err == nil {
				return cc, nil
			}
			lastErr = err
			if ctx.Err() != nil {
				return nil, ctxError(ctx.Err())
			}
		}
	}
	if c.reresolve != nil {
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

// endpoints returns the current endpoint set, resolving on first use.
func (c *Client) endpoints(ctx context.Context) ([]*endpoint, error) {
	if p := c.snap.Load(); p != nil && len(*p) > 0 {
		return *p, nil
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errClientClosed
		}
		if c.resolved && len(c.eps) > 0 {
			eps := c.eps
			c.mu.Unlock()
			return eps, nil
		}
		wait := c.resolving
		if wait == nil {
			wait = make(chan struct{})
			c.resolving = wait
			c.mu.Unlock()
			c.resolve(ctx)
			c.mu.Lock()
			c.resolving = nil
			close(wait)
			eps := c.eps
			c.mu.Unlock()
			if len(eps) == 0 {
				return nil, &wire.Error{Code: wire.Unavailable, Message: "app tier unavailable: no address resolved"}
			}
			return eps, nil
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctxError(ctx.Err())
		}
	}
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
		c.resolve(c.ctx)
		last = time.Now()
	}
}

// reresolveMin is the shortest time between two lookups asked for because
// every endpoint is down.
const reresolveMin = 500 * time.Millisecond

// resolve looks every target up again and updates the endpoint set: new
// addresses become endpoints, vanished ones are retired (closed once idle).
// A failed lookup keeps that target's previous addresses.
func (c *Client) resolve(ctx context.Context) {
	c.mu.Lock()
	old := map[string]*endpoint{}
	for _, ep := range c.eps {
		old[ep.addr] = ep
	}
	c.mu.Unlock()

	var addrs []string
	hostOf := map[string]string{}
	for _, t := range c.targets {
		var ips []string
		if t.ip {
			ips = []string{t.host}
		} else {
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			found, err := c.cfg.LookupHost(lctx, t.host)
			cancel()
			if err == nil && len(found) == 0 {
				err = errors.New("no addresses")
			}
			if err != nil {
				c.log.Warn("resolve app tier address", "host", t.host, "err", err)
				for a, ep := range old {
					if ep.host == t.host {
						ips = append(ips, a)
					}
				}
				for _, a := range ips {
					if !slices.Contains(addrs, a) {
						addrs = append(addrs, a)
						hostOf[a] = t.host
					}
				}
				continue
			}
			ips = found
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip, t.port)
			if !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
				hostOf[a] = t.host
			}
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
		eps = append(eps, newEndpoint(c, a, hostOf[a]))
	}
	changed := len(old) > 0 || len(eps) != len(c.eps)
	c.eps = eps
	c.snap.Store(&eps)
	c.resolved = true
	c.mu.Unlock()
	for _, ep := range old {
		ep.retire(false)
	}
	if changed {
		c.log.Info("app tier endpoints", "addrs", addrs)
	}
}

// endpoint is one resolved address with its connection slots.
type endpoint struct {
	c    *Client
	addr string // ip:port
	host string // the configured host name, for TLS and logs

	next atomic.Uint32
	up   atomic.Bool                  // failures == 0, read without the lock
	fast []atomic.Pointer[clientConn] // conns, read without the lock

	mu        sync.Mutex
	conns     []*clientConn   // nil slot: not connected
	dialing   []chan struct{} // non-nil while that slot dials
	dialErr   error
	failures  int
	failedAt  time.Time // when it was last marked down
	downUntil time.Time
	probing   bool
	retired   bool

	streams       []*clientConn // connections for streams, dialed as needed
	streamDialing chan struct{} // non-nil while a stream connection dials
	streamDialErr error
}

// onDemandRedial is how often a request dials a down endpoint when every
// endpoint is down: recovery then follows an app tier coming back within
// about this long, whatever the background probe's back-off.
const onDemandRedial = 100 * time.Millisecond

func newEndpoint(c *Client, addr, host string) *endpoint {
	ep := &endpoint{
		c: c, addr: addr, host: host,
		conns:   make([]*clientConn, c.cfg.ConnsPerAddr),
		fast:    make([]atomic.Pointer[clientConn], c.cfg.ConnsPerAddr),
		dialing: make([]chan struct{}, c.cfg.ConnsPerAddr),
	}
	ep.up.Store(true)
	return ep
}

// setSlotLocked changes a connection slot and its lock-free mirror.
func (ep *endpoint) setSlotLocked(i int, cc *clientConn) {
	ep.conns[i] = cc
	ep.fast[i].Store(cc)
}

// state reports whether the endpoint is up and, if not, whether a probe by
// a request is due.
func (ep *endpoint) state(now time.Time) (up, probeDue bool) {
	if ep.up.Load() {
		return true, false
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.failures == 0 {
		return true, false
	}
	return false, !now.Before(ep.downUntil) || now.Sub(ep.failedAt) >= onDemandRedial
}

// conn returns a ready connection of this endpoint, dialing slot i (-1:
// its next slot) if that one is empty. While a slot dials, other ready
// slots serve.
func (ep *endpoint) conn(ctx context.Context, i int) (*clientConn, error) {
	k := len(ep.conns)
	if i < 0 || i >= k {
		i = int(ep.next.Add(1)) % k
	}
	if cc := ep.fast[i].Load(); cc != nil {
		return cc, nil
	}
	ep.mu.Lock()
	if ep.retired {
		ep.mu.Unlock()
		return nil, &wire.Error{Code: wire.Unavailable, Message: "endpoint retired"}
	}
	if cc := ep.conns[i]; cc != nil {
		ep.mu.Unlock()
		return cc, nil
	}
	for j := 1; j < k; j++ { // another ready slot serves while slot i dials
		if cc := ep.conns[(i+j)%k]; cc != nil {
			ep.startDialLocked(i)
			ep.mu.Unlock()
			return cc, nil
		}
	}
	wait := ep.startDialLocked(i)
	ep.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctxError(ctx.Err())
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if cc := ep.conns[i]; cc != nil {
		return cc, nil
	}
	if ep.dialErr != nil {
		return nil, ep.dialErr
	}
	return nil, &wire.Error{Code: wire.Unavailable, Message: "connection lost"}
}

// startDialLocked starts dialing slot i unless it already is, and returns
// the channel closed when that dial ends. The dial is not tied to the
// caller's context, so a caller giving up does not waste it for others.
func (ep *endpoint) startDialLocked(i int) chan struct{} {
	if ep.dialing[i] != nil {
		return ep.dialing[i]
	}
	ch := make(chan struct{})
	ep.dialing[i] = ch
	c := ep.c
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		cc, err := c.dial(ep, false)
		ep.mu.Lock()
		ep.dialing[i] = nil
		if err != nil {
			ep.dialErr = err
			ep.markDownLocked(err)
		} else if ep.retired {
			ep.mu.Unlock()
			cc.close(errClientClosed)
			close(ch)
			return
		} else {
			ep.dialErr = nil
			cc.slot = i
			if old := ep.conns[i]; old != nil {
				old.retireWhenIdle() // a probe dialed an occupied slot
			}
			ep.setSlotLocked(i, cc)
			ep.markUpLocked()
		}
		ep.mu.Unlock()
		close(ch)
	}()
	return ch
}

// fillSlot dials an empty connection slot (or joins its dial) and returns
// the new connection; nil if every slot is taken or the dial failed.
func (ep *endpoint) fillSlot(ctx context.Context) *clientConn {
	ep.mu.Lock()
	i := slices.Index(ep.conns, nil)
	if i < 0 || ep.retired {
		ep.mu.Unlock()
		return nil
	}
	wait := ep.startDialLocked(i)
	ep.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return nil
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.conns[i]
}

func (ep *endpoint) markUpLocked() {
	if ep.failures > 0 {
		ep.c.log.Info("app tier endpoint up", "addr", ep.addr)
	}
	ep.failures = 0
	ep.up.Store(true)
}

// streamConn returns a stream connection of this endpoint with room for
// another stream, dialing one if every one is full (up to
// StreamConnsPerAddr). slot is unused: stream connections are not slots.
func (ep *endpoint) streamConn(ctx context.Context, _ int) (*clientConn, error) {
	for {
		ep.mu.Lock()
		if ep.retired {
			ep.mu.Unlock()
			return nil, &wire.Error{Code: wire.Unavailable, Message: "endpoint retired"}
		}
		for _, cc := range ep.streams {
			if cc.hasRoom() {
				ep.mu.Unlock()
				return cc, nil
			}
		}
		if len(ep.streams) >= ep.c.cfg.StreamConnsPerAddr {
			ep.mu.Unlock()
			return nil, &wire.Error{Code: wire.Unavailable, Message: "app tier busy: too many open streams"}
		}
		wait := ep.streamDialing
		if wait == nil {
			wait = make(chan struct{})
			ep.streamDialing = wait
			ep.c.wg.Add(1)
			go ep.dialStream(wait)
		}
		ep.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctxError(ctx.Err())
		}
		ep.mu.Lock()
		err := ep.streamDialErr
		ep.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// dialStream dials one stream connection and closes done when it is in
// ep.streams or has failed (streamDialErr).
func (ep *endpoint) dialStream(done chan struct{}) {
	c := ep.c
	defer c.wg.Done()
	cc, err := c.dial(ep, true)
	ep.mu.Lock()
	ep.streamDialing = nil
	ep.streamDialErr = err
	switch {
	case err != nil:
		ep.markDownLocked(err)
	case ep.retired:
		ep.mu.Unlock()
		cc.close(errClientClosed)
		close(done)
		return
	default:
		ep.streams = append(ep.streams, cc)
		ep.markUpLocked()
	}
	ep.mu.Unlock()
	close(done)
}

// markDownLocked records a failed dial (or an ejection): the endpoint is
// skipped while others are up, and a background probe dials it after each
// back-off (exponential with jitter) until it answers again. When every
// endpoint is down, requests dial it on demand too (see state).
func (ep *endpoint) markDownLocked(err error) {
	ep.failures++
	ep.up.Store(false)
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
	c := ep.c
	c.wg.Add(1)
	go ep.probe()
}

// probe redials a down endpoint after each back-off until it is up, retired,
// or the client is closed.
func (ep *endpoint) probe() {
	c := ep.c
	defer c.wg.Done()
	for {
		ep.mu.Lock()
		if ep.failures == 0 || ep.retired {
			ep.probing = false
			ep.mu.Unlock()
			return
		}
		wait := time.Until(ep.downUntil)
		ep.mu.Unlock()
		if sleepCtx(c.ctx, max(wait, time.Millisecond)) != nil {
			ep.mu.Lock()
			ep.probing = false
			ep.mu.Unlock()
			return
		}
		ep.mu.Lock()
		var ch chan struct{}
		if ep.failures > 0 && !ep.retired {
			// An empty slot if there is one: a connection that still
			// works keeps serving its calls.
			ch = ep.startDialLocked(max(slices.Index(ep.conns, nil), 0))
		}
		ep.mu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			case <-c.ctx.Done():
			}
		}
	}
}

// detach removes cc from its slot (or the stream connections) so the next
// request dials afresh.
func (ep *endpoint) detach(cc *clientConn) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if cc.forStreams {
		ep.streams = slices.DeleteFunc(ep.streams, func(s *clientConn) bool { return s == cc })
		return
	}
	if cc.slot >= 0 && cc.slot < len(ep.conns) && ep.conns[cc.slot] == cc {
		ep.setSlotLocked(cc.slot, nil)
	}
}

// eject takes an endpoint whose server stopped answering out of rotation
// as if a dial had failed: calls go to other endpoints, and the
// background probe dials it until it answers again. Its stream
// connections go to the same server, so each is probed at once rather
// than at the keepalive's pace; a dead one is closed, which ends its
// streams with UNAVAILABLE so their subscribers can open them elsewhere.
func (ep *endpoint) eject(err error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.retired {
		return
	}
	ep.markDownLocked(err)
	c := ep.c
	for _, cc := range ep.streams {
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
// requests and close once idle (or at once when now is set).
func (ep *endpoint) retire(now bool) {
	ep.mu.Lock()
	ep.retired = true
	conns := append(slices.Clone(ep.conns), ep.streams...)
	for i := range ep.conns {
		ep.setSlotLocked(i, nil)
	}
	ep.streams = nil
	ep.mu.Unlock()
	for _, cc := range conns {
		if cc == nil {
			continue
		}
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
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	var trace func(sent bool, f wire.Frame)
	if t := c.cfg.Trace; t != nil {
		conn := nc.LocalAddr().String()
		trace = func(sent bool, f wire.Frame) { t(conn, sent, f) }
	}
	hello, ready, fr, err := clientHandshake(nc, c.cfg.Name, c.cfg.Secret, trace)
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
	cc := newClientConn(c, ep, nc, fr, hello, ready)
	cc.trace = trace
	cc.forStreams = forStreams
	cc.mu.Lock()
	cc.releaseLocked() // a reader starts once the connection has been idle a moment
	cc.mu.Unlock()
	return cc, nil
}

// clientHandshake reads HELLO, sends AUTH and waits for READY. The caller
// sets the deadline.
func clientHandshake(nc net.Conn, name, secret string, trace func(bool, wire.Frame)) (wire.Hello, wire.Ready, *wire.Framer, error) {
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
		return wire.Hello{}, wire.Ready{}, nil, err
	}
	if f.Type != wire.FrameHello {
		return wire.Hello{}, wire.Ready{}, nil, &wire.Error{Code: wire.ProtocolError, Message: "expected HELLO, got " + f.Type.String()}
	}
	hello, err := wire.ParseHello(f.Payload)
	if err != nil {
		return hello, wire.Ready{}, nil, err
	}
	auth, _ := json.Marshal(wire.Auth{Version: wire.Version, Client: name, Secret: secret})
	af := wire.Frame{Type: wire.FrameAuth, Payload: auth}
	if trace != nil {
		trace(true, af)
	}
	if err := fr.WriteFrame(af); err != nil {
		return hello, wire.Ready{}, nil, fmt.Errorf("handshake: %w", err)
	}
	f, err = read()
	if err != nil {
		return hello, wire.Ready{}, nil, err
	}
	if f.Type != wire.FrameReady {
		return hello, wire.Ready{}, nil, &wire.Error{Code: wire.ProtocolError, Message: "expected READY, got " + f.Type.String()}
	}
	var ready wire.Ready
	if err := wire.UnmarshalHandshake(f.Payload, &ready); err != nil {
		return hello, wire.Ready{}, nil, &wire.Error{Code: wire.ProtocolError, Message: "undecodable READY"}
	}
	fr.SetMaxPayload(min(hello.MaxPayload, math.MaxInt32))
	return hello, ready, fr, nil
}
