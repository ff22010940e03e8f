// Package wardentest builds real warden parts for tests: a data directory
// in t.TempDir(), a real SQLite store, an engine with an injected clock, and
// an HTTP server on 127.0.0.1:0. Nothing here is a mock.
package wardentest

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
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

// Env is a running test environment.
type Env struct {
	Dir    *datadir.Dir
	Store  *sqlite.DB
	Engine *engine.Engine
	Clock  *Clock
	Admin  string // admin token
}

// Option adjusts engine options.
type Option func(*engine.Options)

// Dev enables --dev mode.
func Dev(o *engine.Options) { o.Dev = true }

// Drill enables drill mode.
func Drill(o *engine.Options) { o.Drill = true }

// MustEnv creates a data directory, store and engine, bootstraps an admin
// credential, and closes everything when the test ends.
func MustEnv(tb testing.TB, opts ...Option) *Env {
	tb.Helper()
	dir, err := datadir.Init(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	st, err := sqlite.Open(dir.DBPath(), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	clock := NewClock()
	o := engine.Options{Store: st, Clock: clock.Now, Signer: dir.Signer, PublicKey: dir.PublicKey,
		HMACKey: dir.HMACKey, Integrity: integrity.Checker{Clock: clock.Now}}
	for _, f := range opts {
		f(&o)
	}
	eng, err := engine.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	cred, err := eng.Bootstrap(context.Background(), "admin")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return &Env{Dir: dir, Store: st, Engine: eng, Clock: clock, Admin: cred.Token}
}

// MustCredential creates a credential and returns its token.
func (e *Env) MustCredential(tb testing.TB, spec engine.CredentialSpec) string {
	tb.Helper()
	admin := &warden.Principal{Name: "test-admin", Roles: []warden.Role{warden.RoleAdmin}}
	c, err := e.Engine.AddCredential(context.Background(), admin, spec)
	if err != nil {
		tb.Fatal(err)
	}
	return c.Token
}

// MustServer serves the HTTP API on 127.0.0.1:0 until the test ends and
// returns its base URL.
func (e *Env) MustServer(tb testing.TB) (string, *wardenhttp.Server) {
	tb.Helper()
	api := wardenhttp.NewServer(wardenhttp.Options{Engine: e.Engine, Registry: prometheus.NewRegistry()})
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
	list, err := e.Engine.Receipts(context.Background(), f)
	if err != nil {
		tb.Fatal(err)
	}
	return list
}
