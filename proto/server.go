package proto

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"bankwire/proto/wire"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proto: server closed")

// Request is one decoded REQUEST as a handler sees it.
type Request struct {
	Op      wire.Op
	ID      uint32
	TraceID string
	Payload []byte // the encoded body, which Handle decodes into the handler's argument
}

// decode decodes the body into v, a wire.Unmarshaler; a malformed body is
// INVALID_ARGUMENT "malformed request body", ready for the caller.
func (r *Request) decode(v any) error {
	if err := wire.Unmarshal(r.Payload, v); err != nil {
		if errors.Is(err, wire.ErrNoEncoding) {
			panic("proto: request type: " + err.Error()) // a handler bug: the server turns it into INTERNAL
		}
		return errMalformedBody
	}
	return nil
}

// errMalformedBody answers a body that does not decode; its quick refusal
// says nothing of what the handler costs (see observeCost).
var errMalformedBody = &wire.Error{Code: wire.InvalidArgument, Message: "malformed request body"}

// Mux routes requests to handlers by operation. Handle and HandleStream
// (method.go) register them.
type Mux struct{ ops map[wire.Op]handler }

// handler is one operation's handler, which Handle or HandleStream wraps
// around a typed one: exactly one of its fields is set. unary's result (a
// wire.Marshaler, or nil for Empty) is encoded into the RESPONSE.
type handler struct {
	unary  func(ctx context.Context, req *Request) (any, error)
	stream func(ctx context.Context, req *Request, s *Stream) error
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{ops: map[wire.Op]handler{}} }

// add registers h for op. It panics on a nil handler or a second
// registration of op, which are programming errors.
func (m *Mux) add(op wire.Op, isNil bool, h handler) {
	if isNil {
		panic("proto: nil handler for " + op.String())
	}
	if _, dup := m.ops[op]; dup {
		panic("proto: duplicate handler for " + op.String())
	}
	m.ops[op] = h
}

