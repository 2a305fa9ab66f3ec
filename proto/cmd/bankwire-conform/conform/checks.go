package conform

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"bankwire/proto/limits"
	"bankwire/proto/wire"
)

// checks lists every check, in the order they run; the drain checks come
// last because they end the server.
func checks() []check {
	return []check{
		{"3", "HELLO is the first frame, unprompted, with versions [1] and limits", checkHello},
		{"3", "AUTH with the secret gets READY {\"version\":1}", func(k *checker) error {
			c, err := k.ready()
			if err == nil {
				c.close()
			}
			return err
		}},
		{"3", "a wrong secret gets FATAL BAD_SECRET, the last frame", checkBadSecret},
		{"3", "AUTH versions 2, 256, -1 and 1.5 get FATAL UNSUPPORTED_VERSION", checkAuthVersions},
		{"3", "AUTH that is not JSON, or has a key twice, gets FATAL PROTOCOL_ERROR", checkAuthMalformed},
		{"3", "AUTH of exactly 4096 bytes gets READY", checkAuthAtMax},
		{"3", "AUTH over 4096 bytes gets FATAL PROTOCOL_ERROR", checkAuthTooLong},
		{"3", "a first frame other than AUTH gets FATAL PROTOCOL_ERROR", checkFirstNotAuth},
		{"3", "an HTTP request instead of frames gets FATAL PROTOCOL_ERROR or UNSUPPORTED_VERSION", checkHTTP},
		{"3", "no AUTH within handshake_timeout_ms gets FATAL HANDSHAKE_TIMEOUT", checkHandshakeTimeout},
		{"2", "a frame with version 2 gets FATAL UNSUPPORTED_VERSION", fatalAfterReady(frame{version: 2, typ: tPing}, wire.UnsupportedVersion)},
		{"2.1", "an unknown frame type gets FATAL PROTOCOL_ERROR", fatalAfterReady(frame{version: 1, typ: 99}, wire.ProtocolError)},
		{"2", "an unknown flag bit gets FATAL PROTOCOL_ERROR", fatalAfterReady(frame{version: 1, typ: tPing, flags: 0x0002}, wire.ProtocolError)},
		{"2", "STREAM on a REQUEST gets FATAL PROTOCOL_ERROR", fatalAfterReady(frame{version: 1, typ: tRequest, flags: flagStream, id: 1, payload: infoPrefix()}, wire.ProtocolError)},
		{"2.1", "a frame in the wrong direction (RESPONSE) gets FATAL PROTOCOL_ERROR", fatalAfterReady(frame{version: 1, typ: tResponse, id: 1}, wire.ProtocolError)},
		{"2.2", "a REQUEST shorter than its prefix gets FATAL PROTOCOL_ERROR", fatalAfterReady(frame{version: 1, typ: tRequest, id: 1, payload: []byte{0, 1, 0}}, wire.ProtocolError)},
		{"2", "a payload length over max_payload gets FATAL PROTOCOL_ERROR before the payload is sent", checkOverMaxPayload},
		{"2", "a payload of exactly max_payload is read (an ERROR for its body, no FATAL)", checkAtMaxPayload},
		{"7.1", "PING gets PONG with the same id and payload", checkPing},
		{"7.1", "PING with over 64 bytes gets FATAL PROTOCOL_ERROR", fatalAfterReady(frame{version: 1, typ: tPing, payload: make([]byte, 65)}, wire.ProtocolError)},
		{"4.1", "50 pipelined requests get exactly one terminal frame each", checkPipelined},
		{"4.1", "an unknown op gets ERROR UNIMPLEMENTED; the connection stays open", checkUnknownOp},
		{"2.2", "a trace id of 255 bytes is accepted", checkTraceAtMax},
		{"4.1", "a malformed body gets ERROR INVALID_ARGUMENT \"malformed request body\"; the connection stays open", checkMalformedBody},
		{"4.1", "a request id not greater than the previous gets FATAL PROTOCOL_ERROR", checkIDNotIncreasing},
		{"4.1", "a duplicate id of a request in flight gets FATAL PROTOCOL_ERROR", checkDuplicateInFlight},
		{"6.2", "FATAL is the last frame even with answers in flight (20 tries)", checkFatalLast},
		{"4.1", "one request over max_in_flight gets ERROR RESOURCE_EXHAUSTED at once", checkMaxInFlight},
		{"4.2", "CANCEL for an id not in flight is ignored", checkCancelUnknown},
		{"4.2", "a deadline shorter than the measured round trip gets DEADLINE_EXCEEDED without work", checkDeadlineRTT},
		{"5", "subscribe opens a stream (RESPONSE with STREAM) that pushes EVENTs", checkStreamEvent},
		{"5", "CANCEL ends a stream with ERROR CANCELED", checkStreamCancel},
		{"5", "a stream's deadline ends it with ERROR DEADLINE_EXCEEDED", checkStreamDeadline},
		{"5", "sign-out ends the session's stream with ERROR UNAUTHENTICATED at once (1 s; 2 s allowed)", checkStreamSignOut},
		{"10", "accounts.history serves limit 100 and refuses 101 (INVALID_ARGUMENT limit)", checkHistoryLimit},
		{"10", "chat.history serves limit 100 and refuses 101 (INVALID_ARGUMENT limit)", checkChatLimit},
		{"10", "a memo of 140 characters is accepted, 141 refused (INVALID_ARGUMENT memo)", checkMemoLimit},
		{"10", "a chat message of 2000 characters is accepted, 2001 refused (INVALID_ARGUMENT body)", checkMessageLimit},
		{"7.2", "nothing received for idle_timeout_ms gets FATAL IDLE_TIMEOUT", checkIdleTimeout},
		{"7.3", "drain: DRAIN with a last_id covering the open stream, the stream ends UNAVAILABLE, FATAL SHUTTING_DOWN is the last frame", checkDrain},
	}
}

