package wire

import (
	"errors"
	"fmt"
)

// Code is a per-request or connection-fatal error code, modelled on gRPC's
// status codes. The numbers are part of the wire format (PROTOCOL.md §6);
// a code's name there is its Go name in upper snake case (String, generated).
type Code uint16

const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	Unimplemented      Code = 12 // the server has no handler for the operation
	Internal           Code = 13
	Unavailable        Code = 14
	Unauthenticated    Code = 16

	// Connection-fatal codes (only ever carried by a FATAL frame, after which
	// the sender closes the connection).
	ProtocolError      Code = 100 // malformed frame, bad length, unknown type
	UnsupportedVersion Code = 101 // no common protocol version
	BadSecret          Code = 102 // handshake secret did not match
	HandshakeTimeout   Code = 103 // the client did not finish the handshake in time
	TooManyConnections Code = 104 // the server's connection limit is reached
	IdleTimeout        Code = 105 // nothing was received for too long
	ShuttingDown       Code = 106 // the server is shutting down (after a drain, or during the handshake)
)

// Fatal reports whether c is a connection-fatal code.
func (c Code) Fatal() bool { return c >= 100 }

// Error is the error every handler returns to a caller and every client call
// returns. Message is safe to show to a user; Field, when set, names the
// request field the error is about (for example "amount").
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with a formatted user-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an INVALID_ARGUMENT (or other code) error about one field.
func FieldError(code Code, field, message string) *Error {
	return &Error{Code: code, Message: message, Field: field}
}

// ErrorCode returns the code of err: the Code of an *Error found with
// errors.As, OK for nil, and Internal for anything else.
func ErrorCode(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// AsFatal reports whether err is a protocol violation that deserves a FATAL
// frame (as opposed to an I/O error, after which nothing can be sent).
func AsFatal(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) && e.Code.Fatal() {
		return e, true
	}
	return nil, false
}
