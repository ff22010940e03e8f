package contain_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// seen is one request a target received.
type seen struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// target is a real HTTP server on 127.0.0.1:0 that records every request
// and answers with respond (200 when nil). n counts from 1.
type target struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []seen
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newTarget(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *target {
	t.Helper()
	tg := &target{respond: respond}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.reqs = append(tg.reqs, seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		n := len(tg.reqs)
		tg.mu.Unlock()
		if tg.respond != nil {
			tg.respond(n, w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) requests() []seen {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]seen(nil), tg.reqs...)
}

// status answers every request with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		io.WriteString(w, http.StatusText(code))
	}
}

// hang blocks every request until the client gives up or the test ends.
func hang(t *testing.T) func(int, http.ResponseWriter, *http.Request) {
	release := make(chan struct{})
	// Registered after the server's Close, so it runs first and lets the
	// handlers return before Close waits for them.
	t.Cleanup(func() { close(release) })
	return func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
}

// logBuffer is a concurrency-safe JSON log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func testIncident() *warden.Incident {
	return &warden.Incident{
		ID:          "INC-20260314-120000-0001",
		CreatedAt:   "2026-03-14T12:00:00Z",
		Class:       warden.ClassManifestMismatch,
		Severity:    warden.SeverityHigh,
		State:       warden.StateOpen,
		Source:      "model-registry",
		Description: "manifest hash mismatch for llama",
		Evidence: map[string]string{
			"model_path": "/var/lib/models/llama-3.gguf",
			"expected":   "abc",
		},
	}
}
