package proto

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"bankwire/proto/wire"
)

// DefaultAddr is the app tier's default listen address: the port of the
// original socket walkthrough.
const DefaultAddr = ":12121"

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("proto: server closed")

// Request is one decoded REQUEST as a handler sees it.
type Request struct {
	Op      wire.Op
	ID      uint32
	TraceID string
	Payload []byte // the body (decode it with Decode); the handler owns it
}

// Decode decodes the body into v, which must be the operation's request
// type (a wire.Unmarshaler) and must account for every byte of the body.
// Any failure is an INVALID_ARGUMENT "malformed request body" that can go
// to the caller as is.
func (r *Request) Decode(v any) error {
	if err := wire.Unmarshal(r.Payload, v); err != nil {
		if errors.Is(err, wire.ErrNoEncoding) {
			panic("proto: Request.Decode: " + err.Error()) // a handler bug: the server turns it into INTERNAL
		}
		return &wire.Error{Code: wire.InvalidArgument, Message: "malformed request body"}
	}
	return nil
}

// HandlerFunc serves one operation. The returned value (a wire.Marshaler,
// or nil for Empty) is encoded into the RESPONSE; a returned *Error goes
// to the caller as is; any other error is logged and the caller gets
// INTERNAL "internal error".
type HandlerFunc func(ctx context.Context, req *Request) (any, error)

// StreamHandlerFunc serves a streaming operation (a subscription). It calls
// s.Accept once to open the stream, then s.Send for every event, and returns
// when ctx is done (client CANCEL, connection closed, server shutdown).
//
// An error returned before Accept becomes an ERROR frame like a unary
// handler's. After Accept the stream is always ended with an ERROR frame for
// its id: code OK when the handler returned nil, UNAVAILABLE when the server
// is shutting down, CANCELED after a client CANCEL, otherwise the handler's
// error mapped as for unary handlers.
type StreamHandlerFunc func(ctx context.Context, req *Request, s *Stream) error

// Mux routes requests to handlers by operation.
type Mux struct {
	unary  map[wire.Op]HandlerFunc
	stream map[wire.Op]StreamHandlerFunc
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{unary: map[wire.Op]HandlerFunc{}, stream: map[wire.Op]StreamHandlerFunc{}}
}

// Handle registers h for op. It panics on a nil handler or a second
// registration of op, which are programming errors.
func (m *Mux) Handle(op wire.Op, h HandlerFunc) {
	m.check(op, h == nil)
	m.unary[op] = h
}

// HandleStream registers a streaming handler for op.
func (m *Mux) HandleStream(op wire.Op, h StreamHandlerFunc) {
	m.check(op, h == nil)
	m.stream[op] = h
}

func (m *Mux) check(op wire.Op, isNil bool) {
	if isNil {
		panic("proto: nil handler for " + op.String())
	}
	_, u := m.unary[op]
	_, s := m.stream[op]
	if u || s {
		panic("proto: duplicate handler for " + op.String())
	}
}

// ServerConfig configures a Server. Zero values mean the defaults.
type ServerConfig struct {
	Name   string      // server name and version in HELLO, e.g. "bankwire-apptier/1.0"
	Secret string      // shared secret clients must present (APPTIER_SECRET)
	TLS    *tls.Config // when set, connections are TLS

	MaxConns int // simultaneous connections; default 256

	// Connections that have not completed the handshake have a budget of
	// their own, so that strangers cannot take the room authenticated
	// clients need (see admitLocked): at most MaxPreAuthConns in all
	// (default a quarter of MaxConns, at least 8 or MaxConns if that is
	// smaller) and, once that budget is full, MaxPreAuthPerIP from one
	// address (default 16).
	MaxPreAuthConns int
	MaxPreAuthPerIP int

	MaxInFlight int // requests in flight per connection; default 128
	MaxPayload  int // bytes per frame payload; default 1 MiB

	HandshakeTimeout time.Duration // to receive AUTH after accept; default 5s
	IdleTimeout      time.Duration // close a connection silent this long; default 60s
	ReadTimeout      time.Duration // to receive the rest of a frame once it started; default 30s
	WriteTimeout     time.Duration // for one write to the socket; default 30s

	Logger *slog.Logger // default slog.Default()

	// Quiet, when set, picks authenticated clients (by the name they sent
	// in AUTH) whose connections are logged at DEBUG instead of INFO: a
	// container healthcheck connecting every few seconds would otherwise
	// fill the log. Clients that fail the handshake are always logged.
	Quiet func(client string) bool

	// Observe, when set, is called once per answered request with its
	// operation, result code and duration (metrics): how long its handler
	// took, counted from the request's arrival when it ran inline on the
	// reading goroutine, and not counting the write of its answer.
	Observe func(op wire.Op, code wire.Code, d time.Duration)
}

