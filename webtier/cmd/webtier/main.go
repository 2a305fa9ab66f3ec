// Command webtier serves bankwire's web pages and talks to the app tier over
// the bankwire protocol. Configuration comes from WEBTIER_* environment
// variables and flags of the same meaning (webtier -h lists them). Logs are
// JSON on stdout, at WEBTIER_LOG_LEVEL (info, with every request, by default).
//
// "webtier healthcheck" asks a running web tier on this host whether it is
// alive and exits 0 or 1: the container healthcheck of a shell-less image.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"bankwire/webtier"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:])
	}
	cfg, err := webtier.LoadConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		logger.Error("bad configuration", "err", err)
		return 2
	}
	logger = slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := webtier.Run(ctx, cfg, logger); err != nil {
		logger.Error("web tier failed", "err", err)
		return 1
	}
	return 0
}

func healthcheck(args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	addr := fs.String("addr", envOr("WEBTIER_ADDR", ":8080"), "listen address of the web tier to check (WEBTIER_ADDR)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := webtier.Healthcheck(context.Background(), *addr); err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
