// Command bankwire-cli is the terminal client of the bankwire protocol, the
// walkthrough's client program grown up: it connects to an app tier, prints
// the server's greeting, then runs commands given as arguments (one command
// per argument) or typed at a prompt.
//
//	bankwire-cli -addr localhost:12121 ping "signin alice" accounts "chat bob hello there" quit
//
// Flags (each with an environment variable): -addr (APPTIER_ADDR, default
// localhost:12121), -secret (APPTIER_SECRET), -trace (print every frame).
// The password for signin may come from BANKWIRE_PASSWORD instead of the
// command line, where other users of the machine could see it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run is main without the process: testable with any streams and
// environment. It returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("bankwire-cli", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr(getenv, "APPTIER_ADDR", "localhost:12121"), "app tier address host:port (env APPTIER_ADDR)")
	// The secret has no printed default: usage text must not show it.
	secret := getenv("APPTIER_SECRET")
	fs.Func("secret", "shared secret of the app tier (env APPTIER_SECRET)", func(v string) error { secret = v; return nil })
	trace := fs.Bool("trace", getenv("BANKWIRE_TRACE") != "", "print every protocol frame sent and received (env BANKWIRE_TRACE)")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of each command")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bankwire-cli [flags] [command ...]\n\nEach argument is one command; without arguments, commands are read from standard input.\n\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\ncommands:\n%s", helpText)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	out := &syncWriter{w: stdout}
	cfg := proto.ClientConfig{
		Addrs: []string{*addr}, Secret: secret, Name: "bankwire-cli/1.0",
		ConnsPerAddr: 1, DialTimeout: 3 * time.Second, DefaultTimeout: *timeout,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	if *trace {
		var fd frameDescriber // decodes answers by the op of their request
		cfg.Trace = func(conn string, sent bool, f wire.Frame) {
			dir := "<-"
			if sent {
				dir = "->"
			}
			// A trace is for reading the protocol, not for leaking the
			// password someone signs in with.
			desc := passwordField.ReplaceAllString(fd.describe(conn, f), `"password":"[redacted]"`)
			fmt.Fprintf(out, "  %s %s\n", dir, desc)
		}
	}
	c, err := proto.NewClient(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "bankwire-cli: %v\n", err)
		return 2
	}
	defer c.Close()

	cctx, cancel := context.WithTimeout(ctx, *timeout)
	hello, err := c.Hello(cctx)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "bankwire-cli: cannot connect to %s: %v\n", *addr, err)
		return 1
	}
	fmt.Fprintf(out, "Connected to %s at %s (protocol v%d, max payload %d bytes, %d requests in flight)\n",
		hello.Server, *addr, wire.Version, hello.MaxPayload, hello.MaxInFlight)

	s := &session{c: c, out: out, timeout: *timeout, getenv: getenv}
	defer s.signOutQuietly(ctx)
	status := 0
	if fs.NArg() > 0 {
		for _, line := range fs.Args() {
			quit, err := s.exec(ctx, line)
			if err != nil {
				fmt.Fprintf(out, "error: %v\n", err)
				status = 1
			}
			if quit {
				break
			}
		}
		return status
	}
	sc := bufio.NewScanner(stdin)
	for {
		fmt.Fprint(out, "bankwire> ")
		if !sc.Scan() {
			fmt.Fprintln(out)
			return status
		}
		quit, err := s.exec(ctx, sc.Text())
		if err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
			status = 1
		}
		if quit || ctx.Err() != nil {
			return status
		}
	}
}

const helpText = `  ping                      check that the app tier answers
  info                      show the app tier's facts
  signin USER [PASSWORD]    sign in (password from BANKWIRE_PASSWORD if omitted)
  whoami                    show the signed-in customer
  accounts                  list your accounts and balances
  chat USER MESSAGE...      send a chat message to USER
  signout                   end the session
  help                      this text
  quit                      sign out and close
`

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// session is the state between commands: the signed-in token, if any.
type session struct {
	c       *proto.Client
	out     io.Writer
	timeout time.Duration
	getenv  func(string) string
	token   string
	who     string
}

// errUsage marks a command typed wrongly.
type errUsage string

func (e errUsage) Error() string { return "usage: " + string(e) }