func (c *ServerConfig) setDefaults() {
	if c.Name == "" {
		c.Name = "bankwire-apptier"
	}
	if c.MaxConns <= 0 {
		c.MaxConns = wire.DefaultMaxConns
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = wire.DefaultMaxInFlight
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = wire.DefaultMaxPayload
	}
	if c.MaxPayload > 1<<30 {
		c.MaxPayload = 1 << 30
	}
	if c.MaxPreAuthConns <= 0 {
		c.MaxPreAuthConns = max(c.MaxConns/4, min(c.MaxConns, 8))
	}
	if c.MaxPreAuthPerIP <= 0 {
		c.MaxPreAuthPerIP = 16
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server serves the bankwire protocol. Create it with NewServer.
type Server struct {
	cfg       ServerConfig
	log       *slog.Logger
	secretSum [sha256.Size]byte
	hello     []byte // encoded HELLO payload, the same for every connection

	ctx    context.Context // parent of every handler context; canceled by Close
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	addr      net.Addr
	shutdown  bool
	connWG    sync.WaitGroup

	nextConn atomic.Uint64
	refusing atomic.Int32 // refusal writes in progress

	// Admission (see admit), guarded by mu: connections in the handshake,
	// oldest first, and per remote IP; authenticated connections.
	preAuth      []*serverConn
	preAuthPerIP map[string]int
	authed       int

	refusals *logLimiter // refused and unauthenticated connections are logged at a rate

	// work hands requests to idle handler goroutines (see dispatch).
	work chan job

	routes       map[wire.Op]*route // filled once in NewServer; only route.cost changes
	inlineBudget time.Duration      // normally the inlineBudget constant; tests raise it, as -race slows every handler
	handOffs     atomic.Uint64      // watchdog hand-offs, for tests
	idleWorkers  atomic.Int64       // handler goroutines waiting for work (see maxIdleWorkers)
}

// route is one operation's handler and, for a unary one, its recent
// handler duration (see inlineBudget) in nanoseconds, -1 until first
// measured. A request looks its operation up once.
type route struct {
	unary  HandlerFunc
	stream StreamHandlerFunc
	cost   atomic.Int64
}

// job is one request for a handler goroutine.
type job struct {
	c      *serverConn
	ctx    context.Context
	cancel context.CancelCauseFunc // ends ctx once the request is answered
	req    *Request
	rt     *route
}

func (j job) run() {
	if j.rt.stream != nil {
		j.c.runStream(j.ctx, j.cancel, j.req, j.rt.stream)
	} else {
		j.c.runUnary(j)
	}
}

// workerIdle is how long a handler goroutine waits for more work before it
// exits.
const workerIdle = 10 * time.Second

// maxIdleWorkers bounds the handler goroutines waiting for work. Without
// it, a burst that started many goroutines would leave them all parked for
// as long as any load continues: a channel hands its values to waiting
// receivers in the order they began to wait, so steady load visits every
// parked goroutine in turn, and at N parked goroutines and more than N
// requests per workerIdle, none of them ever waits long enough to exit. With
// the bound, a goroutine that finishes its request while maxIdleWorkers
// others are already waiting exits at once; the pool shrinks to the bound as
// soon as the burst is over, and to zero within workerIdle of the load
// stopping.
const maxIdleWorkers = 64

// dispatch runs j on an idle handler goroutine if one is waiting, else on a
// new one. Reusing goroutines keeps their grown stacks: a fresh goroutine
// per request spent a tenth of its CPU growing its stack while decoding
// JSON bodies (measured before bodies became binary). The number of goroutines is still bounded by the requests in
// flight (MaxConns × MaxInFlight); idle ones exit after workerIdle or when
// the server closes.
func (s *Server) dispatch(j job) {
	select {
	case s.work <- j:
	default:
		go s.worker(j)
	}
}

// Inline execution. A request whose handler is known to be quick runs on
// the connection's reading goroutine itself: no hand-off to another
// goroutine, which on an idle machine means no waking of another core, and
// responses to a burst of requests that arrived together leave in one
// write. Two rules keep a slow handler from stalling the connection:
//
//   - only operations whose recent average (an exponentially weighted
//     moving average of the handler's duration, measured on every call)
//     is under inlineBudget run inline; an operation starts out measured
//     on a handler goroutine;
//   - a watchdog fires after inlineWatchdog: if the handler is still
//     running, a new goroutine takes over reading (CANCEL, PING and
//     further requests are served again) and the old one finishes its
//     request like a handler goroutine, then exits.
const (
	inlineBudget   = 50 * time.Microsecond
	inlineWatchdog = time.Millisecond
)

// inline reports whether rt's handler should run on the reading goroutine.
func (s *Server) inline(rt *route) bool {
	if rt.unary == nil {
		return false
	}
	d := rt.cost.Load()
	return d >= 0 && d < int64(s.inlineBudget)
}

// observeCost folds one handler duration into rt's moving average (weight
// 1/8). Concurrent updates may lose one another; for a heuristic that is
// fine.
func observeCost(rt *route, d time.Duration) {
	c := &rt.cost
	old := c.Load()
	if old < 0 {
		c.Store(int64(d))
		return
	}
	c.Store(old + (int64(d)-old)/8)
}

func (s *Server) worker(j job) {
	j.run()
	if s.idleWorkers.Add(1) > maxIdleWorkers {
		s.idleWorkers.Add(-1)
		return
	}
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case j = <-s.work:
			s.idleWorkers.Add(-1)
			j.run()
			if s.idleWorkers.Add(1) > maxIdleWorkers {
				s.idleWorkers.Add(-1)
				return
			}
			t.Reset(workerIdle)
		case <-t.C:
			s.idleWorkers.Add(-1)
			return
		case <-s.ctx.Done():
			s.idleWorkers.Add(-1)
			return
		}
	}
}

// NewServer returns a server for the handlers in h, which it copies:
// handlers registered on h afterwards are not served.
func NewServer(cfg ServerConfig, h *Mux) *Server {
	cfg.setDefaults()
	if h == nil {
		h = NewMux()
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger,
		secretSum: sha256.Sum256([]byte(cfg.Secret)),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*serverConn]struct{}{},

		preAuthPerIP: map[string]int{},
		refusals:     &logLimiter{every: refusalLogEvery, burst: refusalLogBurst},
		work:         make(chan job),
		routes:       make(map[wire.Op]*route, len(h.unary)+len(h.stream)),

		inlineBudget: inlineBudget,
	}
	for op, u := range h.unary {
		rt := &route{unary: u}
		rt.cost.Store(-1)
		s.routes[op] = rt
	}
	for op, st := range h.stream {
		s.routes[op] = &route{stream: st}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hello, _ = json.Marshal(wire.Hello{
		Versions: []int{int(wire.Version)}, Server: cfg.Name,
		MaxPayload: cfg.MaxPayload, MaxInFlight: cfg.MaxInFlight,
		IdleTimeoutMs:      cfg.IdleTimeout.Milliseconds(),
		HandshakeTimeoutMs: cfg.HandshakeTimeout.Milliseconds(),
	})
	return s
}

// Addr returns the address of the listener most recently passed to Serve,
// or nil before that.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ListenAndServe listens on addr (DefaultAddr when empty) and serves.
func (s *Server) ListenAndServe(addr string) error {
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close, which make it
// return ErrServerClosed. It closes ln before returning.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.addr = ln.Addr()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, instead of spinning or dying.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		c := s.newConn(nc)
		if reason := s.admitLocked(c); reason != "" {
			s.mu.Unlock()
			s.refuse(nc, reason)
			continue
		}
		s.conns[c] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// maxRefusing bounds the goroutines writing TOO_MANY_CONNECTIONS, so a
// connection flood cannot turn refusals into unbounded work.
const maxRefusing = 32

// refuse tells a connection over the limit why it is being closed, without
// blocking the accept loop. Each refusal is bounded by a one-second deadline.
// Refusals are logged at a rate (logLimiter), not one line each.
func (s *Server) refuse(nc net.Conn, reason string) {
	if ok, suppressed := s.refusals.allow(); ok {
		s.log.Warn("connection refused", "remote", nc.RemoteAddr().String(), "reason", reason, "max_conns", s.cfg.MaxConns,
			"max_preauth_conns", s.cfg.MaxPreAuthConns, "max_preauth_per_ip", s.cfg.MaxPreAuthPerIP, "suppressed", suppressed)
	}
	if s.refusing.Add(1) > maxRefusing {
		s.refusing.Add(-1)
		nc.Close()
		return
	}
	go func() {
		defer s.refusing.Add(-1)
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(time.Second))
		msg := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameFatal, Payload: wire.AppendFatal(nil, wire.TooManyConnections, "server has too many connections, try again later")})
		if _, err := nc.Write(msg); err == nil {
			if cw, ok := nc.(closeWriter); ok {
				_ = cw.CloseWrite()
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
		}
	}()
}

