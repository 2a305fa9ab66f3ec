package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Domain errors. Methods wrap them with %w, so test with errors.Is. Their
// texts are safe to show to a person.
var (
	ErrNotFound            = errors.New("not found")
	ErrAlreadyExists       = errors.New("already exists")
	ErrInsufficientFunds   = errors.New("insufficient funds")
	ErrDailyLimit          = errors.New("daily transfer limit exceeded")
	ErrCurrencyMismatch    = errors.New("accounts have different currencies")
	ErrSameAccount         = errors.New("cannot transfer to the same account")
	ErrIdempotencyConflict = errors.New("idempotency key already used for a different transfer")
	ErrInvalidInput        = errors.New("invalid input")
	ErrKeyVoided           = errors.New("idempotency key was closed without a transfer")
	ErrInternal            = errors.New("internal error")

	// ErrUnavailable: the database could not be reached or lost the
	// connection (refused, reset, shut down, read-only after a failover,
	// or no answer to COMMIT). For a write the outcome is unknown; a retry
	// of an idempotent request (a transfer with the same key) is the answer.
	ErrUnavailable = errors.New("database unavailable")
	// ErrAborted: the database aborted the transaction as a serialization
	// failure or deadlock more times than the store retries. Nothing was
	// written; a retry with the same idempotency key is safe.
	ErrAborted = errors.New("transaction aborted by the database")
)

// InputError says which input field was rejected and why. It unwraps to
// ErrInvalidInput. Reason never echoes the rejected value, which may be
// hostile.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string { return "invalid " + e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidInput) true.
func (e *InputError) Unwrap() error { return ErrInvalidInput }

func inputError(field, reason string) error { return &InputError{Field: field, Reason: reason} }

// dbError translates an error from pgx into a domain error for operation op:
// the one place where database failures are classified. Outages become
// ErrUnavailable, exhausted serialization/deadlock retries ErrAborted (both
// logged at WARN with their cause); anything else it does not recognise is
// logged at ERROR and returned as ErrInternal, which is kept for bugs.
// PostgreSQL's text (which can quote SQL and values) never reaches a caller.
func (s *Store) dbError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("store: %s: %w", op, ctxErr)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// A deadline inside pgx (for example a connect timeout).
		return fmt.Errorf("store: %s: %w", op, context.DeadlineExceeded)
	}
	if kind := outage(err); kind != nil {
		attrs := []any{"op", op, "err", err.Error()}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			attrs = []any{"op", op, "code", pgErr.Code, "message", pgErr.Message}
		}
		s.log.WarnContext(ctx, "store: database unavailable", attrs...)
		return fmt.Errorf("store: %s: %w", op, kind)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return fmt.Errorf("store: %s: %w", op, ErrAlreadyExists)
		case "23503": // foreign_key_violation: a referenced row does not exist
			return fmt.Errorf("store: %s: %w", op, ErrNotFound)
		case "23514": // check_violation
			switch pgErr.ConstraintName {
			case "accounts_balance_nonnegative":
				return fmt.Errorf("store: %s: %w", op, ErrInsufficientFunds)
			case transferKeyVoidedConstraint:
				return fmt.Errorf("store: %s: %w", op, ErrKeyVoided)
			}
			return fmt.Errorf("store: %s: %w", op, ErrInvalidInput)
		case "22001", // string_data_right_truncation
			"22003", // numeric_value_out_of_range
			"22021", // character_not_in_repertoire (invalid UTF-8)
			"22P05", // untranslatable_character (NUL)
			"22P02": // invalid_text_representation
			return fmt.Errorf("store: %s: %w", op, ErrInvalidInput)
		}
		s.log.ErrorContext(ctx, "store: database error", "op", op, "code", pgErr.Code,
			"constraint", pgErr.ConstraintName, "message", pgErr.Message)
	} else {
		s.log.ErrorContext(ctx, "store: database error", "op", op, "err", err.Error())
	}
	return fmt.Errorf("store: %s: %w", op, ErrInternal)
}

