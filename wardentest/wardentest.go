// Package wardentest builds real warden parts for tests: a data directory
// in t.TempDir(), a real SQLite store, an engine with an injected clock, and
// an HTTP server on 127.0.0.1:0. Nothing here is a mock.
package wardentest

import (
	"context"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	wardenhttp "github.com/warden-sh/warden/http"
	"github.com/warden-sh/warden/integrity"
	"github.com/warden-sh/warden/sqlite"
)

// Clock is a settable test clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Env is a running test environment: the rules (Core, Recorder, Governor)
// over a real SQLite store in a real data directory.
type Env struct {
	*stack.Stack
	Dir   *datadir.Dir
	Store *sqlite.DB
	Clock *Clock
	Admin string // admin token
}

// Option adjusts the stack's configuration.
type Option func(*stack.Config)

// Dev enables --dev mode.
func Dev(c *stack.Config) { c.Core.Dev = true }

// Drill enables drill mode.
func Drill(c *stack.Config) { c.Core.Drill = true }

// newStack builds the stack over st the way a server does, with the env's
// clock and data directory.
func newStack(tb testing.TB, dir *datadir.Dir, st *sqlite.DB, clock *Clock, opts []Option) *stack.Stack {
	tb.Helper()
	c := stack.Config{
		Core: engine.Options{Store: st, Clock: clock.Now, Signer: dir.Signer, PublicKey: dir.PublicKey, Keys: dir},
		// Tests watch files under the temporary directory their data lives in.
		Recorder: recorder.Options{HMACKey: dir.HMACKey, Integrity: integrity.Checker{Clock: clock.Now, Roots: []string{os.TempDir()}}},
	}
	for _, f := range opts {
		f(&c)
	}
	s, err := stack.New(c)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// MustEnv creates a data directory, store and engine, bootstraps an admin
// credential, and closes everything when the test ends.
func MustEnv(tb testing.TB, opts ...Option) *Env {
	tb.Helper()
	return MustEnvAt(tb, tb.TempDir(), opts...)
}

// MustEnvAt is MustEnv with the data directory at path (for example on a
// file system from MustSmallFS).
func MustEnvAt(tb testing.TB, path string, opts ...Option) *Env {
	tb.Helper()
	dir, err := datadir.Init(path)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := sqlite.Open(dir.DBPath(), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	clock := NewClock()
	tb.Cleanup(func() { st.Close() })
	s := newStack(tb, dir, st, clock, opts)
	cred, err := s.Core.Bootstrap(context.Background(), "admin")
	if err != nil {
		tb.Fatal(err)
	}
	return &Env{Stack: s, Dir: dir, Store: st, Clock: clock, Admin: cred.Token}
}

// MustCredential creates a credential and returns its token.
func (e *Env) MustCredential(tb testing.TB, spec engine.CredentialSpec) string {
	tb.Helper()
	admin := &warden.Principal{Name: "test-admin", Roles: []warden.Role{warden.RoleAdmin}}
	c, err := e.Core.AddCredential(context.Background(), admin, spec)
	if err != nil {
		tb.Fatal(err)
	}
	return c.Token
}

// MustServer serves the HTTP API on 127.0.0.1:0 until the test ends and
// returns its base URL.
func (e *Env) MustServer(tb testing.TB) (string, *wardenhttp.Server) {
	tb.Helper()
	api := wardenhttp.NewServer(wardenhttp.Options{Core: e.Core, Recorder: e.Recorder, Governor: e.Governor, Registry: prometheus.NewRegistry()})
	srv := httptest.NewServer(api)
	tb.Cleanup(srv.Close)
	return srv.URL, api
}

// MustReceipts returns every receipt of the log.
func (e *Env) MustReceipts(tb testing.TB, f warden.ReceiptFilter) []*warden.Receipt {
	tb.Helper()
	if f.Limit == 0 {
		f.Limit = warden.MaxPageSize
	}
	list, err := e.Core.Receipts(context.Background(), f)
	if err != nil {
		tb.Fatal(err)
	}
	return list
}