// Shutdown drains the server: it stops accepting, sends DRAIN on every
// connection naming the last request it will answer, lets those requests
// finish, ends streams with UNAVAILABLE, and closes each connection once it
// is idle. If ctx ends first, it closes everything at once and returns
// ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, canceling every
// handler context. It waits for connection goroutines to finish, which they
// do promptly unless a handler ignores its context.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutdown = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range conns {
		c.nc.Close()
	}
	s.connWG.Wait()
	return nil
}

// serverConn is one accepted connection: its goroutine reads frames and
// dispatches them; handler goroutines write their results through w.
type serverConn struct {
	srv    *Server
	nc     net.Conn
	id     string
	remote string
	fr     *wire.Framer
	w      *frameWriter

	ctx    context.Context // canceled when the connection ends
	cancel context.CancelFunc
	reqCtx context.Context // ctx without its cancellation: the parent of request contexts (see cancelInflight)

	closing    atomic.Bool // the last frame was sent; only discard reads now
	evicted    atomic.Bool // made to leave the handshake for a newcomer (see admitLocked)
	ip         string      // the remote address without its port
	preAuth    bool        // counted in the server's handshake budget; guarded by srv.mu
	authed     bool        // counted as authenticated; guarded by srv.mu
	unlogged   bool        // an unauthenticated connection the log limiter skipped
	requests   atomic.Uint64
	handlersWG sync.WaitGroup
	start      time.Time

	// Read loop state, owned by whichever goroutine currently reads.
	lastRecv time.Time // when the last frame arrived
	dl       time.Time // the read deadline currently armed
	held     bool      // an inline answer was left in the write buffer (flushHold)

	// Reading hand-off for inline handlers (see inlineBudget).
	watchdog    *time.Timer
	rmu         sync.Mutex
	wdArmed     bool      // the watchdog is armed (it is not stopped after each run)
	inlineGen   uint64    // numbers inline runs
	inlineRun   bool      // the reader is running handler inlineGen
	inlineStart time.Time // when run inlineGen started
	handedOver  uint64    // the latest inline run whose goroutine lost the reading role

	// Round-trip time, measured with the server's own PINGs (see
	// networkBudget): the estimate in nanoseconds (the smallest of the
	// last rttSamples samples; 0: none yet), when the last sample came, and
	// when the last PING went out (monoNanos; 0: none outstanding).
	rtt      atomic.Int64
	rttAt    atomic.Int64 // monoNanos of the last sample
	pingSent atomic.Int64
	rttMu    sync.Mutex        // protects samples and sampled (taken once a second at most)
	samples  [rttSamples]int64 // the last samples, oldest overwritten first
	sampled  int               // samples taken so far

	// Request deadlines share one timer (see deadlinesFired); guarded by mu.
	dlTimer *time.Timer
	dlArmed time.Time // when dlTimer fires; zero when stopped

	mu        sync.Mutex
	ready     bool
	client    string                  // the name the client sent in AUTH, once authenticated
	quiet     bool                    // ServerConfig.Quiet picked it
	inflight  map[uint32]*inflightReq // counted against MaxInFlight until the terminal frame is sent
	active    int                     // handlers not finished writing; drain completes at 0
	lastID    uint32
	draining  bool
	drainLast uint32
}

type inflightReq struct {
	cancel   context.CancelCauseFunc
	stream   bool
	deadline time.Time // zero: none
}

// serverReq is what a request needs, allocated together.
type serverReq struct {
	req  Request
	fl   inflightReq
	dctx deadlineCtx
}

// deadlineCtx is a request's context when the caller sent a deadline. The
// connection's single deadline timer cancels it with cause
// context.DeadlineExceeded; until then it reports the deadline like a
// context.WithDeadline would, without a runtime timer per request (arming
// one for every request costs more than the request on a fast path).
type deadlineCtx struct {
	context.Context // from context.WithCancelCause
	deadline        time.Time
}

func (d *deadlineCtx) Deadline() (time.Time, bool) { return d.deadline, true }

func (d *deadlineCtx) Err() error {
	err := d.Context.Err()
	if err != nil && expired(d.Context) {
		return context.DeadlineExceeded
	}
	return err
}

// expired reports whether ctx (a request context or one derived from it)
// ended because the request's deadline passed.
func expired(ctx context.Context) bool {
	return ctx.Err() != nil && context.Cause(ctx) == context.DeadlineExceeded
}

// Cancellation causes, so a stream knows why its context ended.
var (
	errClientCancel = errors.New("canceled by client")
	errDraining     = errors.New("server shutting down")
)

