package cli

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Log line limits: per level and message, logLimitBurst lines at once and
// then logLimitRate per second. A full disk or a flood of bad requests
// repeats the same warning or error for every request; the log keeps a
// sample and counts the rest.
const (
	logLimitBurst = 10
	logLimitRate  = 1.0
	logLimitKeys  = 1024 // distinct messages tracked; messages are code constants
)

// limitHandler passes Warn and above through at most logLimitBurst lines
// at once, then logLimitRate per second, per (level, message); lines below
// Warn pass unlimited. The next line passed for a message carries
// suppressed_since_previous, the count of its lines dropped before it, and
// Flush logs the counts still pending, so nothing is dropped silently.
type limitHandler struct {
	next  slog.Handler
	state *limitState // shared by the handlers WithAttrs and WithGroup derive
}

type limitState struct {
	mu   sync.Mutex
	now  func() time.Time
	keys map[string]*limitKey
	root slog.Handler // for Flush's lines
}

type limitKey struct {
	level      slog.Level
	msg        string
	lim        *rate.Limiter
	suppressed uint64
}

// newLimitHandler wraps next; now is the clock (tests inject one).
func newLimitHandler(next slog.Handler, now func() time.Time) *limitHandler {
	return &limitHandler{next: next, state: &limitState{now: now, keys: map[string]*limitKey{}, root: next}}
}

func (h *limitHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *limitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitHandler{next: h.next.WithAttrs(as), state: h.state}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), state: h.state}
}

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	n, ok := h.state.take(r.Level, r.Message)
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Uint64("suppressed_since_previous", n))
	}
	return h.next.Handle(ctx, r)
}

// take reports whether a line may pass now and, if so, how many of its
// kind were dropped before it.
func (s *limitState) take(level slog.Level, msg string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := level.String() + "\x00" + msg
	k := s.keys[key]
	if k == nil {
		if len(s.keys) >= logLimitKeys {
			s.flushLocked()
		}
		k = &limitKey{level: level, msg: msg, lim: rate.NewLimiter(logLimitRate, logLimitBurst)}
		s.keys[key] = k
	}
	if !k.lim.AllowN(s.now(), 1) {
		k.suppressed++
		return 0, false
	}
	n := k.suppressed
	k.suppressed = 0
	return n, true
}

// Flush logs, for every message with dropped lines not yet accounted for,
// one line with the count. serve calls it at shutdown.
func (h *limitHandler) Flush() {
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	h.state.flushLocked()
}

// flushLocked logs the pending counts and forgets every key; s.mu MUST be
// held.
func (s *limitState) flushLocked() {
	for key, k := range s.keys {
		if k.suppressed > 0 {
			r := slog.NewRecord(s.now(), k.level, "log lines suppressed", 0)
			r.AddAttrs(slog.String("message", k.msg), slog.Uint64("suppressed", k.suppressed))
			_ = s.root.Handle(context.Background(), r)
		}
		delete(s.keys, key)
	}
}
