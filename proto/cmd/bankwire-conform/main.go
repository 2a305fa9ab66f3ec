// Command bankwire-conform checks a bankwire protocol server against
// PROTOCOL.md, as a black box: it connects to the server's address, speaks
// bytes on the socket, and prints one line per check, PASS, FAIL or SKIP,
// with the spec's section number. It exits 1 if any check failed (2 if it
// could not run at all), so it can gate CI and serve anyone writing a
// server in another language.
//
//	bankwire-conform -addr 127.0.0.1:12121 -secret "$APPTIER_SECRET" \
//	    -user alice -password alice-demo-pass -peer bob \
//	    [-drain-cmd 'kill -TERM 1234']
//
// It needs a demo customer (-user, -password) with a checking and a savings
// account in the same currency, and another customer's username (-peer)
// for the chat checks. It changes the bank: it moves 0.01 between the
// user's own accounts, sends the peer chat messages, and signs sessions in
// and out. The drain checks (§7.3) need a way to make the server drain:
// -drain-cmd, a shell command run once, last (SIGTERM to the server, say);
// without it they are reported as SKIP. -slow adds the idle timeout check
// (§7.2), which waits idle_timeout_ms.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

func main() {
	cfg := config{}
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:12121", "server address host:port")
	flag.StringVar(&cfg.secret, "secret", os.Getenv("APPTIER_SECRET"), "shared secret (default $APPTIER_SECRET)")
	flag.StringVar(&cfg.user, "user", "alice", "demo customer's username")
	flag.StringVar(&cfg.password, "password", "alice-demo-pass", "demo customer's password")
	flag.StringVar(&cfg.peer, "peer", "bob", "another customer's username, for the chat checks")
	drainCmd := flag.String("drain-cmd", "", "shell command that makes the server drain (run once, last); empty: drain checks are skipped")
	flag.BoolVar(&cfg.slow, "slow", false, "also run checks that wait for the idle timeout")
	flag.Parse()
	if cfg.secret == "" {
		fmt.Fprintln(os.Stderr, "bankwire-conform: -secret (or APPTIER_SECRET) is required")
		os.Exit(2)
	}
	if *drainCmd != "" {
		cfg.drain = func() error {
			out, err := exec.Command("sh", "-c", *drainCmd).CombinedOutput()
			if err != nil {
				return fmt.Errorf("drain command: %w: %s", err, out)
			}
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sum, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bankwire-conform:", err)
		os.Exit(2)
	}
	if sum.failed > 0 {
		os.Exit(1)
	}
}

type config struct {
	addr, secret         string
	user, password, peer string
	slow                 bool
	drain                func() error // nil: drain checks are skipped
}

type summary struct{ passed, failed, skipped int }

// skip is returned by a check that could not be run against this server.
type skip string

func (s skip) Error() string { return string(s) }

// run runs every check against cfg.addr and writes a line per check to out.
// The error is for a server it cannot talk to at all.
func run(ctx context.Context, cfg config, out io.Writer) (summary, error) {
	k := &checker{cfg: cfg, out: out}
	c, err := dial(cfg.addr)
	if err != nil {
		return summary{}, err
	}
	err = c.handshake(cfg.secret)
	c.close()
	if err != nil {
		return summary{}, fmt.Errorf("handshake with %s: %w", cfg.addr, err)
	}
	for _, ch := range checks() {
		if ctx.Err() != nil {
			return k.sum, ctx.Err()
		}
		k.run(ch)
	}
	fmt.Fprintf(out, "\n%d passed, %d failed, %d skipped\n", k.sum.passed, k.sum.failed, k.sum.skipped)
	return k.sum, nil
}

type check struct {
	section string // PROTOCOL.md section
	name    string
	fn      func(k *checker) error
}

type checker struct {
	cfg config
	out io.Writer
	sum summary
}

func (k *checker) run(ch check) {
	start := time.Now()
	err := ch.fn(k)
	d := time.Since(start).Round(time.Millisecond)
	switch e := err.(type) {
	case nil:
		k.sum.passed++
		fmt.Fprintf(k.out, "PASS  §%-4s %s (%s)\n", ch.section, ch.name, d)
	case skip:
		k.sum.skipped++
		fmt.Fprintf(k.out, "SKIP  §%-4s %s: %s\n", ch.section, ch.name, string(e))
	default:
		k.sum.failed++
		fmt.Fprintf(k.out, "FAIL  §%-4s %s: %v\n", ch.section, ch.name, err)
	}
}

// ready returns a connection past the handshake.
func (k *checker) ready() (*conn, error) {
	c, err := dial(k.cfg.addr)
	if err != nil {
		return nil, err
	}
	if err := c.handshake(k.cfg.secret); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}
