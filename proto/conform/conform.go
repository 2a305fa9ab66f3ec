// Package conform checks a bankwire protocol server against PROTOCOL.md as
// a black box: it connects to the server's address, speaks bytes on the
// socket, and reports one line per check, PASS, FAIL or SKIP, with the
// spec's section number. It uses nothing of the Go client or server (it
// does not import package proto): from package proto/wire only constants
// and the pure encoders and decoders of payloads. The command
// proto/cmd/bankwire-conform runs it.
//
// It needs a customer (Config.User, Config.Password) with two accounts in
// the same currency, such as the demo customer alice, and another
// customer's username (Config.Peer) for the chat checks. It changes the
// bank: it moves 0.01 between the customer's own accounts (twice), sends the
// peer chat messages, and signs sessions in and out. The drain check (§7.3)
// needs a way to make the server drain (Config.Drain), and is skipped
// without one; the idle timeout check (§7.2) waits idle_timeout_ms and runs
// only with Config.Slow.
package conform

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Config says which server to check and how.
type Config struct {
	Addr           string // host:port
	Secret         string // the shared secret
	User, Password string // a customer with two accounts in one currency
	Peer           string // another customer's username
	Slow           bool   // also run checks that wait for the idle timeout
	// Drain makes the server start a graceful shutdown and returns at once
	// (not when the drain ends). It is called once, by the last check. Nil:
	// the drain check is skipped.
	Drain func() error
}

// Summary counts the checks by outcome.
type Summary struct{ Passed, Failed, Skipped int }

// skip is returned by a check that could not be run against this server.
type skip string

func (s skip) Error() string { return string(s) }

// Run runs every check against cfg.Addr and writes a line per check, and a
// summary, to out. The error is for a server it cannot talk to at all.
func Run(ctx context.Context, cfg Config, out io.Writer) (Summary, error) {
	k := &checker{cfg: cfg, out: out}
	c, err := dial(cfg.Addr)
	if err != nil {
		return Summary{}, err
	}
	err = c.handshake(cfg.Secret)
	c.close()
	if err != nil {
		return Summary{}, fmt.Errorf("handshake with %s: %w", cfg.Addr, err)
	}
	for _, ch := range checks() {
		if ctx.Err() != nil {
			return k.sum, ctx.Err()
		}
		k.run(ch)
	}
	fmt.Fprintf(out, "\n%d passed, %d failed, %d skipped\n", k.sum.Passed, k.sum.Failed, k.sum.Skipped)
	return k.sum, nil
}

// Checks is how many checks Run runs.
func Checks() int { return len(checks()) }

type check struct {
	section string // PROTOCOL.md section
	name    string
	fn      func(k *checker) error
}

type checker struct {
	cfg Config
	out io.Writer
	sum Summary
}

func (k *checker) run(ch check) {
	start := time.Now()
	err := ch.fn(k)
	d := time.Since(start).Round(time.Millisecond)
	switch e := err.(type) {
	case nil:
		k.sum.Passed++
		fmt.Fprintf(k.out, "PASS  §%-4s %s (%s)\n", ch.section, ch.name, d)
	case skip:
		k.sum.Skipped++
		fmt.Fprintf(k.out, "SKIP  §%-4s %s: %s\n", ch.section, ch.name, string(e))
	default:
		k.sum.Failed++
		fmt.Fprintf(k.out, "FAIL  §%-4s %s: %v\n", ch.section, ch.name, err)
	}
}

// ready returns a connection past the handshake.
func (k *checker) ready() (*conn, error) {
	c, err := dial(k.cfg.Addr)
	if err != nil {
		return nil, err
	}
	if err := c.handshake(k.cfg.Secret); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}
