package apptier

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"bankwire/proto/wire"
)

// Argon2Params are the argon2id cost parameters. The defaults are OWASP's
// current minimum for argon2id (m=19 MiB, t=2, p=1).
type Argon2Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   uint32
	KeyLen    uint32
}

// DefaultArgon2 is OWASP's recommended minimum configuration.
var DefaultArgon2 = Argon2Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Password length policy (OWASP ASVS 6.2): at least 8, at least 64 allowed,
// no composition rules, no truncation. The upper bound exists only so that a
// megabyte "password" cannot be used to burn CPU; it is far above 64.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords is built once per Hasher from the embedded list; it is
// read-only afterwards.
func loadCommonPasswords() map[string]struct{} {
	set := make(map[string]struct{}, 1024)
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsText))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
}

// Hasher hashes and verifies passwords with argon2id. Hashing costs ~19 MiB
// of memory and tens of milliseconds of CPU, so concurrent hashes are bounded
// by a semaphore sized to the cores: a sign-in flood queues here (and times
// out with its request deadline) instead of exhausting memory or starving
// every other operation.
type Hasher struct {
	params Argon2Params
	sem    chan struct{}
	common map[string]struct{}
	dummy  string // a real hash of a random password, verified for unknown users
	// computed counts argon2id computations, so tests can prove that an
	// unknown username pays for a hash exactly like a wrong password.
	computed atomic.Int64
}

// Computations returns how many argon2id keys this Hasher has derived.
func (h *Hasher) Computations() int64 { return h.computed.Load() }

// NewHasher returns a Hasher; concurrency <= 0 means GOMAXPROCS.
func NewHasher(p Argon2Params, concurrency int) (*Hasher, error) {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, sem: make(chan struct{}, concurrency), common: loadCommonPasswords()}
	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return nil, fmt.Errorf("dummy password: %w", err)
	}
	dummy, err := h.hash(base64.RawStdEncoding.EncodeToString(random))
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// CheckPolicy returns a user-safe INVALID_ARGUMENT error about the field
// "password" when pw breaks the password policy.
func (h *Hasher) CheckPolicy(pw string) error {
	if !utf8.ValidString(pw) || strings.ContainsRune(pw, 0) {
		return wire.FieldError(wire.InvalidArgument, "password", "The password contains characters that are not allowed.")
	}
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen {
		return wire.FieldError(wire.InvalidArgument, "password", fmt.Sprintf("Use at least %d characters (15 or more is better).", MinPasswordLen))
	}
	if n > MaxPasswordLen {
		return wire.FieldError(wire.InvalidArgument, "password", fmt.Sprintf("Use at most %d characters.", MaxPasswordLen))
	}
	if _, ok := h.common[strings.ToLower(pw)]; ok {
		return wire.FieldError(wire.InvalidArgument, "password", "That password is one of the most common passwords; choose another.")
	}
	return nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns the PHC string of pw, waiting for a hashing slot.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.hash(pw)
}

func (h *Hasher) hash(pw string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, h.params.KeyLen)
	h.computed.Add(1)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.MemoryKiB, h.params.Time, h.params.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether pw matches the PHC string phc, in constant time
// with respect to the key. An empty phc (unknown user) is verified against a
// dummy hash so that it costs exactly the same work and always fails.
func (h *Hasher) Verify(ctx context.Context, phc, pw string) (bool, error) {
	known := phc != ""
	if !known {
		phc = h.dummy
	}
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	h.computed.Add(1)
	h.release()
	ok := subtle.ConstantTimeCompare(got, want) == 1
	return ok && known, nil
}

var errBadPHC = errors.New("malformed argon2id hash")

func parsePHC(s string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errBadPHC
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadPHC
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errBadPHC
	}
	if p.MemoryKiB < 8 || p.MemoryKiB > 1<<21 || p.Time < 1 || p.Time > 16 || p.Threads < 1 {
		return p, nil, nil, errBadPHC
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errBadPHC
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadPHC
	}
	return p, salt, key, nil
}