func infoPrefix() []byte { return wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpInfo}, nil) }

func wantCode(err error, code wire.Code, field string) error {
	var e *wire.Error
	if !errors.As(err, &e) {
		if err == nil {
			return fmt.Errorf("succeeded, want ERROR %s", code)
		}
		return err
	}
	if e.Code != code || field != "" && e.Field != field {
		return fmt.Errorf("ERROR %s %q field %q, want %s field %q", e.Code, e.Message, e.Field, code, field)
	}
	return nil
}

func checkHello(k *checker) error {
	c, err := dial(k.cfg.Addr)
	if err != nil {
		return err
	}
	defer c.close()
	f, err := c.read(5 * time.Second)
	if err != nil {
		return fmt.Errorf("no HELLO: %w", err)
	}
	if f.typ != tHello || f.id != 0 || f.flags != 0 {
		return fmt.Errorf("got %s, want HELLO id 0", f)
	}
	if len(f.payload) > 4096 {
		return fmt.Errorf("HELLO of %d bytes, over 4096", len(f.payload))
	}
	var h hello
	if err := json.Unmarshal(f.payload, &h); err != nil {
		return fmt.Errorf("HELLO not JSON: %w", err)
	}
	has1 := false
	for _, v := range h.Versions {
		has1 = has1 || v == 1
	}
	if !has1 || h.MaxPayload <= 0 || h.MaxInFlight <= 0 || h.IdleTimeoutMs <= 0 || h.HandshakeTimeoutMs <= 0 {
		return fmt.Errorf("HELLO %s lacks version 1 or a limit", f.payload)
	}
	return nil
}

func dialHello(k *checker) (*conn, error) {
	c, err := dial(k.cfg.Addr)
	if err != nil {
		return nil, err
	}
	f, err := c.read(5 * time.Second)
	if err != nil || f.typ != tHello {
		c.close()
		return nil, fmt.Errorf("no HELLO: %v %v", f, err)
	}
	return c, nil
}

func authFatal(k *checker, payload []byte, code wire.Code) error {
	c, err := dialHello(k)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.send(tAuth, 0, 0, payload); err != nil {
		return err
	}
	return c.expectFatal(code, 5*time.Second)
}

func checkBadSecret(k *checker) error {
	b, _ := json.Marshal(map[string]any{"version": 1, "client": "bankwire-conform/1.0", "secret": k.cfg.Secret + "-wrong"})
	return authFatal(k, b, wire.BadSecret)
}

