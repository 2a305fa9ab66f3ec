package proto

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"time"

	"bankwire/proto/wire"
)

// frameWriter serialises frames from many goroutines onto one connection
// and coalesces them without a writer goroutine ("flush combining"): a
// goroutine appends its frame to a shared buffer under a mutex; if nobody is
// writing to the socket it becomes the flusher and writes the buffer outside
// the mutex, then keeps writing whatever other goroutines appended meanwhile
// until the buffer is empty. Other goroutines append and return at once.
// Under load, many frames leave in one write system call; alone, a frame is
// written by its own goroutine with no hand-off.
//
// Memory is bounded: appenders wait while maxBuffered bytes are pending.
// Every write runs under a write deadline, so a peer that stops reading
// makes it fail within the write timeout; the failure is sticky, wakes
// every waiter and closes the connection (onError), which ends its reader.
type frameWriter struct {
	nc      net.Conn
	timeout time.Duration
	onError func(error) // called once, with the first write error

	mu       sync.Mutex
	drained  sync.Cond // signalled after each socket write
	buf      []byte    // frames waiting to be written
	spare    []byte    // the previous write's buffer, reused
	flushing bool
	sealed   bool // the last frame was appended (writeLast); lock fails from then on
	err      error
	wdl      time.Time // write deadline armed on nc (only the flusher touches it)
}

// clockBase anchors monoNow.
var clockBase = time.Now()

// monoNow is time.Now for deadlines and durations with one clock reading
// instead of two: time.Now reads the wall clock and the monotonic clock,
// time.Since only the monotonic one, and on a virtual machine each reading
// costs about 30 ns (a round trip reads the clock several times). Its wall
// clock part follows the monotonic clock since the process started, so it
// is not for display.
func monoNow() time.Time { return clockBase.Add(time.Since(clockBase)) }

// monoNanos is monoNow as nanoseconds since clockBase, for atomics.
func monoNanos() int64 { return int64(time.Since(clockBase)) }

// monoTime turns monoNanos back into a time.
func monoTime(n int64) time.Time { return clockBase.Add(time.Duration(n)) }

// maxBuffered bounds the bytes waiting for the socket per connection.
const maxBuffered = 1 << 20

func newFrameWriter(nc net.Conn, timeout time.Duration, onError func(error)) *frameWriter {
	w := &frameWriter{nc: nc, timeout: timeout, onError: onError, buf: make([]byte, 0, 4096), spare: make([]byte, 0, 4096)}
	w.drained.L = &w.mu
	return w
}

// lock reserves the buffer. On success the caller appends to w.buf and must
// call unlock; on error nothing is held.
func (w *frameWriter) lock() error {
	w.mu.Lock()
	for w.err == nil && len(w.buf) >= maxBuffered {
		w.drained.Wait()
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if w.sealed {
		w.mu.Unlock()
		return errWriterSealed
	}
	return nil
}

// errWriterSealed is what lock returns after writeLast: nothing may follow
// a connection's last frame (FATAL, PROTOCOL.md §6.2).
var errWriterSealed = errors.New("proto: connection's last frame already sent")

// writeLast sends the connection's last frame: under the same lock that
// appends it, the writer is sealed, so a frame another goroutine tries to
// append afterwards (a handler's answer racing a FATAL) is refused instead
// of following it on the wire. Frames appended before it still go out,
// before it. It reports false if the writer was already sealed or failed.
func (w *frameWriter) writeLast(t wire.FrameType, payload []byte) bool {
	if err := w.lock(); err != nil {
		return false
	}
	off := w.beginFrame()
	w.buf = append(w.buf, payload...)
	w.endFrame(off, t, 0, 0)
	w.sealed = true
	return w.unlockMode(flushNow) == nil
}

// flushMode says what unlockMode does with the buffer.
type flushMode uint8

const (
	// flushBatched yields before writing, so that goroutines ready to run
	// (other handlers, other callers) append their frames first: under
	// load many small writes become one. For writers that are one of
	// many.
	flushBatched flushMode = iota
	// flushNow writes at once. For a writer that is alone (the only call
	// in flight, an inline handler): yielding would gain nothing, and on
	// an idle machine it costs a wake-up of another core.
	flushNow
	// flushHold leaves the frame in the buffer: the caller promises a
	// later flush (or unlock) that sends it.
	flushHold
)

// unlock releases the buffer and, unless another goroutine is already
// flushing (and will pick these bytes up), writes it out, batched.
func (w *frameWriter) unlock() error { return w.unlockMode(flushBatched) }

// unlockMode releases the buffer and writes it out as mode says.
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
		w.buf = w.spare[:0]
		w.mu.Unlock()
		w.armDeadline()
		_, err := w.nc.Write(out)
		w.mu.Lock()
		if cap(out) <= 4*maxBuffered {
			w.spare = out[:0]
		} else {
			w.spare = make([]byte, 0, 4096) // do not pin a huge buffer after one big frame
		}
		if err != nil && w.err == nil {
			w.err = err
			if w.onError != nil {
				go w.onError(err) // outside the lock: onError closes the conn
			}
		}
		w.drained.Broadcast()
	}
	w.flushing = false
	w.drained.Broadcast()
	err := w.err
	w.mu.Unlock()
	return err
}

// flush writes whatever is buffered unless another goroutine is already
// writing it.
func (w *frameWriter) flush() error {
	w.mu.Lock()
	if w.flushing || len(w.buf) == 0 {
		err := w.err
		w.mu.Unlock()
		return err
	}
	return w.unlockMode(flushNow)
}

// armDeadline makes sure the next write fails within w.timeout if the peer
// stops reading. Moving a deadline costs a runtime timer update (and can
// wake a sleeping thread), so it is re-armed only when less than half the
// timeout is left: a write then has between timeout/2 and timeout.
func (w *frameWriter) armDeadline() {
	if w.timeout <= 0 {
		return
	}
	if time.Until(w.wdl) >= w.timeout/2 { // one clock reading: wdl is monotonic
		return
	}
	w.wdl = monoNow().Add(w.timeout)
	_ = w.nc.SetWriteDeadline(w.wdl)
}

// waitIdle blocks until everything appended so far has been written (or a
// write failed). A goroutine about to close the connection calls it, since
// its own last frame may be in the hands of another goroutine's flush, or
// held in the buffer. Bounded by the write timeout.
func (w *frameWriter) waitIdle() {
	w.flush()
	w.mu.Lock()
	for w.err == nil && (w.flushing || len(w.buf) > 0) {
		w.drained.Wait()
	}
	w.mu.Unlock()
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

// write sends one complete frame.
func (w *frameWriter) write(t wire.FrameType, flags uint16, id uint32, payload []byte) error {
	if err := w.lock(); err != nil {
		return err
	}
	off := w.beginFrame()
	w.buf = append(w.buf, payload...)
	w.endFrame(off, t, flags, id)
	return w.unlock()
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// traceKey is the context key of the caller's trace id.
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

// closeWriter is implemented by *net.TCPConn and *tls.Conn.
type closeWriter interface{ CloseWrite() error }

// lingerTimeout bounds how long a closing side keeps reading (and
// discarding) after it sent its last frame, so that its close does not
// become a TCP reset that destroys frames the peer has not read yet.
const lingerTimeout = time.Second