func (s *Server) newConn(nc net.Conn) *serverConn {
	c := &serverConn{
		srv:      s,
		nc:       nc,
		id:       "c" + strconv.FormatUint(s.nextConn.Add(1), 10),
		remote:   nc.RemoteAddr().String(),
		inflight: map[uint32]*inflightReq{},
	}
	c.ip = c.remote
	if host, _, err := net.SplitHostPort(c.remote); err == nil {
		c.ip = host
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.reqCtx = context.WithoutCancel(c.ctx)
	context.AfterFunc(c.ctx, c.cancelInflight)
	c.watchdog = time.AfterFunc(time.Hour, c.watchdogFired)
	c.watchdog.Stop()
	c.dlTimer = time.AfterFunc(time.Hour, c.deadlinesFired)
	c.dlTimer.Stop()
	c.fr = wire.NewFramer(nc, nil)
	c.w = newFrameWriter(nc, s.cfg.WriteTimeout, func(err error) {
		s.log.Warn("write failed, closing connection", "conn", c.id, "remote", c.remote, "err", err)
		nc.Close()
	})
	return c
}

func (c *serverConn) serve() {
	c.start = time.Now()
	reason, ok := c.handshake()
	// Logged once the client is known (a connection that fails the
	// handshake is logged too, just before it closes, but at a rate: a
	// flood of strangers must not flood the log).
	if !ok {
		c.srv.leavePreAuth(c, false)
		allowed, suppressed := c.srv.refusals.allow()
		c.unlogged = !allowed
		if allowed {
			c.srv.log.Log(context.Background(), c.logLevel(), "connection opened", "conn", c.id, "remote", c.remote, "client", c.clientName(),
				"suppressed", suppressed)
		}
		c.end(reason)
		return
	}
	c.srv.log.Log(context.Background(), c.logLevel(), "connection opened", "conn", c.id, "remote", c.remote, "client", c.clientName())
	c.lastRecv = time.Now()
	c.setReadDeadline(c.lastRecv.Add(c.srv.cfg.IdleTimeout))
	c.readLoop()
}

// readLoop reads frames on the calling goroutine until the connection ends,
// then closes it; or, when an inline handler outlived the watchdog, until
// the request it was running is answered, leaving reading (and closing) to
// the goroutine that took over.
func (c *serverConn) readLoop() {
	reason, handedOver := c.read()
	if handedOver {
		c.srv.connWG.Done()
		return
	}
	c.end(reason)
}

// end closes the connection once its reading stopped, waits for its
// handlers and logs why it ended.
func (c *serverConn) end(reason string) {
	s := c.srv
	c.w.flush()
	c.watchdog.Stop()
	c.dlTimer.Stop()
	c.cancel()
	c.nc.Close()
	c.handlersWG.Wait()
	s.mu.Lock()
	delete(s.conns, c)
	if c.authed {
		c.authed = false
		s.authed--
	}
	s.mu.Unlock()
	if c.unlogged {
		s.connWG.Done()
		return
	}
	s.log.Log(context.Background(), c.logLevel(), "connection closed", "conn", c.id, "remote", c.remote, "client", c.clientName(),
		"requests", c.requests.Load(), "duration", time.Since(c.start).Round(time.Millisecond), "reason", reason)
	s.connWG.Done()
}

// watchdogFired hands reading to a new goroutine if an inline handler is
// still running.
func (c *serverConn) watchdogFired() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.wdArmed = false
	if !c.inlineRun {
		return
	}
	if age := time.Since(c.inlineStart); age < inlineWatchdog {
		// Armed by an earlier run: give this one its full time.
		c.wdArmed = true
		c.watchdog.Reset(inlineWatchdog - age)
		return
	}
	c.inlineRun = false
	c.handedOver = c.inlineGen
	c.srv.handOffs.Add(1)
	c.srv.connWG.Add(1) // the old goroutine still holds its count, so this cannot race Wait at zero
	go c.readLoop()
}

func (c *serverConn) setReadDeadline(t time.Time) {
	c.dl = t
	_ = c.nc.SetReadDeadline(t)
}

func (c *serverConn) clientName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}

// logLevel is the level of the connection's opened and closed lines: DEBUG
// for an authenticated client that ServerConfig.Quiet picks.
func (c *serverConn) logLevel() slog.Level {
	c.mu.Lock()
	quiet := c.quiet
	c.mu.Unlock()
	if quiet {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// read is the read loop. It returns why the connection ended, or
// handedOver when this goroutine lost the reading role to the watchdog.
func (c *serverConn) read() (reason string, handedOver bool) {
	cfg := &c.srv.cfg
	br := c.fr.Reader()
	// Deadlines are set lazily: one that fires early only causes a
	// recheck, so a steady stream of small frames, each arriving whole,
	// costs no deadline updates at all.
	for {
		if c.closing.Load() {
			return c.linger(), false
		}
		if c.held && !frameBuffered(br) {
			// About to wait for the peer: send what inline handlers left
			// in the buffer first.
			c.held = false
			c.w.flush()
		}
		if br.Buffered() == 0 {
			// Wait for the next frame's first byte under the idle deadline
			// (re-armed only if the armed one is later than wanted); Peek
			// consumes nothing, so a timeout loses no data.
			if want := c.lastRecv.Add(cfg.IdleTimeout); c.dl.After(want) {
				c.setReadDeadline(want)
			}
			if _, err := br.Peek(1); err != nil {
				if c.closing.Load() {
					return c.linger(), false
				}
				if isTimeout(err) {
					if time.Since(c.lastRecv) < cfg.IdleTimeout {
						c.setReadDeadline(c.lastRecv.Add(cfg.IdleTimeout))
						continue
					}
					return c.fatal(wire.IdleTimeout, fmt.Sprintf("no frame received for %s", cfg.IdleTimeout)), false
				}
				return readEndReason(err), false
			}
		}
		if !frameBuffered(br) {
			c.setReadDeadline(time.Now().Add(cfg.ReadTimeout))
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			if e, ok := wire.AsFatal(err); ok {
				return c.fatal(e.Code, e.Message), false
			}
			if isTimeout(err) && !c.closing.Load() {
				return c.fatal(wire.ProtocolError, fmt.Sprintf("frame not completed within %s", cfg.ReadTimeout)), false
			}
			if c.closing.Load() {
				return c.linger(), false
			}
			return readEndReason(err), false
		}
		c.lastRecv = monoNow()
		if f.Type == wire.FrameRequest {
			reason, ok, lost := c.handleRequest(f)
			if lost {
				return "", true
			}
			if !ok {
				return reason, false
			}
			continue
		}
		if reason, ok := c.handleFrame(f); !ok {
			return reason, false
		}
	}
}

// frameBuffered reports whether br already holds a whole frame, so reading
// it cannot block.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < wire.HeaderLen {
		return false
	}
	h, err := br.Peek(wire.HeaderLen)
	if err != nil {
		return false
	}
	return uint64(n) >= wire.HeaderLen+uint64(binary.BigEndian.Uint32(h[8:12]))
}

func readEndReason(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "peer closed"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "peer closed mid-frame"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	return "read error: " + err.Error()
}

