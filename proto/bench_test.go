package proto_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"bankwire/proto"
)

// The benchmarks compare the protocol with the simplest thing that could
// work: a raw TCP echo of length-prefixed messages (u32 length + bytes),
// carrying the protocol's body bytes with no framing header, no body
// encoding and no multiplexing. Both run in the same benchmark function on
// the same machine at the same moment, so the ratio survives a noisy,
// shared CPU better than absolute numbers do.
//
//	go test -run '^$' -bench . -benchmem -benchtime 20000x ./proto/

// benchMsg is a realistic small request: about the size of a sign-in.
var benchMsg = echoMsg{N: 42, Text: "alice|correct horse battery staple|203.0.113.7"}

// startRawEcho serves length-prefixed echo until the test ends.
func startRawEcho(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				buf := make([]byte, 4+64<<10)
				for {
					if _, err := io.ReadFull(br, buf[:4]); err != nil {
						return
					}
					n := binary.BigEndian.Uint32(buf[:4])
					if int(n) > len(buf)-4 {
						return
					}
					if _, err := io.ReadFull(br, buf[4:4+n]); err != nil {
						return
					}
					if _, err := nc.Write(buf[:4+n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// rawEchoClient does blocking round trips on one connection.
type rawEchoClient struct {
	nc  net.Conn
	br  *bufio.Reader
	out []byte
	in  []byte
}

func dialRawEcho(b *testing.B, addr string, msg []byte) *rawEchoClient {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	out := binary.BigEndian.AppendUint32(nil, uint32(len(msg)))
	return &rawEchoClient{nc: nc, br: bufio.NewReader(nc), out: append(out, msg...), in: make([]byte, len(out)+len(msg))}
}

func (r *rawEchoClient) roundTrip(b *testing.B) {
	if _, err := r.nc.Write(r.out); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(r.br, r.in[:len(r.out)]); err != nil {
		b.Fatal(err)
	}
}

func benchServerAndClient(b *testing.B, conns int) *proto.Client {
	srv := startServer(b, proto.ServerConfig{MaxInFlight: 1024}, newFixture().mux())
	c := newClient(b, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: conns})
	if _, err := proto.Call(context.Background(), c, mEcho, benchMsg); err != nil { // dial outside the timing
		b.Fatal(err)
	}
	return c
}

// rounds interleaves the baseline and the protocol in alternating slices of
// b.N, so that both see the same background noise on a shared machine.
const rounds = 10

// interleave runs raw(n) and proto(n) alternately for b.N iterations each
// and returns the total time of each.
func interleave(b *testing.B, raw, proto func(n int)) (rawDur, protoDur time.Duration) {
	left := b.N
	for r := 0; r < rounds && left > 0; r++ {
		n := b.N / rounds
		if r == rounds-1 || n == 0 {
			n = left
		}
		left -= n
		start := time.Now()
		raw(n)
		rawDur += time.Since(start)
		start = time.Now()
		proto(n)
		protoDur += time.Since(start)
	}
	return rawDur, protoDur
}

// BenchmarkSequential: one caller, one connection, one round trip at a time.
func BenchmarkSequential(b *testing.B) {
	msg := encode(benchMsg) // the raw echo carries the same body bytes
	raw := dialRawEcho(b, startRawEcho(b), msg)
	c := benchServerAndClient(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	rawDur, protoDur := interleave(b,
		func(n int) {
			for i := 0; i < n; i++ {
				raw.roundTrip(b)
			}
		},
		func(n int) {
			for i := 0; i < n; i++ {
				if _, err := proto.Call(ctx, c, mEcho, benchMsg); err != nil {
					b.Fatal(err)
				}
			}
		})
	report(b, rawDur, protoDur)
}

// BenchmarkConcurrent64: 64 callers through one client (its default two
// multiplexed connections) against 64 raw echo connections, one per caller.
func BenchmarkConcurrent64(b *testing.B) {
	const callers = 64
	msg := encode(benchMsg) // the raw echo carries the same body bytes
	addr := startRawEcho(b)
	raws := make([]*rawEchoClient, callers)
	for i := range raws {
		raws[i] = dialRawEcho(b, addr, msg)
	}
	c := benchServerAndClient(b, 2)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	// Each caller does its share; the first n%callers callers do one more.
	share := func(n, g int) int {
		k := n / callers
		if g < n%callers {
			k++
		}
		return k
	}
	rawDur, protoDur := interleave(b,
		func(n int) {
			var wg sync.WaitGroup
			for g := 0; g < callers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := share(n, g); i > 0; i-- {
						raws[g].roundTrip(b)
					}
				}()
			}
			wg.Wait()
		},
		func(n int) {
			var wg sync.WaitGroup
			for g := 0; g < callers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := share(n, g); i > 0; i-- {
						if _, err := proto.Call(ctx, c, mEcho, benchMsg); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	report(b, rawDur, protoDur)
}

func report(b *testing.B, rawDur, protoDur time.Duration) {
	n := float64(b.N)
	rawRate, protoRate := n/rawDur.Seconds(), n/protoDur.Seconds()
	b.ReportMetric(rawRate, "raw-rt/s")
	b.ReportMetric(protoRate, "proto-rt/s")
	b.ReportMetric(protoRate/rawRate, "ratio")
}
