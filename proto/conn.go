package proto

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"time"

	"bankwire/proto/wire"
)

// frameWriter serialises frames from many goroutines (a server's request
// handlers, a client's callers) onto one connection without a writer
// goroutine: a goroutine appends its frame to buf under mu and, if no one
// is writing to the socket, becomes the flusher: it writes buf outside mu,
// then whatever others appended meanwhile, until buf is empty. The others
// append and return at once.
//
// Invariants:
//   - whenever mu is free and err is nil, buf is empty, or flushing is set,
//     or it holds answers the server's reader flushes before it waits for
//     the peer (flushHold): every appended frame has a goroutine that will
//     write it;
//   - at most maxBuffered bytes wait (plus the frame that crossed the
//     line): appenders block in lock until the flusher made room, or
//     write held bytes out themselves, so a peer that stops reading
//     cannot pin memory. The small frames of write (PING, PONG, CANCEL,
//     refusals) wait only for each other (maxBuffered of them): a reader
//     answering PING must not wait behind requests or answers the peer
//     has not read yet, or two peers busy writing stop reading each other;
//   - every socket write has a write deadline; the first failure is sticky
//     (err), wakes every waiter and closes the connection (onError);
//   - after writeLast nothing more is appended (sealed).
//
// A batched flusher yields the processor before writing (runtime.Gosched),
// so that handler goroutines ready to run append their answers first and
// leave in the same write system call.
type frameWriter struct {
	nc      net.Conn
	timeout time.Duration
	onError func(error) // called once, with the first write error

	mu       sync.Mutex // guards the fields below
	written  sync.Cond  // L is &mu; broadcast after each socket write
	buf      []byte     // frames waiting for the socket
	small    int        // bytes of buf appended by write
	spare    []byte     // the previous write's buffer, reused
	flushing bool       // a goroutine is writing buf out
	sealed   bool       // the last frame was appended (writeLast)
	err      error      // the first write error
}

// maxBuffered bounds the bytes waiting for the socket per connection.
const maxBuffered = 1 << 20

func newFrameWriter(nc net.Conn, timeout time.Duration, onError func(error)) *frameWriter {
	w := &frameWriter{nc: nc, timeout: timeout, onError: onError, buf: make([]byte, 0, 4096), spare: make([]byte, 0, 4096)}
	w.written.L = &w.mu
	return w
}

// errWriterSealed is what lock returns after writeLast: nothing may follow
// a connection's last frame (FATAL, PROTOCOL.md §6.2).
var errWriterSealed = errors.New("proto: connection's last frame already sent")

// lock reserves the buffer. On success the caller appends to w.buf and must
// call unlock; on error nothing is held.
func (w *frameWriter) lock() error { return w.lockFor(false) }

// lockFor is lock for a bulk frame or, if small, for one of write's small
// frames, which waits only while maxBuffered bytes of small frames wait.
func (w *frameWriter) lockFor(small bool) error {
	w.mu.Lock()
	for w.err == nil && (!small && len(w.buf) >= maxBuffered || small && w.small >= maxBuffered) {
		if !w.flushing { // held answers (flushHold) fill it: nobody else will write them
			_ = w.unlockMode(flushNow)
			w.mu.Lock()
			continue
		}
		w.written.Wait()
	}
	err := w.err
	if err == nil && w.sealed {
		err = errWriterSealed
	}
	if err != nil {
		w.mu.Unlock()
	}
	return err
}

// flushMode says how unlockMode writes the buffer out.
type flushMode uint8

const (
	flushBatched flushMode = iota // yield first, for one writer of many
	flushNow                      // write at once, for a writer that is alone
	flushHold                     // leave it buffered: the caller flushes later (inline.go)
)

// unlockMode releases the buffer and, unless another goroutine is already
// flushing (and will pick these bytes up), writes it out.
func (w *frameWriter) unlockMode(mode flushMode) error {
	if mode == flushHold || w.flushing {
		w.mu.Unlock()
		return nil
	}
	w.flushing = true
	if mode == flushBatched {
		w.mu.Unlock()
		runtime.Gosched()
		w.mu.Lock()
	}
	for len(w.buf) > 0 && w.err == nil {
		out := w.buf
		w.buf, w.small = w.spare[:0], 0
		w.mu.Unlock()
		if w.timeout > 0 {
			_ = w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		}
		_, err := w.nc.Write(out)
		w.mu.Lock()
		w.spare = out[:0]
		if cap(out) > 256<<10 {
			w.spare = make([]byte, 0, 4096) // do not pin a big buffer after one big frame
		}
		if err != nil && w.err == nil {
			w.err = err
			if w.onError != nil {
				go w.onError(err) // outside the lock: onError closes the conn
			}
		}
		w.written.Broadcast()
	}
	w.flushing = false
	w.written.Broadcast()
	err := w.err
	w.mu.Unlock()
	return err
}