// handshake greets the client and checks its AUTH.
func (c *serverConn) handshake() (string, bool) {
	cfg := &c.srv.cfg
	deadline := time.Now().Add(cfg.HandshakeTimeout)
	_ = c.nc.SetReadDeadline(deadline)
	if c.evicted.Load() { // evicted before this goroutine set its deadline
		return c.fatal(wire.TooManyConnections, evictedReason), false
	}
	if err := c.w.write(wire.FrameHello, 0, 0, c.srv.hello); err != nil {
		return "write HELLO: " + err.Error(), false
	}
	c.fr.SetMaxPayload(wire.HandshakeMaxPayload)
	f, err := c.fr.ReadFrame()
	if err != nil {
		if e, ok := wire.AsFatal(err); ok {
			return c.fatal(e.Code, e.Message), false
		}
		if isTimeout(err) {
			c.mu.Lock()
			draining := c.draining
			c.mu.Unlock()
			if c.evicted.Load() {
				return c.fatal(wire.TooManyConnections, evictedReason), false
			}
			if draining {
				return c.fatal(wire.ShuttingDown, "server shutting down"), false
			}
			return c.fatal(wire.HandshakeTimeout, fmt.Sprintf("no AUTH within %s", cfg.HandshakeTimeout)), false
		}
		return "handshake: " + readEndReason(err), false
	}
	if f.Type != wire.FrameAuth {
		return c.fatal(wire.ProtocolError, fmt.Sprintf("expected AUTH, got %s", f.Type)), false
	}
	a, err := wire.ParseAuth(f.Payload)
	if err != nil {
		e := err.(*wire.Error)
		return c.fatal(e.Code, e.Message), false
	}
	// Hash both sides so the comparison is constant-time in the secret's
	// length too.
	sum := sha256.Sum256([]byte(a.Secret))
	if subtle.ConstantTimeCompare(sum[:], c.srv.secretSum[:]) != 1 {
		return c.fatal(wire.BadSecret, "bad secret"), false
	}
	if !c.srv.leavePreAuth(c, true) {
		return c.fatal(wire.TooManyConnections, evictedReason), false
	}
	ready, _ := json.Marshal(wire.Ready{Version: wire.Version, ConnID: c.id})
	c.mu.Lock()
	c.ready = true
	c.client = a.Client
	c.quiet = c.srv.cfg.Quiet != nil && c.srv.cfg.Quiet(a.Client)
	draining := c.draining
	c.mu.Unlock()
	if err := c.w.write(wire.FrameReady, 0, 0, ready); err != nil {
		return "write READY: " + err.Error(), false
	}
	c.fr.SetMaxPayload(cfg.MaxPayload)
	if draining { // Shutdown began during the handshake
		c.sendDrain()
	}
	return "", true
}

// fatal sends a FATAL frame and closes gracefully. It returns the reason for
// the log.
func (c *serverConn) fatal(code wire.Code, reason string) string {
	if c.closing.CompareAndSwap(false, true) {
		c.w.writeLast(wire.FrameFatal, wire.AppendFatal(nil, code, reason))
		c.halfClose()
	}
	if !c.evicted.Load() { // an evicted connection makes room at once
		c.linger()
	}
	return code.String() + ": " + reason
}

// halfClose sends FIN after the last frame and bounds the linger.
func (c *serverConn) halfClose() {
	c.w.waitIdle()
	if cw, ok := c.nc.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
}

// linger reads and discards until the peer closes or lingerTimeout passes,
// so our close does not reset frames the peer has yet to read.
func (c *serverConn) linger() string {
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.fr.Reader(), 1<<20))
	return "closed after final frame"
}

// handleFrame processes one frame after the handshake.
func (c *serverConn) handleFrame(f wire.Frame) (string, bool) {
	switch f.Type {
	case wire.FrameCancel:
		c.mu.Lock()
		r := c.inflight[f.ID]
		c.mu.Unlock()
		if r != nil {
			r.cancel(errClientCancel)
		}
		return "", true
	case wire.FramePing:
		if len(f.Payload) > wire.MaxPingPayload {
			return c.fatal(wire.ProtocolError, "PING payload over 64 bytes"), false
		}
		if err := c.w.write(wire.FramePong, 0, f.ID, f.Payload); err != nil {
			return "write: " + err.Error(), false
		}
		return "", true
	case wire.FramePong:
		c.pongReceived(f.Payload)
		return "", true
	case wire.FrameFatal:
		e, err := wire.ParseFatal(f.Payload)
		if err != nil {
			return "client sent undecodable FATAL", false
		}
		return "client FATAL " + e.Code.String() + ": " + e.Message, false
	}
	return c.fatal(wire.ProtocolError, fmt.Sprintf("unexpected %s frame from client", f.Type)), false
}

// handleRequest registers a REQUEST and runs it, inline or on a handler
// goroutine. lost reports that it ran inline and the watchdog handed
// reading to another goroutine meanwhile.
func (c *serverConn) handleRequest(f wire.Frame) (reason string, ok, lost bool) {
	j, reason, ok := c.admitRequest(f)
	if !ok || j.req == nil {
		return reason, ok, false
	}
	if c.srv.inline(j.rt) {
		return "", true, !c.runInline(j)
	}
	c.srv.dispatch(j)
	return "", true, false
}

