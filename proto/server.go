package proto

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
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
	// took, not counting the write of its answer.
	Observe func(op wire.Op, code wire.Code, d time.Duration)
}

func (c *ServerConfig) setDefaults() {
	orDefault(&c.Name, "bankwire-apptier")
	orDefault(&c.MaxConns, wire.DefaultMaxConns)
	orDefault(&c.MaxInFlight, wire.DefaultMaxInFlight)
	orDefault(&c.MaxPayload, wire.DefaultMaxPayload)
	c.MaxPayload = min(c.MaxPayload, 1<<30)
	orDefault(&c.MaxPreAuthConns, max(c.MaxConns/4, min(c.MaxConns, 8)))
	orDefault(&c.MaxPreAuthPerIP, 16)
	orDefault(&c.HandshakeTimeout, 5*time.Second)
	orDefault(&c.IdleTimeout, 60*time.Second)
	orDefault(&c.ReadTimeout, 30*time.Second)
	orDefault(&c.WriteTimeout, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// orDefault sets *p to def unless it is above the zero value.
func orDefault[T cmp.Ordered](p *T, def T) {
	var zero T
	if *p <= zero {
		*p = def
	}
}

// Server serves the bankwire protocol. Create it with NewServer.
//
// Goroutines: Serve runs the accept loop; each connection has one goroutine
// (serverConn.serve) that does the handshake, then reads and dispatches
// frames; each request runs its handler on a goroutine of its own; a
// refused connection gets a short-lived goroutine that tells it why.
type Server struct {
	cfg       ServerConfig
	log       *slog.Logger
	secretSum [sha256.Size]byte
	hello     []byte                        // encoded HELLO payload, the same for every connection
	unary     map[wire.Op]HandlerFunc       // copied from the Mux in NewServer; read-only
	stream    map[wire.Op]StreamHandlerFunc // likewise
	costs     costs                         // which unary operations run inline (inline.go)

	inlineBudget time.Duration // the inlineBudget constant; tests raise it, as -race slows every handler
	handOffs     atomic.Uint64 // watchdog hand-offs, for tests

	ctx    context.Context // parent of every connection's context; canceled by Close and once Shutdown is done
	cancel context.CancelFunc

	nextConn atomic.Uint64
	refusing atomic.Int32   // refusal writes in progress (see maxRefusing)
	refusals *logLimiter    // refused and unauthenticated connections are logged at a rate
	connWG   sync.WaitGroup // one count per connection goroutine

	mu           sync.Mutex // protects the fields below
	listeners    map[net.Listener]struct{}
	conns        map[*serverConn]struct{}
	addr         net.Addr
	shutdown     bool
	preAuth      []*serverConn  // connections in the handshake, oldest first (see admitLocked)
	preAuthPerIP map[string]int // len(preAuth) by remote IP
	authed       int            // authenticated connections
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
		secretSum:    sha256.Sum256([]byte(cfg.Secret)),
		unary:        maps.Clone(h.unary),
		stream:       maps.Clone(h.stream),
		costs:        newCosts(h.unary),
		inlineBudget: inlineBudget,
		listeners:    map[net.Listener]struct{}{},
		conns:        map[*serverConn]struct{}{},
		preAuthPerIP: map[string]int{},
		refusals:     &logLimiter{every: refusalLogEvery, burst: refusalLogBurst},
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
	for _, c := range s.stop() {
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
	conns := s.stop()
	s.cancel()
	for _, c := range conns {
		c.nc.Close()
	}
	s.connWG.Wait()
	return nil
}

// stop marks the server shut down, closes its listeners and returns its
// connections.
func (s *Server) stop() []*serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown = true
	for ln := range s.listeners {
		ln.Close()
	}
	return slices.Collect(maps.Keys(s.conns))
}

// Admission. Authenticated clients (the web tiers) must always be able to
// connect, whatever strangers do to the port. A connection counts against
// the handshake budget (MaxPreAuthConns) from accept until its AUTH is
// accepted, and against MaxConns throughout. A new connection is refused
// (FATAL TOO_MANY_CONNECTIONS instead of HELLO) when MaxConns authenticated
// connections are open, or when either limit is full and its address
// already has MaxPreAuthPerIP connections in the handshake. Otherwise, if either
// limit is full, the oldest connection in the handshake of the address with
// the most of them is evicted (FATAL, closed at once) to make room. A web
// tier completes its handshakes within a round trip; a flood holds up to
// MaxPreAuthPerIP per address, so its own connections are what gets evicted
// unless it comes from more addresses than the budget has room for.
const evictedReason = "too many connections in the handshake; evicted for a newer one"

// admitLocked applies the rules above to the newly accepted c; it returns
// why c is refused, or "" with c counted in the handshake budget.
func (s *Server) admitLocked(c *serverConn) string {
	full := func() bool {
		return len(s.preAuth) >= s.cfg.MaxPreAuthConns || s.authed+len(s.preAuth) >= s.cfg.MaxConns
	}
	if full() && s.preAuthPerIP[c.ip] >= s.cfg.MaxPreAuthPerIP {
		return "too many unauthenticated connections from this address"
	}
	if s.authed >= s.cfg.MaxConns {
		return "too many connections" // evicting would not make room
	}
	for full() {
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

// evictionVictimLocked picks the oldest connection in the handshake of the
// address with the most of them.
func (s *Server) evictionVictimLocked() *serverConn {
	most := slices.Max(slices.Collect(maps.Values(s.preAuthPerIP)))
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

	mu         sync.Mutex // protects the fields below
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether a line may be logged now and, if so, how many were
// suppressed since the last one allowed.
func (l *logLimiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.start) >= l.every {
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