func checkAuthVersions(k *checker) error {
	for _, v := range []string{"2", "256", "-1", "1.5"} {
		secret, _ := json.Marshal(k.cfg.Secret)
		p := []byte(`{"version":` + v + `,"client":"bankwire-conform/1.0","secret":` + string(secret) + `}`)
		if err := authFatal(k, p, wire.UnsupportedVersion); err != nil {
			return fmt.Errorf("version %s: %w", v, err)
		}
	}
	return nil
}

func checkAuthMalformed(k *checker) error {
	secret, _ := json.Marshal(k.cfg.Secret)
	for _, p := range []string{`not json`, `{"version":1,"secret":` + string(secret) + `,"secret":` + string(secret) + `}`} {
		if err := authFatal(k, []byte(p), wire.ProtocolError); err != nil {
			return fmt.Errorf("AUTH %q: %w", p, err)
		}
	}
	return nil
}

// authOfSize returns an AUTH payload of exactly n bytes (padded in the
// client name).
func authOfSize(secret string, n int) []byte {
	b, _ := json.Marshal(map[string]any{"version": 1, "client": "", "secret": secret})
	pad := n - len(b)
	if pad < 0 {
		return b
	}
	b, _ = json.Marshal(map[string]any{"version": 1, "client": strings.Repeat("x", pad), "secret": secret})
	return b
}

func checkAuthAtMax(k *checker) error {
	c, err := dialHello(k)
	if err != nil {
		return err
	}
	defer c.close()
	p := authOfSize(k.cfg.Secret, 4096)
	if len(p) != 4096 {
		return skip(fmt.Sprintf("the secret is too long to build a 4096-byte AUTH (%d bytes)", len(p)))
	}
	if err := c.send(tAuth, 0, 0, p); err != nil {
		return err
	}
	f, err := c.read(5 * time.Second)
	if err != nil {
		return err
	}
	if f.typ != tReady {
		return fmt.Errorf("got %s, want READY", f)
	}
	return nil
}

func checkTraceAtMax(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	c.nextID++
	p := wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpInfo, DeadlineMs: 10000, TraceID: strings.Repeat("t", 255)}, nil)
	if len(p) != 7+255 {
		return fmt.Errorf("built a prefix of %d bytes", len(p))
	}
	if err := c.send(tRequest, 0, c.nextID, p); err != nil {
		return err
	}
	r, err := c.await(c.nextID, 10*time.Second)
	if err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	return nil
}

func checkAuthTooLong(k *checker) error {
	return authFatal(k, authOfSize(k.cfg.Secret, 4097), wire.ProtocolError)
}

func checkFirstNotAuth(k *checker) error {
	c, err := dialHello(k)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.send(tRequest, 0, 1, infoPrefix()); err != nil {
		return err
	}
	return c.expectFatal(wire.ProtocolError, 5*time.Second)
}

func checkHTTP(k *checker) error {
	c, err := dial(k.cfg.Addr)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.write([]byte("GET / HTTP/1.1\r\nHost: bankwire\r\n\r\n")); err != nil {
		return err
	}
	err1 := c.expectFatal(wire.ProtocolError, 5*time.Second, tHello)
	if err1 == nil {
		return nil
	}
	c2, err := dial(k.cfg.Addr)
	if err != nil {
		return err
	}
	defer c2.close()
	if err := c2.write([]byte("GET / HTTP/1.1\r\nHost: bankwire\r\n\r\n")); err != nil {
		return err
	}
	if err2 := c2.expectFatal(wire.UnsupportedVersion, 5*time.Second, tHello); err2 != nil {
		return fmt.Errorf("%v; %v", err1, err2)
	}
	return nil
}

