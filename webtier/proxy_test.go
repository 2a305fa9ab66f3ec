package webtier_test

import (
	"net"
	"sync"
	"testing"
)

// faultProxy is a TCP proxy for fault injection: it forwards connections to
// target, and on command resets every open connection (TCP RST) or
// black-holes the link (bytes, and new connections, are held without an
// answer until Heal, like a network that drops packets and TCP that keeps
// retransmitting them).
type faultProxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	links map[net.Conn]net.Conn // client side → server side (nil while held)
	open  chan struct{}         // closed while the link passes traffic
	done  chan struct{}         // closed by Close
	wg    sync.WaitGroup
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, ln: ln, target: target, links: map[net.Conn]net.Conn{},
		open: make(chan struct{}), done: make(chan struct{})}
	close(p.open)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is where clients connect.
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// wait blocks while the link is black-holed; false once the proxy closes.
func (p *faultProxy) wait() bool {
	select {
	case <-p.gate():
		return true
	case <-p.done:
		return false
	}
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.links[c] = nil
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *faultProxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.drop(client)
	if !p.wait() {
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	if _, ok := p.links[client]; !ok { // reset while dialing
		p.mu.Unlock()
		server.Close()
		return
	}
	p.links[client] = server
	p.mu.Unlock()
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(server, client) }()
	go func() { defer pipes.Done(); p.pipe(client, server) }()
	pipes.Wait()
}

// pipe copies src to dst, holding what it read while the link is
// black-holed. Either side ending ends both.
func (p *faultProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or a reset: either ends the link
			return
		}
	}
}

func (p *faultProxy) drop(client net.Conn) {
	p.mu.Lock()
	server := p.links[client]
	delete(p.links, client)
	p.mu.Unlock()
	client.Close()
	if server != nil {
		server.Close()
	}
}

// Reset ends every open connection with a TCP RST on both sides.
func (p *faultProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, s := range p.links {
		for _, conn := range []net.Conn{c, s} {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close sends RST
				tc.Close()
			}
		}
		delete(p.links, c)
	}
}

// BlackHole holds all traffic and new connections until Heal.
func (p *faultProxy) BlackHole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// Heal lets held traffic through again.
func (p *faultProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// Close stops the proxy and waits for its goroutines.
func (p *faultProxy) Close() {
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		return
	default:
	}
	close(p.done)
	p.mu.Unlock()
	p.ln.Close()
	p.Reset()
	p.wg.Wait()
}