// admitRequest parses a REQUEST and registers it in flight, returning the
// job to run; a request refused at once (draining, over the in-flight
// limit, unknown operation) is answered here and j.req is nil.
func (c *serverConn) admitRequest(f wire.Frame) (j job, reason string, ok bool) {
	s := c.srv
	h, body, err := wire.ParseRequest(f.Payload)
	if err != nil {
		return j, c.fatal(wire.ProtocolError, err.(*wire.Error).Message), false
	}
	var rtt time.Duration
	if h.DeadlineMs > 0 {
		rtt = c.networkBudget() // before mu: it may write a PING
	}
	c.requests.Add(1)
	c.mu.Lock()
	if f.ID <= c.lastID {
		_, dup := c.inflight[f.ID]
		last := c.lastID
		c.mu.Unlock()
		if dup {
			return j, c.fatal(wire.ProtocolError, fmt.Sprintf("duplicate request id %d in flight", f.ID)), false
		}
		return j, c.fatal(wire.ProtocolError, fmt.Sprintf("request id %d not greater than previous id %d", f.ID, last)), false
	}
	c.lastID = f.ID
	var reject *wire.Error
	switch {
	case c.draining:
		reject = &wire.Error{Code: wire.Unavailable, Message: "server is shutting down"}
	case len(c.inflight) >= s.cfg.MaxInFlight:
		reject = &wire.Error{Code: wire.ResourceExhausted, Message: fmt.Sprintf("too many requests in flight on this connection (max %d)", s.cfg.MaxInFlight)}
	}
	rt := s.routes[h.Op]
	if reject == nil && rt == nil {
		reject = &wire.Error{Code: wire.Unimplemented, Message: "unknown operation " + h.Op.String()}
	}
	if reject != nil {
		c.mu.Unlock()
		if s.cfg.Observe != nil {
			s.cfg.Observe(h.Op, reject.Code, 0)
		}
		if err := c.w.write(wire.FrameError, 0, f.ID, wire.AppendError(nil, reject)); err != nil {
			return j, "write: " + err.Error(), false
		}
		return j, "", true
	}
	ctx := c.reqCtx
	if h.TraceID != "" {
		ctx = context.WithValue(ctx, traceKey{}, h.TraceID)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	sr := &serverReq{req: Request{Op: h.Op, ID: f.ID, TraceID: h.TraceID, Payload: body}}
	r := &sr.fl
	isStream := rt.stream != nil
	r.cancel, r.stream = cancel, isStream
	if h.DeadlineMs > 0 {
		// Relative to when the frame arrived (the reader's clock reading),
		// less the connection's round-trip time: the time the REQUEST
		// spent on its way here and its answer will spend on the way back
		// is no time to work in (see networkBudget).
		budget := time.Duration(h.DeadlineMs)*time.Millisecond - rtt
		if budget <= 0 {
			c.mu.Unlock()
			if s.cfg.Observe != nil {
				s.cfg.Observe(h.Op, wire.DeadlineExceeded, 0)
			}
			if err := c.w.write(wire.FrameError, 0, f.ID, wire.AppendError(nil, &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"})); err != nil {
				return j, "write: " + err.Error(), false
			}
			return j, "", true
		}
		r.deadline = c.lastRecv.Add(budget)
		sr.dctx = deadlineCtx{Context: ctx, deadline: r.deadline}
		ctx = &sr.dctx
		if c.dlArmed.IsZero() || r.deadline.Before(c.dlArmed) {
			c.armDeadlinesLocked(r.deadline)
		}
	}
	c.inflight[f.ID] = r
	c.active++
	c.handlersWG.Add(1)
	ended := c.ctx.Err() != nil // cancelInflight ran before r was in flight
	c.mu.Unlock()
	if ended {
		cancel(context.Cause(c.ctx))
	}

	return job{c: c, ctx: ctx, cancel: cancel, req: &sr.req, rt: rt}, "", true
}

// cancelInflight ends the context of every request in flight once the
// connection's context ends (the connection closed, or the server stopped).
// Request contexts are not children of the connection's: a child registers
// with its parent and unregisters when done, two more lock round trips and
// a map insert and delete on every request, for an event that happens
// once per connection. A request admitted after this ran sees c.ctx ended
// and cancels itself (see admitRequest).
func (c *serverConn) cancelInflight() {
	cause := context.Cause(c.ctx)
	c.mu.Lock()
	cancels := make([]context.CancelCauseFunc, 0, len(c.inflight))
	for _, r := range c.inflight {
		cancels = append(cancels, r.cancel)
	}
	c.mu.Unlock()
	for _, cancel := range cancels { // outside mu, like deadlinesFired
		cancel(cause)
	}
}

// armDeadlinesLocked makes the deadline timer fire at t.
func (c *serverConn) armDeadlinesLocked(t time.Time) {
	c.dlArmed = t
	c.dlTimer.Reset(time.Until(t))
}

// deadlinesFired cancels every request whose deadline has passed and arms
// the timer for the earliest one left. Requests usually finish long before
// their deadline, and a later deadline never moves the timer, so on a busy
// connection it is armed about once per deadline period, not per request.
func (c *serverConn) deadlinesFired() {
	now := time.Now()
	var due []context.CancelCauseFunc
	var next time.Time
	c.mu.Lock()
	for _, r := range c.inflight {
		switch {
		case r.deadline.IsZero():
		case !r.deadline.After(now):
			due = append(due, r.cancel)
			r.deadline = time.Time{} // canceled once
		case next.IsZero() || r.deadline.Before(next):
			next = r.deadline
		}
	}
	c.dlArmed = time.Time{}
	if !next.IsZero() {
		c.armDeadlinesLocked(next)
	}
	c.mu.Unlock()
	for _, cancel := range due {
		cancel(context.DeadlineExceeded)
	}
}

// runInline runs a unary request on the reading goroutine under the
// watchdog. It reports whether this goroutine is still the reader.
//
// The watchdog is armed by the first run and left armed: when it fires
// during a younger run it re-arms for that run's remaining time, and when it
// fires between runs it simply stays off until the next one. Moving a timer
// for every request would cost more than a quick request itself.
func (c *serverConn) runInline(j job) bool {
	start := c.lastRecv // the request's frame just arrived: no new clock reading
	c.rmu.Lock()
	c.inlineGen++
	gen := c.inlineGen
	c.inlineRun = true
	c.inlineStart = start
	if !c.wdArmed {
		c.wdArmed = true
		c.watchdog.Reset(inlineWatchdog)
	}
	c.rmu.Unlock()

	resp, err := c.callUnary(j.ctx, j.req, j.rt.unary)

	c.rmu.Lock()
	// handedOver only grows, and a younger run than this one exists only
	// if another goroutine became the reader, so this goroutine lost the
	// role if this run or any later one was handed over.
	reader := c.handedOver < gen
	c.inlineRun = false
	c.rmu.Unlock()
	// Still the reader with the next frame already here: leave this
	// response in the buffer to go out with the next ones; the loop
	// flushes before it waits for the peer.
	mode := flushNow
	if reader && frameBuffered(c.fr.Reader()) {
		mode = flushHold
		c.held = true
	}
	c.answer(j, resp, err, start, mode)
	return reader
}

func (c *serverConn) runUnary(j job) {
	start := monoNow()
	var resp any
	var err error
	if j.ctx.Err() != nil {
		// The deadline passed or the caller canceled while the request
		// waited for this goroutine: do not start work nobody waits for.
		err = j.ctx.Err()
	} else {
		resp, err = c.callUnary(j.ctx, j.req, j.rt.unary)
	}
	c.answer(j, resp, err, start, flushBatched)
}

// answer writes a unary request's terminal frame and finishes it; mode is
// how it leaves (flushHold: the reading goroutine flushes it later).
func (c *serverConn) answer(j job, resp any, err error, start time.Time, mode flushMode) {
	defer c.handlersWG.Done()
	d := time.Since(start) // the handler's time; one clock reading serves both uses
	observeCost(j.rt, d)
	c.release(j.req.ID)
	var code wire.Code
	if err == nil {
		code = c.writeFrame(j.ctx, j.req, wire.FrameResponse, 0, resp, mode)
	} else {
		code = c.writeErrorFrame(j.ctx, j.req, err, mode)
	}
	j.cancel(nil)
	c.finish(j.req, code, d)
}

// callUnary runs h, turning a panic into INTERNAL for this request only.
func (c *serverConn) callUnary(ctx context.Context, req *Request, h HandlerFunc) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.logPanic(ctx, req, p)
			resp, err = nil, &wire.Error{Code: wire.Internal, Message: "internal error"}
		}
	}()
	return h(ctx, req)
}