// exec runs one command line and reports whether the user asked to quit.
func (s *session) exec(ctx context.Context, line string) (quit bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	switch cmd, args := strings.ToLower(f[0]), f[1:]; cmd {
	case "quit", "exit", "bye":
		return true, nil
	case "help", "?":
		fmt.Fprint(s.out, helpText)
	case "ping":
		start := time.Now()
		if err := s.c.Ping(ctx); err != nil {
			return false, err
		}
		fmt.Fprintf(s.out, "pong in %s\n", time.Since(start).Round(time.Microsecond))
	case "info":
		info, err := proto.Call(ctx, s.c, wire.Info, wire.InfoRequest{})
		if err != nil {
			return false, err
		}
		fmt.Fprintf(s.out, "server %s; demo data %v; passwords %d-%d characters; daily transfer limit %s; session idle timeout %ds\n",
			info.Server, info.DemoData, info.MinPassword, info.MaxPassword, money(info.DailyLimit, info.LimitCurrency), info.IdleTimeoutSec)
	case "signin", "login":
		if len(args) < 1 || len(args) > 2 {
			return false, errUsage("signin USER [PASSWORD]")
		}
		pass := s.getenv("BANKWIRE_PASSWORD")
		if len(args) == 2 {
			pass = args[1]
		}
		if pass == "" {
			return false, errors.New("no password: give it after the username or set BANKWIRE_PASSWORD")
		}
		out, err := proto.Call(ctx, s.c, wire.SignIn, wire.SignInRequest{Username: args[0], Password: pass,
			ClientInfo: wire.ClientInfo{IP: "127.0.0.1", UserAgent: "bankwire-cli/1.0"}})
		if err != nil {
			return false, err
		}
		s.token, s.who = out.Token, out.Customer.Username
		fmt.Fprintf(s.out, "signed in as %s (%s); session expires %s\n", out.Customer.Username, out.Customer.DisplayName, out.ExpiresAt.Local().Format(time.DateTime))
	case "whoami":
		if err := s.needSession(); err != nil {
			return false, err
		}
		out, err := proto.Call(ctx, s.c, wire.SessionCheck, wire.SessionRequest{Session: s.token})
		if err != nil {
			return false, err
		}
		fmt.Fprintf(s.out, "%s (%s), customer %d; session expires %s\n", out.Customer.Username, out.Customer.DisplayName, out.Customer.ID, out.ExpiresAt.Local().Format(time.DateTime))
	case "accounts":
		if err := s.needSession(); err != nil {
			return false, err
		}
		out, err := proto.Call(ctx, s.c, wire.AccountsList, wire.SessionRequest{Session: s.token})
		if err != nil {
			return false, err
		}
		if len(out.Accounts) == 0 {
			fmt.Fprintln(s.out, "no accounts")
		}
		for _, a := range out.Accounts {
			fmt.Fprintf(s.out, "%-16s %-9s %20s\n", a.Number, a.Kind, money(a.Balance, a.Currency))
		}
	case "chat":
		if len(args) < 2 {
			return false, errUsage("chat USER MESSAGE...")
		}
		if err := s.needSession(); err != nil {
			return false, err
		}
		conv, err := proto.Call(ctx, s.c, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: wire.SessionRequest{Session: s.token}, Username: args[0]})
		if err != nil {
			return false, err
		}
		body := strings.Join(args[1:], " ")
		msg, err := proto.Call(ctx, s.c, wire.ChatSend, wire.ChatSendRequest{SessionRequest: wire.SessionRequest{Session: s.token},
			ConversationID: conv.Conversation.ID, Body: body})
		if err != nil {
			return false, err
		}
		fmt.Fprintf(s.out, "sent to %s at %s\n", conv.Conversation.With.Username, msg.Message.CreatedAt.Local().Format(time.TimeOnly))
	case "signout", "logout":
		if err := s.needSession(); err != nil {
			return false, err
		}
		if _, err := proto.Call(ctx, s.c, wire.SignOut, wire.SessionRequest{Session: s.token}); err != nil {
			return false, err
		}
		fmt.Fprintf(s.out, "signed out %s\n", s.who)
		s.token, s.who = "", ""
	default:
		return false, fmt.Errorf("unknown command %q (try help)", cmd)
	}
	return false, nil
}

func (s *session) needSession() error {
	if s.token == "" {
		return errors.New("not signed in (use signin USER)")
	}
	return nil
}

// signOutQuietly ends a session left open, so quitting leaves no live token.
func (s *session) signOutQuietly(ctx context.Context) {
	if s.token == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := proto.Call(ctx, s.c, wire.SignOut, wire.SessionRequest{Session: s.token}); err == nil {
		fmt.Fprintf(s.out, "signed out %s\n", s.who)
	}
	s.token = ""
}

// money formats minor units with integer arithmetic only: 123456 EUR →
// "1,234.56 EUR".
func money(minor int64, currency string) string {
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-(minor+1))+1 // safe for math.MinInt64
	}
	whole := strconv.FormatUint(u/100, 10)
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return fmt.Sprintf("%s%s.%02d %s", sign, b.String(), u%100, currency)
}

// passwordField matches a JSON password member in a described frame.
var passwordField = regexp.MustCompile(`"password"\s*:\s*"(?:[^"\\]|\\.)*"`)

// syncWriter serialises output from the trace hook (the connection's
// goroutines) and the command loop.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
