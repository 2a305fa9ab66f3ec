// Command bankwire-load puts the bank under load through its web site, as
// many browsers would: it signs up its own customers, funds them from the
// demo customers, and then runs a weighted mix of sign-ups, sign-ins,
// overviews, history pages, transfers (form, confirmation, result, with
// the form's idempotency key), payee changes, chat messages (timed until
// the other customer's live stream brings them) and sign-outs.
//
// By default it is an open model: operations start on a schedule at a
// target rate (constant, or a ramp), whatever the site's answers, and each
// latency runs from the operation's intended start, so a slow site cannot
// hide its slowness by slowing the generator down. -users N switches to a
// closed model: N users, each waiting for its answer and a think time.
//
// It shows progress while it runs and ends with a report per operation
// (count, errors by kind, p50/p90/p99/p99.9/max from an HDR histogram,
// achieved against target rate), optionally as JSON and as a
// self-contained HTML page, and with a money check done through the site:
// the generator's customers together hold what they were sent, and every
// acknowledged transfer is in both accounts' histories exactly once.
//
// The web tier's per-IP limits stay on: every customer's requests carry
// its own client address in X-Forwarded-For (from 198.18.0.0/15, the
// benchmarking range), which a web tier believes only from a trusted proxy
// (WEBTIER_TRUSTED_PROXIES).
//
// Every flag can also be set in the environment as LOAD_ and the flag's
// name in capitals with '_' for '-', for example LOAD_TARGET.
//
// Exit status: 0 done, 1 the run could not be done, 2 bad usage, 3 the
// money check failed, 4 more errors than -max-error-rate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, term.IsTerminal(int(os.Stdout.Fd())))
	stop()
	os.Exit(code)
}

// options are the command's settings beyond the run's Config.
type options struct {
	jsonPath, htmlPath string
	progress           string
	maxErrorRate       float64
}

func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (Config, options, error) {
	cfg := DefaultConfig()
	opt := options{progress: "auto", maxErrorRate: -1}
	fs := flag.NewFlagSet("bankwire-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Target, "target", cfg.Target, "the site's base URL")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "open model: operations started per second (where a ramp starts)")
	fs.Float64Var(&cfg.RampTo, "ramp-to", cfg.RampTo, "open model: rise linearly from -rate to this rate over the run (0: constant)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long operations are started")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "closed model: this many users, each waiting for its answer (0: open model)")
	fs.DurationVar(&cfg.Think, "think", cfg.Think, "closed model: mean think time between a user's operations")
	fs.IntVar(&cfg.Customers, "customers", cfg.Customers, "customers signed up and funded before the run")
	fs.IntVar(&cfg.Listeners, "listeners", cfg.Listeners, "customers receiving chat on their live stream")
	mix := fs.String("mix", DefaultMix, "operation weights: signup, signin, overview, history, transfer, payee, chat, signout")
	fund := fs.String("fund", formatMinor(cfg.Fund), "amount sent to each customer before the run")
	funders := fs.String("funders", "alice:alice-demo-pass,bob:bob-demo-pass", "username:password,... of the customers who send it")
	fs.Float64Var(&cfg.Overdraft, "overdraft", cfg.Overdraft, "share of transfers asking for more than the balance")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "timeout of one HTTP request")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight", cfg.MaxInFlight, "open model: operations running at once at most (later ones wait, and their wait counts)")
	fs.BoolVar(&cfg.Check, "check", cfg.Check, "check the money at the end")
	fs.StringVar(&opt.jsonPath, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&opt.htmlPath, "html", "", "also write the report as a self-contained HTML page to this file")
	fs.StringVar(&opt.progress, "progress", opt.progress, "auto, bar, lines or off")
	fs.Float64Var(&opt.maxErrorRate, "max-error-rate", opt.maxErrorRate, "exit 4 when a larger share of operations failed (negative: never)")

	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := "LOAD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := strings.TrimSpace(getenv(name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return cfg, opt, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, opt, err
	}
	if fs.NArg() > 0 {
		return cfg, opt, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if cfg.Mix, err = parseMix(*mix); err != nil {
		return cfg, opt, err
	}
	f := strings.TrimSpace(*fund)
	if !strings.Contains(f, ".") {
		f += ".00"
	}
	if cfg.Fund, err = parseMoney(f); err != nil {
		return cfg, opt, fmt.Errorf("fund: %w", err)
	}
	cfg.Funders = nil
	for _, part := range strings.Split(*funders, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		u, p, ok := strings.Cut(part, ":")
		if !ok || u == "" || p == "" {
			return cfg, opt, fmt.Errorf("funders: %q is not username:password", u)
		}
		cfg.Funders = append(cfg.Funders, Credential{u, p})
	}
	switch opt.progress {
	case "auto", "bar", "lines", "off":
	default:
		return cfg, opt, fmt.Errorf("progress %q: want auto, bar, lines or off", opt.progress)
	}
	return cfg, opt, cfg.validate()
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, tty bool) int {
	cfg, opt, err := parseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the usage asked for, already written
	}
	if err != nil {
		fmt.Fprintf(stderr, "bankwire-load: %v\n", err)
		return 2
	}
	var prog progress
	switch {
	case opt.progress == "bar" || opt.progress == "auto" && tty:
		prog = newBarProgress(stdout, cfg.Duration)
	case opt.progress != "off":
		prog = &lineProgress{w: stdout, total: cfg.Duration, every: 5}
	}
	fmt.Fprintf(stdout, "bankwire-load: signing up %d customers and %d listeners at %s\n", cfg.Customers, cfg.Listeners, cfg.Target)
	var tick func(live)
	if prog != nil {
		tick = prog.update
	}
	_, rep, err := run(ctx, cfg, nil, tick)
	switch {
	case prog == nil:
	case rep == nil:
		prog.abort()
	default:
		prog.done()
	}
	if rep == nil {
		fmt.Fprintf(stderr, "bankwire-load: %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "bankwire-load: stopped early: %v\n", err)
	}
	fmt.Fprintln(stdout)
	if werr := writeText(stdout, rep); werr != nil {
		fmt.Fprintf(stderr, "bankwire-load: %v\n", werr)
		return 1
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer, *Report) error
	}{{opt.jsonPath, writeJSON}, {opt.htmlPath, writeHTML}} {
		if out.path == "" {
			continue
		}
		if werr := writeFile(out.path, rep, out.write); werr != nil {
			fmt.Fprintf(stderr, "bankwire-load: %v\n", werr)
			return 1
		}
	}
	switch {
	case rep.Money != nil && !rep.Money.Passed:
		return 3
	case opt.maxErrorRate >= 0 && rep.ErrorRate() > opt.maxErrorRate:
		fmt.Fprintf(stderr, "bankwire-load: %.2f%% of operations failed, more than the %.2f%% allowed\n", 100*rep.ErrorRate(), 100*opt.maxErrorRate)
		return 4
	case err != nil:
		return 1
	}
	return 0
}

func writeFile(path string, rep *Report, write func(io.Writer, *Report) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := write(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	return nil
}
