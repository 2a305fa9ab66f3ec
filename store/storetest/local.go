package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// localDirPrefix names the temporary directories of local clusters; the
// creating process's pid follows, so a later run can tell abandoned ones.
const localDirPrefix = "bankwire-pg-"

// startLocal initialises and starts a throwaway cluster from the PostgreSQL
// binaries installed on the machine.
func startLocal(ctx context.Context) (*server, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	removeAbandonedClusters()

	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", localDirPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	asUser, err := runAs(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := asUser(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Stdout, initdb.Stderr = logFile, logFile
	if err := initdb.Run(); err != nil {
		logFile.Close()
		out, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, lastLines(string(out), 5))
	}

	// The free port can be taken between our probe and the server's bind;
	// a few attempts make that race harmless.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		srv, err := runLocal(ctx, bin, dir, data, logFile, asUser)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	logFile.Close()
	os.RemoveAll(dir)
	return nil, lastErr
}

// runLocal starts postgres on a free loopback port and waits until it
// accepts connections.
func runLocal(ctx context.Context, bin, dir, data string, logFile *os.File,
	asUser func(context.Context, string, ...string) *exec.Cmd) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Durability settings are off: the cluster lives for one test binary.
	cmd := asUser(context.Background(), filepath.Join(bin, "postgres"),
		"-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	adminURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, adminURL+"&connect_timeout=2")
		if err == nil {
			conn.Close(ctx)
			break
		}
		select {
		case werr := <-exited:
			out, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("postgres exited (%v): %s", werr, lastLines(string(out), 5))
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("postgres did not accept connections within a minute: %w", err)
		}
	}

	admin, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		stop()
		return nil, err
	}
	srv := &server{how: "local", adminURL: adminURL, admin: admin, stop: func() {
		stop()
		logFile.Close()
		os.RemoveAll(dir)
	}}
	if err := srv.prepareTemplate(ctx); err != nil {
		admin.Close()
		srv.stop()
		return nil, err
	}
	return srv, nil
}

// postgresBinDir finds a directory holding initdb and postgres: PATH
// first, then the newest /usr/lib/postgresql/*/bin (Debian's layout).
func postgresBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no initdb on PATH or in /usr/lib/postgresql/*/bin")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// runAs returns how to run a PostgreSQL program. PostgreSQL refuses to run
// as root, so as root it runs as the "postgres" user (through setpriv, else
// runuser) and dir is handed to that user. In both cases the server gets a
// parent-death signal, so it cannot outlive a test binary that crashes.
func runAs(dir string) (func(context.Context, string, ...string) *exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return func(ctx context.Context, name string, args ...string) *exec.Cmd {
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Dir = dir
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
			return cmd
		}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New(`running as root and there is no "postgres" user to run PostgreSQL as`)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	if setpriv, err := exec.LookPath("setpriv"); err == nil {
		return func(ctx context.Context, name string, args ...string) *exec.Cmd {
			// setpriv sets the death signal after changing user; a signal set
			// by Go here would be cleared by that change.
			full := append([]string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups",
				"--pdeathsig=SIGQUIT", "--", name}, args...)
			cmd := exec.CommandContext(ctx, setpriv, full...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HOME="+dir, "USER=postgres", "LOGNAME=postgres")
			return cmd
		}, nil
	}
	if runuser, err := exec.LookPath("runuser"); err == nil {
		return func(ctx context.Context, name string, args ...string) *exec.Cmd {
			cmd := exec.CommandContext(ctx, runuser, append([]string{"-u", "postgres", "--", name}, args...)...)
			cmd.Dir = dir
			return cmd
		}, nil
	}
	return nil, errors.New("running as root and neither setpriv nor runuser is available to drop to the postgres user")
}

// removeAbandonedClusters deletes the directories of local clusters whose
// test binary has died without cleaning up.
func removeAbandonedClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), localDirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), localDirPrefix)
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