func checkHandshakeTimeout(k *checker) error {
	c, err := dial(k.cfg.Addr)
	if err != nil {
		return err
	}
	defer c.close()
	f, err := c.read(5 * time.Second)
	if err != nil || f.typ != tHello {
		return fmt.Errorf("no HELLO: %v", err)
	}
	var h hello
	_ = json.Unmarshal(f.payload, &h)
	d := time.Duration(h.HandshakeTimeoutMs) * time.Millisecond
	if d > 15*time.Second && !k.cfg.Slow {
		return skip(fmt.Sprintf("handshake_timeout_ms is %d; run with -slow", h.HandshakeTimeoutMs))
	}
	start := time.Now()
	if err := c.expectFatal(wire.HandshakeTimeout, d+5*time.Second); err != nil {
		return err
	}
	if el := time.Since(start); el < d-time.Second {
		return fmt.Errorf("HANDSHAKE_TIMEOUT after %s, before handshake_timeout_ms (%s)", el, d)
	}
	return nil
}

// fatalAfterReady sends f after the handshake and expects FATAL code.
func fatalAfterReady(f frame, code wire.Code) func(k *checker) error {
	return func(k *checker) error {
		c, err := k.ready()
		if err != nil {
			return err
		}
		defer c.close()
		b := append(header(f.version, f.typ, f.flags, f.id, uint32(len(f.payload))), f.payload...)
		if err := c.write(b); err != nil {
			return err
		}
		return c.expectFatal(code, 5*time.Second)
	}
}

func checkOverMaxPayload(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.write(header(1, tRequest, 0, 1, uint32(c.hello.MaxPayload+1))); err != nil {
		return err
	}
	return c.expectFatal(wire.ProtocolError, 5*time.Second)
}

func checkAtMaxPayload(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	p := infoPrefix()
	p = append(p, make([]byte, c.hello.MaxPayload-len(p))...) // InfoRequest has an empty body: malformed
	c.nextID = 1
	if err := c.send(tRequest, 0, 1, p); err != nil {
		return err
	}
	r, err := c.await(1, 10*time.Second)
	if err != nil {
		return err
	}
	if err := wantCode(errOf(r), wire.InvalidArgument, ""); err != nil {
		return err
	}
	return stillOpen(c)
}

func errOf(r result) error {
	if r.err != nil {
		return r.err
	}
	return nil
}

// stillOpen checks the connection still answers a request.
func stillOpen(c *conn) error {
	if err := c.call(wire.OpInfo, nil, &wire.InfoResponse{}); err != nil {
		return fmt.Errorf("connection not usable afterwards: %w", err)
	}
	return nil
}

func checkPing(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	payload := []byte("bankwire-conform ping 0123456789 0123456789 0123456789 012345678") // 64 bytes
	if err := c.send(tPing, 0, 77, payload[:64]); err != nil {
		return err
	}
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			return err
		}
		if f.typ != tPong {
			continue
		}
		if f.id != 77 || string(f.payload) != string(payload[:64]) {
			return fmt.Errorf("PONG id %d payload %q", f.id, f.payload)
		}
		return nil
	}
}

func checkPipelined(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	const n = 50
	for i := 0; i < n; i++ {
		if _, err := c.request(wire.OpInfo, 10000, nil); err != nil {
			return err
		}
	}
	seen := map[uint32]bool{}
	for len(seen) < n {
		f, err := c.read(10 * time.Second)
		if err != nil {
			return fmt.Errorf("after %d answers: %w", len(seen), err)
		}
		if f.typ == tPong {
			continue
		}
		if f.typ != tResponse && f.typ != tError || f.id < 1 || f.id > n || seen[f.id] {
			return fmt.Errorf("unexpected %s", f)
		}
		seen[f.id] = true
	}
	// And nothing more for those ids.
	if err := c.send(tPing, 0, 1, nil); err != nil {
		return err
	}
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			return err
		}
		if f.typ == tPong {
			return nil
		}
		return fmt.Errorf("second terminal frame: %s", f)
	}
}

func checkUnknownOp(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	if err := wantCode(c.call(wire.Op(65000), nil, nil), wire.Unimplemented, ""); err != nil {
		return err
	}
	return stillOpen(c)
}

