// Command bankwire-conform checks a bankwire protocol server against
// PROTOCOL.md, as a black box (package bankwire/proto/cmd/bankwire-conform/conform): it prints
// one line per check, PASS, FAIL or SKIP, with the spec's section number,
// and exits 1 if any check failed, 2 if it could not run at all.
//
//	bankwire-conform -addr 127.0.0.1:12121 -secret "$APPTIER_SECRET" \
//	    -user alice -password alice-demo-pass -peer bob \
//	    [-drain-cmd 'kill -TERM 1234'] [-slow]
//
// It changes the bank it talks to (see package conform): point it at a
// demo or test server. -drain-cmd is a shell command that makes the server
// drain, run once by the last check; without it the drain check is
// skipped. -slow adds the idle timeout check.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"bankwire/proto/cmd/bankwire-conform/conform"
)

func main() {
	var cfg conform.Config
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:12121", "server address host:port")
	// The secret has no printed default: usage text must not show it.
	cfg.Secret = os.Getenv("APPTIER_SECRET")
	flag.Func("secret", "shared secret (default $APPTIER_SECRET)", func(v string) error { cfg.Secret = v; return nil })
	flag.StringVar(&cfg.User, "user", "alice", "a customer with two accounts in one currency")
	flag.StringVar(&cfg.Password, "password", "alice-demo-pass", "that customer's password")
	flag.StringVar(&cfg.Peer, "peer", "bob", "another customer's username, for the chat checks")
	drainCmd := flag.String("drain-cmd", "", "shell command that makes the server drain (run once, last); empty: the drain check is skipped")
	flag.BoolVar(&cfg.Slow, "slow", false, "also run the check that waits for the idle timeout")
	flag.Parse()
	if cfg.Secret == "" {
		fmt.Fprintln(os.Stderr, "bankwire-conform: -secret (or APPTIER_SECRET) is required")
		os.Exit(2)
	}
	if *drainCmd != "" {
		cfg.Drain = func() error {
			out, err := exec.Command("sh", "-c", *drainCmd).CombinedOutput()
			if err != nil {
				return fmt.Errorf("drain command: %w: %s", err, out)
			}
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sum, err := conform.Run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bankwire-conform:", err)
		os.Exit(2)
	}
	if sum.Failed > 0 {
		os.Exit(1)
	}
}
