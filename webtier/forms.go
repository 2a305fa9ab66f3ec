package webtier

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"bankwire/proto/wire"
)

// form carries what the customer typed back into the page, with errors by
// field and one for the whole form.
type form struct {
	Values map[string]string
	Errors map[string]string
	Error  string
	Notice string // information that is not an error, shown above the form
}

func newForm() *form {
	return &form{Values: map[string]string{}, Errors: map[string]string{}}
}

// Get returns a value typed into field.
func (f *form) Get(field string) string { return f.Values[field] }

// Err returns the error message of field, if any.
func (f *form) Err(field string) string { return f.Errors[field] }

// Invalid reports whether the form has any error.
func (f *form) Invalid() bool { return len(f.Errors) > 0 || f.Error != "" }

func (f *form) fail(field, msg string) {
	if _, dup := f.Errors[field]; !dup {
		f.Errors[field] = msg
	}
}

// userError records an app-tier refusal in the form when it is about what
// the customer typed. fields maps protocol field names to form field names;
// a field not in it becomes a form-level error. It returns false for errors
// that are not the customer's to fix (unavailable, internal, unauthenticated).
func (f *form) userError(err error, fields map[string]string) bool {
	var pe *wire.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case wire.InvalidArgument, wire.FailedPrecondition, wire.NotFound, wire.AlreadyExists,
		wire.PermissionDenied, wire.ResourceExhausted:
	default:
		return false
	}
	msg := pe.Message
	if msg == "" {
		msg = "Please check this and try again."
	}
	if name, ok := fields[pe.Field]; ok && pe.Field != "" {
		f.fail(name, msg)
	} else {
		f.Error = msg
	}
	return true
}

// parseForm reads a posted form; a body over the size limit or one that does
// not parse gets the matching error page and ok=false.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.errorPage(w, r, http.StatusRequestEntityTooLarge, "")
		} else {
			s.errorPage(w, r, http.StatusBadRequest, "")
		}
		return false
	}
	return true
}

// field returns a posted value with surrounding space removed; a value with
// invalid UTF-8 or control characters becomes "" plus ok=false.
func field(r *http.Request, name string) (string, bool) {
	v := strings.TrimSpace(r.PostFormValue(name))
	return v, cleanText(v, false)
}

// cleanText reports whether s is valid UTF-8 free of control characters,
// line and paragraph separators and the bidirectional embeddings, overrides
// and isolates (U+202A–U+202E, U+2066–U+2069) that the app tier refuses
// (newlines and tabs allowed only when multiline).
func cleanText(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		switch {
		case multiline && (c == '\n' || c == '\r' || c == '\t'):
		case unicode.IsControl(c), c == '\u2028', c == '\u2029',
			c >= 0x202A && c <= 0x202E, c >= 0x2066 && c <= 0x2069:
			return false
		}
	}
	return true
}

// newIdempotencyKey is a random key for one rendered transfer form: 128
// bits, so two forms never share one by accident.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func validIdempotencyKey(k string) bool {
	if len(k) != 32 {
		return false
	}
	_, err := hex.DecodeString(k)
	return err == nil
}

// plausibleAccountNumber rejects what cannot be an account number before it
// reaches the app tier: the app tier's check digit is the real test.
func plausibleAccountNumber(n string) bool {
	if n == "" || len(n) > 40 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-' || c == ' ') {
			return false
		}
	}
	return true
}
