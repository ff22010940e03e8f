package http

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// access is what one request's access line says beyond the request
// itself: the route it reached and the principal it authenticated as,
// filled in by dispatch (empty for mounted handlers, /metrics and paths
// no route matches).
type access struct {
	route     string
	principal string
}

// accessKey is the request context key of a request's *access.
type accessKey struct{}

// maxLoggedPath bounds how much of a client-chosen path or path value an
// access line repeats.
const maxLoggedPath = 128

// logAccess writes a request's one access line: method, route (the
// pattern with its wildcards filled in, so a governance call names its
// tool), status, a readable duration and the principal. Successes and
// client errors are Info; 503 (unavailable: storage full, refused writes)
// is Warn, since its cause is logged once where it is met; other 5xx are
// Error. Warn and Error lines are sampled by serve's log limiter like any
// other repeated line.
func (s *Server) logAccess(r *http.Request, w *accessWriter, acc *access, start time.Time) {
	level := slog.LevelInfo
	switch {
	case w.status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case w.status >= 500:
		level = slog.LevelError
	}
	ctx := r.Context()
	if !s.log.Enabled(ctx, level) {
		return
	}
	route := acc.route
	if route == "" {
		route = clip(r.URL.Path, maxLoggedPath)
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.Int("status", w.status),
		slog.String("duration", readableDuration(time.Since(start))),
	}
	if acc.principal != "" {
		attrs = append(attrs, slog.String("principal", acc.principal))
	}
	s.log.LogAttrs(ctx, level, "http request", attrs...)
}

// readableDuration rounds d for a person: microseconds below a
// millisecond, then three significant digits up to a second, then
// milliseconds ("153µs", "2.31ms", "1.204s"); time.ParseDuration reads it.
func readableDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 10*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d < 100*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// routeName is pattern with each wildcard replaced by the request's value
// for it, clipped: "/api/v1/governance/{tool}" is logged as
// "/api/v1/governance/escalate".
func routeName(pattern string, r *http.Request) string {
	if !strings.Contains(pattern, "{") {
		return pattern
	}
	segs := strings.Split(pattern, "/")
	for i, seg := range segs {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
		if name == "$" {
			segs[i] = ""
			continue
		}
		segs[i] = clip(r.PathValue(name), maxLoggedPath)
	}
	return strings.Join(segs, "/")
}

// clip cuts s to at most n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// accessWriter records the status of any response, mounted handlers'
// included; Unwrap keeps http.ResponseController working beneath it.
type accessWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *accessWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *accessWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
