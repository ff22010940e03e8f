package http

import (
	"encoding/json"
	"log/slog"
	"net/http"

	warden "github.com/warden-sh/warden"
)

// codeStatus is the one table mapping warden error codes to HTTP statuses.
var codeStatus = map[string]int{
	warden.EINVALID:      http.StatusBadRequest,
	warden.ENOTFOUND:     http.StatusNotFound,
	warden.ECONFLICT:     http.StatusConflict,
	warden.EUNAUTHORIZED: http.StatusUnauthorized,
	warden.EFORBIDDEN:    http.StatusForbidden,
	warden.EDENIED:       http.StatusForbidden,
	warden.EINSUFFICIENT: http.StatusConflict,
	warden.ETOOLARGE:     http.StatusBadRequest,         // the issue asks 400 for oversized bodies
	warden.EUNAVAILABLE:  http.StatusServiceUnavailable, // with Retry-After
	warden.ETOOMANY:      http.StatusTooManyRequests,
	warden.EINTERNAL:     http.StatusInternalServerError,
}

// StatusOf returns the HTTP status for err.
func StatusOf(err error) int {
	if s, ok := codeStatus[warden.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// writeError writes err as {"error": sentence, "code": code, ...data}.
// Internal errors are logged in full and shown only as a generic sentence.
// An unavailable answer says when to retry (Retry-After).
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := warden.ErrorCode(err)
	status := StatusOf(err)
	if code == warden.EINTERNAL {
		log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	body := map[string]any{}
	var e *warden.Error
	if asError(err, &e) {
		for k, v := range e.Data {
			body[k] = v
		}
		if ra := e.RetryAfterSeconds(); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
	}
	body["error"] = warden.ErrorMessage(err)
	body["code"] = code
	writeJSON(w, status, body)
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