func (c *serverConn) logPanic(ctx context.Context, req *Request, p any) {
	c.srv.log.ErrorContext(ctx, "handler panic", "conn", c.id, "op", req.Op.String(), "id", req.ID, "trace", req.TraceID,
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
}

// writeResult encodes v and sends it as a RESPONSE (or EVENT) frame.
func (c *serverConn) writeResult(ctx context.Context, req *Request, t wire.FrameType, flags uint16, v any) wire.Code {
	return c.writeFrame(ctx, req, t, flags, v, flushBatched)
}

// writeFrame is writeResult with a choice of flush mode (see answer).
func (c *serverConn) writeFrame(ctx context.Context, req *Request, t wire.FrameType, flags uint16, v any, mode flushMode) wire.Code {
	if err := c.w.lock(); err != nil {
		return wire.Unavailable
	}
	off := c.w.beginFrame()
	var err error
	c.w.buf, err = wire.Marshal(c.w.buf, v)
	if err == nil && len(c.w.buf)-off-wire.HeaderLen > c.srv.cfg.MaxPayload {
		err = fmt.Errorf("encoded response of %d bytes is over the %d-byte payload limit", len(c.w.buf)-off-wire.HeaderLen, c.srv.cfg.MaxPayload)
	}
	if err != nil {
		c.w.buf = c.w.buf[:off]
		c.w.unlock()
		c.srv.log.ErrorContext(ctx, "encode response", "conn", c.id, "op", req.Op.String(), "id", req.ID, "trace", req.TraceID, "err", err)
		return c.writeError(ctx, req, &wire.Error{Code: wire.Internal, Message: "internal error"})
	}
	c.w.endFrame(off, t, flags, req.ID)
	if err := c.w.unlockMode(mode); err != nil {
		return wire.Unavailable
	}
	return wire.OK
}

// writeError sends err as the terminal ERROR frame of req and returns its code.
func (c *serverConn) writeError(ctx context.Context, req *Request, err error) wire.Code {
	return c.writeErrorFrame(ctx, req, err, flushBatched)
}

func (c *serverConn) writeErrorFrame(ctx context.Context, req *Request, err error, mode flushMode) wire.Code {
	e := c.wireError(ctx, req, err)
	if c.w.lock() != nil {
		return e.Code
	}
	off := c.w.beginFrame()
	c.w.buf = wire.AppendError(c.w.buf, e)
	c.w.endFrame(off, wire.FrameError, 0, req.ID)
	_ = c.w.unlockMode(mode)
	return e.Code
}

// wireError maps a handler error to what the caller may see.
func (c *serverConn) wireError(ctx context.Context, req *Request, err error) *wire.Error {
	var e *wire.Error
	isErr := errors.As(err, &e)
	// A context derived from the request's ends with Canceled when the
	// request's deadline passes; the cause says why.
	if expired(ctx) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		isErr && (e.Code == wire.Canceled || e.Code == wire.DeadlineExceeded)) {
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	if isErr && e.Code != wire.OK && !e.Code.Fatal() {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), errClientCancel) {
			return &wire.Error{Code: wire.Canceled, Message: "canceled"}
		}
		return &wire.Error{Code: wire.Unavailable, Message: "server shutting down"}
	}
	c.srv.log.ErrorContext(ctx, "request failed", "conn", c.id, "op", req.Op.String(), "id", req.ID, "trace", req.TraceID, "err", err)
	return &wire.Error{Code: wire.Internal, Message: "internal error"}
}

// release takes a request out of the in-flight set just before its terminal
// frame is written: from then on its slot is free and a CANCEL for it is
// ignored, as PROTOCOL.md says.
func (c *serverConn) release(id uint32) {
	c.mu.Lock()
	delete(c.inflight, id)
	c.mu.Unlock()
}

// finish records a request whose terminal frame has been written; the last
// one to finish on a draining connection closes it.
func (c *serverConn) finish(req *Request, code wire.Code, d time.Duration) {
	s := c.srv
	if s.cfg.Observe != nil {
		s.cfg.Observe(req.Op, code, d)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("request", "conn", c.id, "op", req.Op.String(), "id", req.ID, "trace", req.TraceID, "code", code.String(), "duration", d)
	}
	c.mu.Lock()
	c.active--
	done := c.draining && c.active == 0
	c.mu.Unlock()
	if done {
		c.finishDrain()
	}
}

// drain starts a graceful close: DRAIN names the last request id that will
// be answered; streams end at once; the connection closes when idle.
func (c *serverConn) drain() {
	c.mu.Lock()
	if c.draining {
		c.mu.Unlock()
		return
	}
	c.draining = true
	ready := c.ready
	c.mu.Unlock()
	if ready {
		c.sendDrain()
		return
	}
	// Still in the handshake, so no request was sent yet: interrupt the
	// handshake read; it answers FATAL SHUTTING_DOWN.
	_ = c.nc.SetReadDeadline(time.Now())
}

// sendDrain runs exactly once per draining connection, after READY.
func (c *serverConn) sendDrain() {
	c.mu.Lock()
	c.drainLast = c.lastID
	last := c.drainLast
	idle := c.active == 0
	for _, r := range c.inflight {
		if r.stream {
			r.cancel(errDraining)
		}
	}
	c.mu.Unlock()
	_ = c.w.write(wire.FrameDrain, 0, 0, wire.AppendDrain(nil, last))
	if idle {
		c.finishDrain()
	}
}

func (c *serverConn) finishDrain() {
	if c.closing.CompareAndSwap(false, true) {
		c.w.writeLast(wire.FrameFatal, wire.AppendFatal(nil, wire.ShuttingDown, "server shutting down"))
		c.halfClose()
	}
}

