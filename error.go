// Package warden holds warden's domain vocabulary: the types, enums, error
// codes and service interfaces that every other package speaks. It performs
// no I/O; storage, transport and actuators live in their own packages and
// import this one, never each other.
package warden

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Error codes. They are stable: clients match on them, and the HTTP, MCP and
// CLI layers each map them in exactly one table.
const (
	EINVALID      = "invalid"      // the request is malformed or breaks a validation rule
	ENOTFOUND     = "not_found"    // the named thing does not exist
	ECONFLICT     = "conflict"     // the request is valid but the current state forbids it
	EUNAUTHORIZED = "unauthorized" // no, unknown or revoked credential
	EFORBIDDEN    = "forbidden"    // the credential is known but lacks the role
	EDENIED       = "denied"       // a governance rule denied the operation (receipted)
	EINSUFFICIENT = "insufficient" // a budget lacks the funds (receipted)
	ETOOLARGE     = "too_large"    // the request body exceeds its size limit
	EUNAVAILABLE  = "unavailable"  // warden cannot take the change now (storage is full, the startup check failed); nothing changed, see Retry-After
	ETOOMANY      = "too_many"     // too many streams or sessions open at once; retry after Error.RetryAfter
	EINTERNAL     = "internal"     // a fault inside warden; details are logged, not returned
)

// UnavailableRetryAfter is how long transports tell a client to wait
// before retrying an EUNAVAILABLE error that names no time of its own.
const UnavailableRetryAfter = 5 * time.Second

// Error is warden's one error type. Code is one of the E* constants; Message
// is a human sentence naming the rule that failed, safe to show to callers.
type Error struct {
	Code    string
	Message string
	// Data carries structured detail a transport may add to its response
	// (for example "approval_required": true). It MUST be JSON-serialisable.
	Data map[string]any
	// RetryAfter, when positive, is how long the caller should wait before
	// trying again (HTTP sends it as Retry-After).
	RetryAfter time.Duration
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("warden error: code=%s message=%s", e.Code, e.Message)
}

// RetryAfterSeconds is when to retry as an HTTP Retry-After value: whole
// seconds, rounded up, at least 1. It is RetryAfter, or for EUNAVAILABLE
// without one UnavailableRetryAfter; "" when there is nothing to wait for.
// Every transport sends it from here (HTTP Retry-After, MCP
// retry_after_seconds).
func (e *Error) RetryAfterSeconds() string {
	d := e.RetryAfter
	if d <= 0 && e.Code == EUNAVAILABLE {
		d = UnavailableRetryAfter
	}
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic sentence for internal errors so their details never leak.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