// ServerConfig configures a Server. Zero values mean the defaults.
type ServerConfig struct {
	Name   string      // server name and version in HELLO, e.g. "bankwire-apptier/1.0"
	Secret string      // shared secret clients must present (APPTIER_SECRET)
	TLS    *tls.Config // when set, connections are TLS

	MaxConns int // simultaneous connections; default 256

	// Connections in the handshake have a budget of their own (see
	// admitLocked): at most MaxPreAuthConns in all (default a quarter of
	// MaxConns, at least 8 or MaxConns if that is smaller) and, once that
	// budget is full, MaxPreAuthPerIP from one address (default 16).
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
	// in AUTH) whose connections are logged at DEBUG instead of INFO, such
	// as a container healthcheck. Failed handshakes are always logged.
	Quiet func(client string) bool

	// Observe, when set, is called once per answered request with its
	// operation, result code and handler duration (the answer's write not
	// included), for metrics. An operation the Mux does not handle is
	// reported as 0, so that numbers a client makes up do not each become
	// a metric series.
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
// Goroutines: Serve runs the accept loop; each connection has one reading
// goroutine at a time (serverConn.serve); each request runs its handler on
// a goroutine of its own unless it runs inline (inline.go); a refused
// connection gets a short-lived goroutine that tells it why.
type Server struct {
	cfg       ServerConfig
	log       *slog.Logger
	secretSum [sha256.Size]byte
	hello     []byte // encoded HELLO payload, the same for every connection

	ops       map[wire.Op]handler       // copied from the Mux; read-only
	costs     map[wire.Op]*atomic.Int64 // unary operations' average handler times, which decide inline runs (inline.go)
	inlineMax time.Duration             // inlineBudget; tests raise it, as -race slows every handler
	handOffs  atomic.Uint64             // watchdog hand-offs, for tests
	refusing  atomic.Int32              // refusal writes in progress (see maxRefusing)
	nextConn  atomic.Uint64             // for connection ids
	connWG    sync.WaitGroup            // one count per reading goroutine and per refusal
	ctx       context.Context           // parent of every connection's context
	cancel    context.CancelFunc        // called by Close, and by Shutdown once drained

	logMu     sync.Mutex // guards logWindow, logged, suppress
	logWindow time.Time  // start of the current refusal-log window
	logged    int        // refusal lines logged in the window
	suppress  int        // refusal lines dropped since the last one logged

	mu        sync.Mutex            // guards the fields below
	listeners map[net.Listener]bool // open listeners
	conns     map[*serverConn]bool  // open connections
	shutdown  bool                  // Shutdown or Close was called
	preAuth   []*serverConn         // connections in the handshake, oldest first
	perIP     map[string]int        // len(preAuth) by remote IP
	authed    int                   // authenticated connections
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
		ops:       maps.Clone(h.ops),
		costs:     map[wire.Op]*atomic.Int64{},
		inlineMax: inlineBudget,
		listeners: map[net.Listener]bool{},
		conns:     map[*serverConn]bool{},
		perIP:     map[string]int{},
	}
	for op, h := range s.ops {
		if h.unary != nil {
			s.costs[op] = new(atomic.Int64)
		}
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

// Serve accepts connections on ln until Shutdown or Close, which make it
// return ErrServerClosed. It closes ln before returning.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	defer ln.Close()
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			if nc != nil {
				nc.Close()
			}
			return ErrServerClosed
		}
		if err != nil {
			s.mu.Unlock()
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, instead of spinning or dying.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := s.newConn(nc)
		if reason := s.admitLocked(c); reason != "" {
			s.connWG.Add(1) // refuse's; under mu, before Close can wait
			s.mu.Unlock()
			c.cancel() // its context would stay among the server's until Close
			s.refuse(nc, reason)
			continue
		}
		s.conns[c] = true
		s.connWG.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// maxRefusing bounds the goroutines writing TOO_MANY_CONNECTIONS, so that
// a connection flood cannot turn refusals into unbounded work.
const maxRefusing = 32

// refuse tells a connection over the limit why it is closed, off the accept
// loop and within about two seconds (the write, then the linger), or at
// once when the server closes. It holds one count of connWG.
func (s *Server) refuse(nc net.Conn, reason string) {
	s.logRefusal(slog.LevelWarn, "connection refused", "remote", nc.RemoteAddr().String(), "reason", reason, "max_conns", s.cfg.MaxConns,
		"max_preauth_conns", s.cfg.MaxPreAuthConns, "max_preauth_per_ip", s.cfg.MaxPreAuthPerIP)
	if s.refusing.Add(1) > maxRefusing {
		s.refusing.Add(-1)
		nc.Close()
		s.connWG.Done()
		return
	}
	go func() {
		defer s.connWG.Done()
		defer s.refusing.Add(-1)
		defer nc.Close()
		defer context.AfterFunc(s.ctx, func() { nc.Close() })()
		_ = nc.SetDeadline(time.Now().Add(lingerTimeout))
		fatal := wire.AppendFatal(nil, wire.TooManyConnections, "server has too many connections, try again later")
		if _, err := nc.Write(wire.AppendFrame(nil, wire.Frame{Type: wire.FrameFatal, Payload: fatal})); err == nil {
			closeWrite(nc)
			linger(nc, nc)
		}
	}()
}

// Shutdown drains the server: it stops accepting, sends DRAIN on every
// connection naming the last request it will answer, then ends streams
// with UNAVAILABLE, lets the unary requests in flight finish, and closes
// each connection once it is idle. If ctx ends first, it closes everything
// at once as Close does (waiting, like Close, for handlers to return) and
// returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	// Concurrently: writing DRAIN to a peer that stopped reading blocks
	// until the write timeout, or until Close closes the connection.
	var drains sync.WaitGroup
	for _, c := range s.stop() {
		drains.Go(c.drain)
	}
	done := make(chan struct{})
	go func() {
		drains.Wait()
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
// connections are open, or when either limit is full and its address already
// has MaxPreAuthPerIP connections in the handshake. Otherwise, while either
// limit is full, the oldest connection in the handshake of the address with
// the most of them is evicted (FATAL, closed at once). A web tier completes
// its handshake within a round trip, so a flood mostly evicts its own.
const evictedReason = "too many connections in the handshake; evicted for a newer one"

// admitLocked applies the rules above to the newly accepted c; it returns
// why c is refused, or "" with c counted in the handshake budget.
func (s *Server) admitLocked(c *serverConn) string {
	full := func() bool {
		return len(s.preAuth) >= s.cfg.MaxPreAuthConns || s.authed+len(s.preAuth) >= s.cfg.MaxConns
	}
	if full() && s.perIP[c.ip] >= s.cfg.MaxPreAuthPerIP {
		return "too many unauthenticated connections from this address"
	}
	if s.authed >= s.cfg.MaxConns {
		return "too many connections" // evicting would not make room
	}
	for full() {
		most := slices.Max(slices.Collect(maps.Values(s.perIP)))
		i := slices.IndexFunc(s.preAuth, func(v *serverConn) bool { return s.perIP[v.ip] == most })
		v := s.preAuth[i]
		s.leavePreAuthLocked(v)
		v.evicted.Store(true)
		_ = v.nc.SetReadDeadline(time.Now()) // its handshake read ends; it answers FATAL and closes
		s.logRefusal(slog.LevelWarn, "connection evicted from the handshake", "conn", v.id, "remote", v.remote, "max_preauth_conns", s.cfg.MaxPreAuthConns)
	}
	s.preAuth = append(s.preAuth, c)
	s.perIP[c.ip]++
	c.preAuth = true
	return ""
}

func (s *Server) leavePreAuthLocked(c *serverConn) {
	s.preAuth = slices.DeleteFunc(s.preAuth, func(v *serverConn) bool { return v == c })
	if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
		delete(s.perIP, c.ip)
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
	s.leavePreAuthLocked(c)
	if authed {
		c.authed = true
		s.authed++
	}
	return true
}

// Refused, evicted and unauthenticated connections are logged at most
// refusalLogBurst lines per refusalLogEvery; the next line logged after
// suppressed ones says how many.
const (
	refusalLogEvery = 10 * time.Second
	refusalLogBurst = 10
)

// logRefusal logs msg under the rate limit above, and reports whether it
// did.
func (s *Server) logRefusal(level slog.Level, msg string, args ...any) bool {
	s.logMu.Lock()
	if now := time.Now(); now.Sub(s.logWindow) >= refusalLogEvery {
		s.logWindow, s.logged = now, 0
	}
	ok := s.logged < refusalLogBurst
	if ok {
		s.logged++
		args = append(args, "suppressed", s.suppress)
		s.suppress = 0
	} else {
		s.suppress++
	}
	s.logMu.Unlock()
	if ok {
		s.log.Log(context.Background(), level, msg, args...)
	}
	return ok
}