func checkMalformedBody(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	c.nextID++
	body := []byte{0x05, 'a'} // a string of 5 bytes with 1 present
	if err := c.send(tRequest, 0, c.nextID, wire.AppendRequest(nil, wire.RequestHeader{Op: wire.OpSignIn}, body)); err != nil {
		return err
	}
	r, err := c.await(c.nextID, 10*time.Second)
	if err != nil {
		return err
	}
	if err := wantCode(errOf(r), wire.InvalidArgument, ""); err != nil {
		return err
	}
	if r.err.Message != "malformed request body" {
		return fmt.Errorf("message %q", r.err.Message)
	}
	return stillOpen(c)
}

func checkIDNotIncreasing(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	c.nextID = 9
	if err := c.call(wire.OpInfo, nil, &wire.InfoResponse{}); err != nil {
		return err
	}
	if err := c.send(tRequest, 0, 8, infoPrefix()); err != nil {
		return err
	}
	return c.expectFatal(wire.ProtocolError, 5*time.Second)
}

// signIn signs the demo customer in on c.
func (k *checker) signIn(c *conn) (string, error) {
	var r wire.SignInResponse
	if err := c.call(wire.OpSignIn, wire.SignInRequest{Username: k.cfg.User, Password: k.cfg.Password}, &r); err != nil {
		return "", fmt.Errorf("sign in as %s: %w", k.cfg.User, err)
	}
	return r.Token, nil
}

// subscribe opens a stream and checks the server opened it.
func subscribe(c *conn, token string, deadlineMs uint32) (uint32, error) {
	id, err := c.request(wire.OpSubscribe, deadlineMs, wire.SessionRequest{Session: token})
	if err != nil {
		return 0, err
	}
	r, err := c.await(id, 10*time.Second)
	if err != nil {
		return 0, err
	}
	if r.err != nil {
		return 0, fmt.Errorf("subscribe refused: %w", r.err)
	}
	if !r.stream || len(r.f.payload) != 0 {
		return 0, fmt.Errorf("subscribe answered %s, want an empty RESPONSE with STREAM", r.f)
	}
	return id, nil
}

func checkDuplicateInFlight(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	tok, err := k.signIn(c)
	if err != nil {
		return err
	}
	id, err := subscribe(c, tok, 0)
	if err != nil {
		return err
	}
	if err := c.send(tRequest, 0, id, infoPrefix()); err != nil {
		return err
	}
	return c.expectFatal(wire.ProtocolError, 5*time.Second, tEvent, tResponse, tError)
}

func checkFatalLast(k *checker) error {
	for try := 0; try < 20; try++ {
		c, err := k.ready()
		if err != nil {
			return err
		}
		var batch []byte
		for id := uint32(1); id <= 30; id++ {
			batch = append(batch, encode(tRequest, 0, id, infoPrefix())...)
		}
		batch = append(batch, encode(tRequest, 0, 30, infoPrefix())...)
		if err := c.write(batch); err != nil {
			c.close()
			return err
		}
		err = c.expectFatal(wire.ProtocolError, 5*time.Second, tResponse, tError)
		c.close()
		if err != nil {
			return fmt.Errorf("try %d: %w", try+1, err)
		}
	}
	return nil
}

func checkMaxInFlight(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	if c.hello.MaxInFlight > 1024 {
		return skip(fmt.Sprintf("max_in_flight %d is more streams than this check opens", c.hello.MaxInFlight))
	}
	tok, err := k.signIn(c)
	if err != nil {
		return err
	}
	for i := 0; i < c.hello.MaxInFlight; i++ {
		if _, err := subscribe(c, tok, 0); err != nil {
			if wire.ErrorCode(err) == wire.ResourceExhausted {
				return skip(fmt.Sprintf("the server caps streams below max_in_flight (%d of %d open): cannot fill the connection", i, c.hello.MaxInFlight))
			}
			return err
		}
	}
	start := time.Now()
	if err := wantCode(c.call(wire.OpInfo, nil, nil), wire.ResourceExhausted, ""); err != nil {
		return err
	}
	if d := time.Since(start); d > 2*time.Second {
		return fmt.Errorf("RESOURCE_EXHAUSTED after %s, not at once", d)
	}
	return nil
}

func checkCancelUnknown(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.send(tCancel, 0, 12345, nil); err != nil {
		return err
	}
	return stillOpen(c)
}