// waitIdle blocks until everything appended so far has been written or a
// write failed: a goroutine's last frame may be in another's flush.
func (w *frameWriter) waitIdle() {
	w.flush()
	w.mu.Lock()
	for w.err == nil && w.flushing {
		w.written.Wait()
	}
	w.mu.Unlock()
}

// flush writes whatever is buffered unless another goroutine is already
// writing it.
func (w *frameWriter) flush() {
	w.mu.Lock()
	if w.flushing || len(w.buf) == 0 {
		w.mu.Unlock()
		return
	}
	_ = w.unlockMode(flushNow)
}

// beginFrame reserves a header in w.buf and returns its offset; finish it
// with endFrame once the payload has been appended.
func (w *frameWriter) beginFrame() int {
	off := len(w.buf)
	w.buf = append(w.buf, make([]byte, wire.HeaderLen)...)
	return off
}

func (w *frameWriter) endFrame(off int, t wire.FrameType, flags uint16, id uint32) {
	wire.PutHeader(w.buf[off:], wire.Header{Version: wire.Version, Type: t, Flags: flags, ID: id, Len: uint32(len(w.buf) - off - wire.HeaderLen)})
}

// write sends one small frame (see the invariants on its bound).
func (w *frameWriter) write(t wire.FrameType, flags uint16, id uint32, payload []byte) error {
	if err := w.lockFor(true); err != nil {
		return err
	}
	off := w.beginFrame()
	w.buf = append(w.buf, payload...)
	w.endFrame(off, t, flags, id)
	w.small += len(w.buf) - off
	return w.unlockMode(flushBatched)
}

// writeLast sends the connection's last frame and seals the writer under
// the same lock, so that no frame follows it on the wire. It does nothing
// if the writer was already sealed or failed.
func (w *frameWriter) writeLast(t wire.FrameType, payload []byte) {
	if w.lock() != nil {
		return
	}
	off := w.beginFrame()
	w.buf = append(w.buf, payload...)
	w.endFrame(off, t, 0, 0)
	w.sealed = true
	_ = w.unlockMode(flushNow)
}

// clockBase anchors the client's clock readings: monoNow is time.Now with
// one clock reading instead of two (not for display), monoNanos the same as
// nanoseconds since clockBase (for atomics), monoTime its inverse.
var clockBase = time.Now()

func monoNow() time.Time         { return clockBase.Add(time.Since(clockBase)) }
func monoNanos() int64           { return int64(time.Since(clockBase)) }
func monoTime(n int64) time.Time { return clockBase.Add(time.Duration(n)) }

// frameBuffered reports whether br already holds a whole frame, so reading
// it cannot block.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < wire.HeaderLen {
		return false
	}
	h, err := br.Peek(wire.HeaderLen)
	return err == nil && uint64(n) >= wire.HeaderLen+uint64(binary.BigEndian.Uint32(h[8:12]))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

type traceKey struct{}

// WithTraceID returns a context carrying id as the trace id of requests made
// with it (client side). The id travels in every REQUEST (at most
// MaxTraceID bytes) and shows up in the server's log records.
func WithTraceID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, traceKey{}, id)
}

// TraceID returns the trace id in ctx: inside a handler, the id the caller
// sent with the request; on the client side, the one set by WithTraceID.
func TraceID(ctx context.Context) string {
	s, _ := ctx.Value(traceKey{}).(string)
	return s
}

// lingerTimeout bounds how long a closing side keeps reading (and
// discarding) after its last frame, so that its close does not become a TCP
// reset that destroys frames the peer has not read yet.
const lingerTimeout = time.Second

// linger reads r, nc's reader, until the peer closes or lingerTimeout
// passes.
func linger(nc net.Conn, r io.Reader) {
	_ = nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
}

func closeWrite(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
