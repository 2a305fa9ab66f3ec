package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// tinyAppTier serves just what the terminal client uses, with one demo
// customer, so the client is tested against a real protocol server before
// and independently of the real app tier.
func tinyAppTier(t *testing.T) string {
	t.Helper()
	const token = "tok-123"
	auth := func(s string) error {
		if s != token {
			return wire.Errorf(wire.Unauthenticated, "Your session has ended. Please sign in again.")
		}
		return nil
	}
	m := proto.NewMux()
	proto.Handle(m, wire.Info, func(ctx context.Context, r *proto.Request, _ wire.InfoRequest) (wire.InfoResponse, error) {
		return wire.InfoResponse{Server: "tiny/1.0", DemoData: true, MinPassword: 8, MaxPassword: 64, DailyLimit: 500000, LimitCurrency: "EUR", IdleTimeoutSec: 900}, nil
	})
	proto.Handle(m, wire.SignIn, func(ctx context.Context, r *proto.Request, in wire.SignInRequest) (wire.SignInResponse, error) {
		if in.Username != "alice" || in.Password != "alice-demo-pass" {
			return wire.SignInResponse{}, wire.Errorf(wire.Unauthenticated, "The username or password is incorrect.")
		}
		return wire.SignInResponse{Token: token, ExpiresAt: time.Now().Add(time.Hour), Customer: wire.Customer{ID: 1, Username: "alice", DisplayName: "Alice"}}, nil
	})
	proto.Handle(m, wire.SessionCheck, func(ctx context.Context, r *proto.Request, in wire.SessionRequest) (wire.SessionResponse, error) {
		return wire.SessionResponse{Customer: wire.Customer{ID: 1, Username: "alice", DisplayName: "Alice"}, ExpiresAt: time.Now().Add(time.Hour)}, auth(in.Session)
	})
	proto.Handle(m, wire.AccountsList, func(ctx context.Context, r *proto.Request, in wire.SessionRequest) (wire.AccountsResponse, error) {
		if err := auth(in.Session); err != nil {
			return wire.AccountsResponse{}, err
		}
		return wire.AccountsResponse{Accounts: []wire.Account{
			{Number: "1000-0001-7", Kind: "checking", Currency: "EUR", Balance: 123456789},
			{Number: "1000-0002-5", Kind: "savings", Currency: "EUR", Balance: -1200},
		}}, nil
	})
	proto.Handle(m, wire.ChatOpen, func(ctx context.Context, r *proto.Request, in wire.ChatOpenRequest) (wire.ConversationResponse, error) {
		if err := auth(in.Session); err != nil {
			return wire.ConversationResponse{}, err
		}
		if in.Username != "bob" {
			return wire.ConversationResponse{}, wire.FieldError(wire.NotFound, "username", "No customer with that username.")
		}
		return wire.ConversationResponse{Conversation: wire.Conversation{ID: 7, With: wire.Customer{ID: 2, Username: "bob"}}}, nil
	})
	proto.Handle(m, wire.ChatSend, func(ctx context.Context, r *proto.Request, in wire.ChatSendRequest) (wire.MessageResponse, error) {
		if err := auth(in.Session); err != nil {
			return wire.MessageResponse{}, err
		}
		if in.ConversationID != 7 || in.Body != "hello there bob" {
			return wire.MessageResponse{}, wire.FieldError(wire.InvalidArgument, "body", "unexpected message "+in.Body)
		}
		return wire.MessageResponse{Message: wire.Message{ID: 1, ConversationID: 7, Body: in.Body, CreatedAt: time.Now()}}, nil
	})
	proto.Handle(m, wire.SignOut, func(ctx context.Context, r *proto.Request, _ wire.SessionRequest) (wire.Empty, error) {
		return wire.Empty{}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proto.NewServer(proto.ServerConfig{Name: "tiny-apptier/1.0", Secret: "s3cret", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, m)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func runCLI(t *testing.T, stdin string, environ map[string]string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, args, strings.NewReader(stdin), &out, &errOut, env(environ))
	return out.String() + errOut.String(), code
}

func TestScriptedSession(t *testing.T) {
	addr := tinyAppTier(t)
	out, code := runCLI(t, "", map[string]string{"APPTIER_ADDR": addr, "APPTIER_SECRET": "s3cret", "BANKWIRE_PASSWORD": "alice-demo-pass"},
		"ping", "info", "signin alice", "whoami", "accounts", "chat bob hello there bob", "quit", "accounts")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"Connected to tiny-apptier/1.0 at " + addr + " (protocol v1",
		"pong in ",
		"daily transfer limit 5,000.00 EUR",
		"signed in as alice (Alice)",
		"alice (Alice), customer 1",
		"1000-0001-7      checking      1,234,567.89 EUR",
		"-12.00 EUR",
		"sent to bob",
		"signed out alice", // quitting ends the session
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "1000-0001-7") != 1 {
		t.Errorf("commands after quit ran:\n%s", out)
	}
}

func TestInteractiveSessionWithTrace(t *testing.T) {
	addr := tinyAppTier(t)
	out, code := runCLI(t, "signin alice alice-demo-pass\nbogus\nchat carol hi\nsignout\n", nil, "-addr", addr, "-secret", "s3cret", "-trace")
	if code != 1 { // "bogus" and the unknown chat partner fail
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"<- HELLO id=0", "-> AUTH id=0", "secret=<6 bytes>", "<- READY id=0",
		"-> REQUEST id=1", `op=signin deadline_ms=`, `body={"username":"alice","password":"[redacted]"`,
		// Answers are decoded by the op of their request.
		"<- RESPONSE id=1", `op=signin body={"token":`,
		"bankwire> ", `unknown command "bogus"`,
		"error: NOT_FOUND: No customer with that username. (username)",
		"signed out alice",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"s3cret"`) {
		t.Errorf("trace shows the secret:\n%s", out)
	}
}

func TestConnectFailures(t *testing.T) {
	addr := tinyAppTier(t)
	out, code := runCLI(t, "", nil, "-addr", addr, "-secret", "wrong", "ping")
	if code != 1 || !strings.Contains(out, "BAD_SECRET") {
		t.Fatalf("wrong secret: exit %d:\n%s", code, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	out, code = runCLI(t, "", nil, "-addr", dead, "ping")
	if code != 1 || !strings.Contains(out, "cannot connect") {
		t.Fatalf("no server: exit %d:\n%s", code, out)
	}
	if _, code := runCLI(t, "", nil, "-nosuchflag"); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
}

func TestCommandErrors(t *testing.T) {
	addr := tinyAppTier(t)
	out, code := runCLI(t, "", map[string]string{"APPTIER_ADDR": addr, "APPTIER_SECRET": "s3cret"},
		"accounts", "signin", "signin alice", "signin alice nope", "chat bob")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"not signed in", "usage: signin USER [PASSWORD]", "no password",
		"UNAUTHENTICATED: The username or password is incorrect.", "usage: chat USER MESSAGE...",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestMoney(t *testing.T) {
	for _, tt := range []struct {
		minor int64
		want  string
	}{
		{0, "0.00 EUR"}, {5, "0.05 EUR"}, {-5, "-0.05 EUR"}, {100, "1.00 EUR"},
		{123456, "1,234.56 EUR"}, {-100000000, "-1,000,000.00 EUR"},
		{math.MaxInt64, "92,233,720,368,547,758.07 EUR"}, {math.MinInt64, "-92,233,720,368,547,758.08 EUR"},
	} {
		if got := money(tt.minor, "EUR"); got != tt.want {
			t.Errorf("money(%d) = %q, want %q", tt.minor, got, tt.want)
		}
	}
}

// Usage text (-h, a mistyped flag) goes to stderr, often a log: it must not
// show the secret taken from the environment.
func TestUsageDoesNotShowSecret(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-nosuchflag"}} {
		out, _ := runCLI(t, "", map[string]string{"APPTIER_SECRET": "s3cret-from-the-environment"}, args...)
		if !strings.Contains(out, "-secret") {
			t.Fatalf("%v: no usage text:\n%s", args, out)
		}
		if strings.Contains(out, "s3cret-from-the-environment") {
			t.Errorf("%v: usage shows the secret:\n%s", args, out)
		}
	}
}