// outage classifies err as ErrUnavailable or ErrAborted, or returns nil for
// anything else. A *pgconn.PgError is classified by its SQLSTATE; any other
// error from pgx that is about the connection (dial, read, write, closed
// connection, closed pool) is an outage.
func outage(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch c := pgErr.Code; {
		case c == "40001" || c == "40P01": // serialization_failure, deadlock_detected
			return ErrAborted
		case strings.HasPrefix(c, "08"), // connection_exception
			strings.HasPrefix(c, "57P"), // admin/crash shutdown, cannot connect now, database dropped
			strings.HasPrefix(c, "53"),  // insufficient resources: disk full, out of memory, too many connections
			strings.HasPrefix(c, "58"),  // system error: I/O error, a file gone
			c == "25006",                // read_only_sql_transaction: a standby after a failover
			c == "40003",                // statement_completion_unknown: the outcome is not known
			c == "57014":                // query_canceled: statement_timeout on a stuck server
			return ErrUnavailable
		}
		return nil
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return ErrUnavailable
	}
	// pgconn reports the use of a connection that already died as "conn
	// closed", and the pool's puddle a closed pool as "closed pool", with
	// no exported type.
	if msg := err.Error(); strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool") {
		return ErrUnavailable
	}
	return nil
}

// retryable reports whether err is a serialization failure or deadlock that
// a fresh attempt of the whole transaction will not hit again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// textRules says what a string field may contain beyond valid UTF-8 without
// NUL bytes, which no field may contain.
type textRules struct {
	min, max  int  // in characters (runes)
	newlines  bool // \n and \r allowed (chat messages)
	noSpaces  bool // no white space at all (usernames)
	trimmed   bool // no leading or trailing white space
	allowTabs bool
	noHidden  bool // no HiddenChar (names shown to other customers)
	noBidi    bool // no BidiControl (text shown to another customer or in a list)
}

// HiddenChar reports whether r is an invisible formatting character
// (Unicode category Cf): bidirectional overrides, isolates and marks,
// zero-width spaces and joiners, the byte-order mark, soft hyphens. In a
// name that other customers see they only serve to make it look like
// another name, so names may not contain them; this is the one definition
// that the store and the app tier enforce.
func HiddenChar(r rune) bool { return unicode.Is(unicode.Cf, r) }

// BidiControl reports whether r is a bidirectional embedding, override or
// isolate (U+202A–U+202E, U+2066–U+2069). In a memo or a chat message they
// make the text read differently from the characters it holds, in the
// other customer's history too; the marks U+200E and U+200F, which
// right-to-left writing needs, are not among them. This is the one
// definition that the store and the app tier enforce.
func BidiControl(r rune) bool { return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 }

// checkText validates s for field under r.
func checkText(field, s string, r textRules) error {
	if len(s) > 4*r.max { // cheap reject before scanning a huge value
		return inputError(field, fmt.Sprintf("must be at most %d characters", r.max))
	}
	if err := checkEncoding(field, s); err != nil {
		return err
	}
	n := utf8.RuneCountInString(s)
	if n < r.min || (r.min > 0 && strings.TrimSpace(s) == "") {
		if r.min <= 1 {
			return inputError(field, "is required")
		}
		return inputError(field, fmt.Sprintf("must be at least %d characters", r.min))
	}
	if n > r.max {
		return inputError(field, fmt.Sprintf("must be at most %d characters", r.max))
	}
	if r.trimmed && strings.TrimSpace(s) != s {
		return inputError(field, "must not start or end with spaces")
	}
	for _, c := range s {
		switch {
		case c == '\n' || c == '\r':
			if !r.newlines {
				return inputError(field, "must be a single line")
			}
		case c == '\t' && r.allowTabs:
		case unicode.IsControl(c) || c == '\u2028' || c == '\u2029':
			return inputError(field, "contains a control character")
		case r.noSpaces && unicode.IsSpace(c):
			return inputError(field, "must not contain spaces")
		case r.noHidden && HiddenChar(c):
			return inputError(field, "contains an invisible or direction-changing character")
		case r.noBidi && BidiControl(c):
			return inputError(field, "contains a direction-changing character")
		}
	}
	return nil
}

// checkEncoding rejects strings that are not text PostgreSQL can hold:
// invalid UTF-8 and NUL bytes. Lookups use it so that a hostile value gets
// "invalid input" rather than an internal error from the server.
func checkEncoding(field, s string) error {
	if !utf8.ValidString(s) {
		return inputError(field, "is not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return inputError(field, "contains a NUL byte")
	}
	return nil
}

// auditText makes s storable in an audit column without ever rejecting it:
// the user agent and client address of a request are evidence, and a
// hostile value must still be recorded rather than make sign-in fail.
func auditText(s string, max int) string {
	if len(s) > 4*max {
		s = s[:4*max] // a cut rune becomes U+FFFD below
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max])
	}
	return s
}