// End-to-end deadlines (PROTOCOL.md §4.2). A REQUEST's deadline_ms is the
// caller's remaining budget when it wrote the frame; the frame may then
// wait in the network and in queues before the server reads it, and the
// answer takes time to travel back. Clocks of the two sides are not
// compared; instead the server measures the connection's round-trip time
// with its own PINGs (the PONG echoes the send time the PING carried) and
// gives a handler deadline_ms minus that round trip from the frame's
// arrival. A request whose remaining budget is gone on arrival is answered
// DEADLINE_EXCEEDED without starting, and one whose deadline passes while
// it waits for a handler goroutine is answered without running.
const (
	// rttRefresh is how old the last sample may be before a REQUEST with a
	// deadline triggers a new PING.
	rttRefresh = time.Second
	// pingLost is how long an unanswered PING blocks the next one.
	pingLost = 10 * time.Second
	// rttSamples is how many samples the estimate is the minimum of. A
	// PING's round trip can only overstate the link's delay (it may wait
	// behind other frames, or for a busy peer to read it), so one slow
	// sample must not make every request on the connection look late.
	rttSamples = 4
	// rttPingMagic starts the payload of the server's own PINGs, so a PONG
	// is matched to them and not to anything else.
	rttPingMagic = "bwrtt"
)

// networkBudget returns the round-trip time to subtract from a deadline,
// and sends a PING if the last measurement is stale. Called by the reader.
func (c *serverConn) networkBudget() time.Duration {
	now := monoNanos()
	if now-c.rttAt.Load() >= int64(rttRefresh) {
		if sent := c.pingSent.Load(); sent == 0 || now-sent >= int64(pingLost) {
			c.pingSent.Store(now)
			p := binary.BigEndian.AppendUint64([]byte(rttPingMagic), uint64(now))
			_ = c.w.write(wire.FramePing, 0, 0, p)
		}
	}
	return time.Duration(c.rtt.Load())
}

// pongReceived takes a round-trip sample from the PONG to one of the
// server's own PINGs. Called by the reader.
func (c *serverConn) pongReceived(p []byte) {
	if len(p) != len(rttPingMagic)+8 || string(p[:len(rttPingMagic)]) != rttPingMagic {
		return
	}
	sent := int64(binary.BigEndian.Uint64(p[len(rttPingMagic):]))
	if sent != c.pingSent.Load() {
		return // not the PING outstanding (a stale or forged PONG)
	}
	now := monoNanos()
	c.rttMu.Lock()
	c.samples[c.sampled%rttSamples] = now - sent
	c.sampled++
	est := c.samples[0]
	for _, v := range c.samples[1:min(c.sampled, rttSamples)] {
		est = min(est, v)
	}
	c.rttMu.Unlock()
	c.rtt.Store(est)
	c.rttAt.Store(now)
	c.pingSent.Store(0)
}

// Admission. Authenticated clients (the web tiers) must always be able to
// connect, whatever strangers do to the port. A connection counts against
// the handshake budget from accept until its AUTH is accepted, and against
// MaxConns throughout. A new connection is refused (FATAL
// TOO_MANY_CONNECTIONS instead of HELLO) when its address already has
// MaxPreAuthPerIP connections in the handshake while the handshake budget
// is full (a burst of handshakes from one busy client host is welcome while
// there is room), or when MaxConns authenticated connections are open. Otherwise, if the handshake budget
// (MaxPreAuthConns) or MaxConns is full, a connection still in the
// handshake is evicted (FATAL TOO_MANY_CONNECTIONS, closed at once) to make
// room: the oldest one of the address with the most connections in the
// handshake. A web tier has one or two in the handshake at a time, and
// completes them within a round trip; a flood holds up to MaxPreAuthPerIP
// per address, so its own connections are what gets evicted unless it
// comes from more addresses than the budget has room for.
const evictedReason = "too many connections in the handshake; evicted for a newer one"

// admitLocked applies the rules above to the newly accepted c; it returns
// why c is refused, or "" with c counted in the handshake budget.
func (s *Server) admitLocked(c *serverConn) string {
	full := len(s.preAuth) >= s.cfg.MaxPreAuthConns || s.authed+len(s.preAuth) >= s.cfg.MaxConns
	if full && s.preAuthPerIP[c.ip] >= s.cfg.MaxPreAuthPerIP {
		return "too many unauthenticated connections from this address"
	}
	if s.authed >= s.cfg.MaxConns {
		return "too many connections" // evicting would not make room
	}
	for len(s.preAuth) >= s.cfg.MaxPreAuthConns || s.authed+len(s.preAuth) >= s.cfg.MaxConns {
		v := s.evictionVictimLocked()
		s.removePreAuthLocked(v)
		v.evicted.Store(true)
		_ = v.nc.SetReadDeadline(time.Now()) // its handshake read ends; it answers FATAL and closes
		if ok, suppressed := s.refusals.allow(); ok {
			s.log.Warn("connection evicted from the handshake", "conn", v.id, "remote", v.remote, "max_preauth_conns", s.cfg.MaxPreAuthConns, "suppressed", suppressed)
		}
	}
	s.preAuth = append(s.preAuth, c)
	s.preAuthPerIP[c.ip]++
	c.preAuth = true
	return ""
}

// evictionVictimLocked picks the oldest connection in the handshake of
// the address with the most of them.
func (s *Server) evictionVictimLocked() *serverConn {
	most := 0
	for _, n := range s.preAuthPerIP {
		most = max(most, n)
	}
	for _, c := range s.preAuth { // oldest first
		if s.preAuthPerIP[c.ip] == most {
			return c
		}
	}
	return s.preAuth[0]
}

func (s *Server) removePreAuthLocked(c *serverConn) {
	if i := slices.Index(s.preAuth, c); i >= 0 {
		s.preAuth = slices.Delete(s.preAuth, i, i+1)
	}
	if s.preAuthPerIP[c.ip]--; s.preAuthPerIP[c.ip] <= 0 {
		delete(s.preAuthPerIP, c.ip)
	}
	c.preAuth = false
}

// leavePreAuth takes c out of the handshake budget, counting it as
// authenticated if authed. It reports false if c had been evicted.
func (s *Server) leavePreAuth(c *serverConn, authed bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.preAuth {
		return false
	}
	s.removePreAuthLocked(c)
	if authed {
		c.authed = true
		s.authed++
	}
	return true
}

// Refused, evicted and unauthenticated connections are logged at most
// refusalLogBurst lines per refusalLogEvery; each line that follows
// suppressed ones says how many.
const (
	refusalLogEvery = 10 * time.Second
	refusalLogBurst = 10
)

// logLimiter allows burst log lines per interval and counts the rest.
type logLimiter struct {
	every time.Duration
	burst int

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether a line may be logged now and, if so, how many were
// suppressed since the last one allowed.
func (l *logLimiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.start) >= l.every {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.suppressed++
		return false, 0
	}
	l.n++
	n := l.suppressed
	l.suppressed = 0
	return true, n
}