func checkDeadlineRTT(k *checker) error {
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	// Answer the server's PINGs late: to the server the link now has a
	// round trip of at least 800 ms.
	c.pongDelay = 800 * time.Millisecond
	for try := 0; try < 5; try++ {
		if err := c.call(wire.OpInfo, nil, &wire.InfoResponse{}); err != nil {
			return err
		}
		// Let the late PONG go out and reach the server.
		time.Sleep(c.pongDelay + 300*time.Millisecond)
		id, err := c.request(wire.OpInfo, 300, nil)
		if err != nil {
			return err
		}
		r, err := c.await(id, 5*time.Second)
		if err != nil {
			return err
		}
		if r.err != nil && r.err.Code == wire.DeadlineExceeded {
			return nil
		}
	}
	return errors.New("a 300 ms request over an 800 ms round trip was still served: the server does not bound deadlines by the round trip it measured")
}

// Stream checks.

func (k *checker) streamConn() (*conn, string, error) {
	c, err := k.ready()
	if err != nil {
		return nil, "", err
	}
	tok, err := k.signIn(c)
	if err != nil {
		c.close()
		return nil, "", err
	}
	return c, tok, nil
}

// openStream signs in on a connection of its own and subscribes, with
// deadlineMs (0: none); the caller closes c.
func (k *checker) openStream(deadlineMs uint32) (c *conn, tok string, id uint32, err error) {
	c, tok, err = k.streamConn()
	if err != nil {
		return nil, "", 0, err
	}
	if id, err = subscribe(c, tok, deadlineMs); err != nil {
		c.close()
		return nil, "", 0, err
	}
	return c, tok, id, nil
}

func ownAccounts(c *conn, tok string) (from, to wire.Account, err error) {
	var accs wire.AccountsResponse
	if err := c.call(wire.OpAccountsList, wire.SessionRequest{Session: tok}, &accs); err != nil {
		return from, to, err
	}
	for i, a := range accs.Accounts {
		for _, b := range accs.Accounts[i+1:] {
			if a.Currency == b.Currency && a.Number != b.Number {
				if a.Balance >= b.Balance {
					return a, b, nil
				}
				return b, a, nil
			}
		}
	}
	return from, to, skip("the demo customer has no two accounts in one currency")
}

func checkStreamEvent(k *checker) error {
	c, tok, err := k.streamConn()
	if err != nil {
		return err
	}
	defer c.close()
	from, to, err := ownAccounts(c, tok)
	if err != nil {
		return err
	}
	id, err := subscribe(c, tok, 0)
	if err != nil {
		return err
	}
	// The transfer's EVENT may arrive before its RESPONSE (the server
	// learns of the commit and answers on different paths), so both are
	// read from one loop rather than through call, which skips events.
	key := fmt.Sprintf("conform-%d", time.Now().UnixNano())
	tid, err := c.request(wire.OpTransferCreate, 10000, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: tok},
		IdempotencyKey: key, From: from.Number, To: to.Number, Amount: "0.01", Memo: "bankwire-conform"})
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	answered, evented := false, false
	deadline := time.Now().Add(10 * time.Second)
	for !answered || !evented {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			if !answered {
				return fmt.Errorf("no answer to the transfer within 10 s: %w", err)
			}
			return fmt.Errorf("no EVENT within 10 s: %w", err)
		}
		switch {
		case f.id == tid && f.typ == tError:
			e, _ := wire.ParseError(f.payload)
			return fmt.Errorf("transfer: ERROR %v", e)
		case f.id == tid && f.typ == tResponse:
			answered = true
		case f.id == id && f.typ == tEvent:
			var ev wire.Event
			d := wire.NewDecoder(f.payload)
			ev.UnmarshalWire(d)
			if err := d.End(); err != nil {
				return fmt.Errorf("undecodable EVENT: %w", err)
			}
			evented = evented || (ev.Kind == wire.EventBalance && ev.Account != nil)
		case f.id == id:
			return fmt.Errorf("the stream ended with %s before its EVENT", f)
		}
	}
	return nil
}

// streamEnd waits for the terminal ERROR of stream id.
func streamEnd(c *conn, id uint32, within time.Duration) (*wire.Error, error) {
	r, err := c.await(id, within)
	if err != nil {
		return nil, err
	}
	if r.err == nil {
		return nil, fmt.Errorf("got %s, want the stream's terminal ERROR", r.f)
	}
	return r.err, nil
}

func checkStreamCancel(k *checker) error {
	c, _, id, err := k.openStream(0)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.send(tCancel, 0, id, nil); err != nil {
		return err
	}
	e, err := streamEnd(c, id, 5*time.Second)
	if err != nil {
		return err
	}
	return wantCode(e, wire.Canceled, "")
}

func checkStreamDeadline(k *checker) error {
	c, _, id, err := k.openStream(1500)
	if err != nil {
		return err
	}
	defer c.close()
	e, err := streamEnd(c, id, 10*time.Second)
	if err != nil {
		return err
	}
	return wantCode(e, wire.DeadlineExceeded, "")
}

func checkStreamSignOut(k *checker) error {
	c, tok, id, err := k.openStream(0)
	if err != nil {
		return err
	}
	defer c.close()
	other, err := k.ready()
	if err != nil {
		return err
	}
	defer other.close()
	if err := other.call(wire.OpSignOut, wire.SessionRequest{Session: tok}, nil); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	start := time.Now()
	// 1 s by the spec, plus slack for a loaded machine.
	e, err := streamEnd(c, id, 3*time.Second)
	if err != nil {
		return err
	}
	if err := wantCode(e, wire.Unauthenticated, ""); err != nil {
		return err
	}
	if d := time.Since(start); d > 2*time.Second {
		return fmt.Errorf("stream ended %s after sign-out", d)
	}
	return nil
}

// Limits (§10).

func checkHistoryLimit(k *checker) error {
	c, tok, err := k.streamConn()
	if err != nil {
		return err
	}
	defer c.close()
	from, _, err := ownAccounts(c, tok)
	if err != nil {
		return err
	}
	req := wire.HistoryRequest{SessionRequest: wire.SessionRequest{Session: tok}, Number: from.Number, Limit: limits.HistoryMaxPage}
	if err := c.call(wire.OpAccountHistory, req, &wire.HistoryResponse{}); err != nil {
		return fmt.Errorf("limit %d: %w", req.Limit, err)
	}
	req.Limit++
	return wantCode(c.call(wire.OpAccountHistory, req, &wire.HistoryResponse{}), wire.InvalidArgument, "limit")
}

func (k *checker) conversation(c *conn, tok string) (int64, error) {
	var conv wire.ConversationResponse
	if err := c.call(wire.OpChatOpen, wire.ChatOpenRequest{SessionRequest: wire.SessionRequest{Session: tok}, Username: k.cfg.Peer}, &conv); err != nil {
		return 0, fmt.Errorf("open a chat with %s: %w", k.cfg.Peer, err)
	}
	return conv.Conversation.ID, nil
}

func checkChatLimit(k *checker) error {
	c, tok, err := k.streamConn()
	if err != nil {
		return err
	}
	defer c.close()
	conv, err := k.conversation(c, tok)
	if err != nil {
		return err
	}
	req := wire.ChatHistoryRequest{SessionRequest: wire.SessionRequest{Session: tok}, ConversationID: conv}
	for _, n := range []int{1, limits.ChatDefaultPage, limits.ChatMaxPage} {
		req.Limit = n
		if err := c.call(wire.OpChatHistory, req, &wire.ChatHistoryResponse{}); err != nil {
			return fmt.Errorf("limit %d: %w", n, err)
		}
	}
	req.Limit = limits.ChatMaxPage + 1
	return wantCode(c.call(wire.OpChatHistory, req, &wire.ChatHistoryResponse{}), wire.InvalidArgument, "limit")
}

func checkMemoLimit(k *checker) error {
	c, tok, err := k.streamConn()
	if err != nil {
		return err
	}
	defer c.close()
	from, to, err := ownAccounts(c, tok)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("conform-memo-%d", time.Now().UnixNano())
	req := wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: tok}, IdempotencyKey: key + "-over",
		From: from.Number, To: to.Number, Amount: "0.01", Memo: strings.Repeat("é", limits.MaxMemoLen+1)}
	if err := wantCode(c.call(wire.OpTransferCreate, req, &wire.TransferResponse{}), wire.InvalidArgument, "memo"); err != nil {
		return fmt.Errorf("memo of %d characters: %w", limits.MaxMemoLen+1, err)
	}
	req.IdempotencyKey, req.Memo = key, strings.Repeat("é", limits.MaxMemoLen)
	if err := c.call(wire.OpTransferCreate, req, &wire.TransferResponse{}); err != nil {
		return fmt.Errorf("memo of %d characters: %w", limits.MaxMemoLen, err)
	}
	return nil
}

func checkMessageLimit(k *checker) error {
	c, tok, err := k.streamConn()
	if err != nil {
		return err
	}
	defer c.close()
	conv, err := k.conversation(c, tok)
	if err != nil {
		return err
	}
	req := wire.ChatSendRequest{SessionRequest: wire.SessionRequest{Session: tok}, ConversationID: conv, Body: strings.Repeat("ü", limits.MaxMessageLen+1)}
	if err := wantCode(c.call(wire.OpChatSend, req, &wire.MessageResponse{}), wire.InvalidArgument, "body"); err != nil {
		return fmt.Errorf("%d characters: %w", limits.MaxMessageLen+1, err)
	}
	req.Body = strings.Repeat("ü", limits.MaxMessageLen)
	if err := c.call(wire.OpChatSend, req, &wire.MessageResponse{}); err != nil {
		return fmt.Errorf("%d characters: %w", limits.MaxMessageLen, err)
	}
	return nil
}

func checkIdleTimeout(k *checker) error {
	if !k.cfg.Slow {
		return skip("waits idle_timeout_ms; run with -slow")
	}
	c, err := k.ready()
	if err != nil {
		return err
	}
	defer c.close()
	d := time.Duration(c.hello.IdleTimeoutMs) * time.Millisecond
	return c.expectFatal(wire.IdleTimeout, d+5*time.Second)
}

func checkDrain(k *checker) error {
	if k.cfg.Drain == nil {
		return skip("no way to make the server drain (-drain-cmd)")
	}
	c, tok, err := k.streamConn()
	if err != nil {
		return err
	}
	defer c.close()
	stream, err := subscribe(c, tok, 0)
	if err != nil {
		return err
	}
	if err := k.cfg.Drain(); err != nil {
		return err
	}
	var drained bool
	var lastID uint32
	streamEnded := false
	deadline := time.Now().Add(15 * time.Second)
	for {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			return fmt.Errorf("before FATAL SHUTTING_DOWN (DRAIN seen %v, stream ended %v): %w", drained, streamEnded, err)
		}
		switch {
		case f.typ == tDrain:
			if len(f.payload) != 4 || f.id != 0 {
				return fmt.Errorf("malformed %s", f)
			}
			drained = true
			lastID = uint32(f.payload[0])<<24 | uint32(f.payload[1])<<16 | uint32(f.payload[2])<<8 | uint32(f.payload[3])
			if lastID < stream {
				return fmt.Errorf("DRAIN last_id %d is below the open stream's id %d", lastID, stream)
			}
		case f.typ == tError && f.id == stream:
			e, err := wire.ParseError(f.payload)
			if err != nil {
				return err
			}
			if e.Code != wire.Unavailable {
				return fmt.Errorf("stream ended %s %q on drain, want UNAVAILABLE", e.Code, e.Message)
			}
			streamEnded = true
		case f.typ == tEvent:
		case f.typ == tFatal:
			e, err := wire.ParseFatal(f.payload)
			if err != nil {
				return err
			}
			if e.Code != wire.ShuttingDown {
				return fmt.Errorf("FATAL %s, want SHUTTING_DOWN", e.Code)
			}
			if !drained || !streamEnded {
				return fmt.Errorf("FATAL SHUTTING_DOWN before DRAIN (%v) or the stream's end (%v)", drained, streamEnded)
			}
			return c.expectEOF()
		default:
			return fmt.Errorf("unexpected %s during drain", f)
		}
	}
}
