package wardentest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/sqlite"
)

// AdminPrincipal acts with every role when a test calls the engine directly.
var AdminPrincipal = &warden.Principal{Name: "test-admin", Roles: []warden.Role{warden.RoleAdmin}}

// ActuatorTimeout bounds each containment call made by FastActuator, so a
// hanging target fails a test quickly.
const ActuatorTimeout = 100 * time.Millisecond

// TargetRequest is one request a Target received.
type TargetRequest struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Target is a real HTTP server on 127.0.0.1:0 standing in for a containment
// target (agent, airlock, registry) or a webhook receiver. It records every
// request and answers 200 {"status":"ok"} unless told otherwise per path.
type Target struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []TargetRequest
	status  map[string]int
	hang    map[string]bool
	release chan struct{}
}

// MustTarget starts a Target that is closed when the test ends. A hanging
// path blocks until the client gives up or the test ends.
func MustTarget(tb testing.TB) *Target {
	tb.Helper()
	tg := &Target{status: map[string]int{}, hang: map[string]bool{}, release: make(chan struct{})}
	tg.Server = httptest.NewServer(http.HandlerFunc(tg.serve))
	tb.Cleanup(tg.Close)
	// Registered after Close, so it runs first: hanging handlers return
	// before Close waits for them.
	tb.Cleanup(func() { close(tg.release) })
	return tg
}

func (tg *Target) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	tg.mu.Lock()
	tg.reqs = append(tg.reqs, TargetRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	status, hang := tg.status[r.URL.Path], tg.hang[r.URL.Path]
	if status == 0 {
		status = tg.status["*"]
	}
	tg.mu.Unlock()
	if hang {
		select {
		case <-tg.release:
		case <-r.Context().Done():
		}
		return
	}
	if status != 0 && status != http.StatusOK {
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"ok"}`)
}

// Respond makes path ("*" for every path) answer status.
func (tg *Target) Respond(path string, status int) {
	tg.mu.Lock()
	tg.status[path] = status
	tg.mu.Unlock()
}

// Hang makes path block until the client gives up.
func (tg *Target) Hang(path string) {
	tg.mu.Lock()
	tg.hang[path] = true
	tg.mu.Unlock()
}

// Requests returns the requests received so far.
func (tg *Target) Requests() []TargetRequest {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]TargetRequest(nil), tg.reqs...)
}

// Paths returns "METHOD /path" of each request received so far.
func (tg *Target) Paths() []string {
	var out []string
	for _, r := range tg.Requests() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// TargetPolicy returns the runbook's default policy with the agent, airlock
// and registry targets all at url.
func TargetPolicy(url string) *warden.ContainmentPolicy {
	p := warden.DefaultPolicy()
	p.Targets.Agent, p.Targets.Airlock, p.Targets.Registry = url, url, url
	return p
}

// FastActuator returns a real HTTP actuator with a short per-call timeout,
// no backoff between retries and a silent logger.
func FastActuator(clock warden.Clock) *contain.HTTPActuator {
	return &contain.HTTPActuator{
		Clock:   clock,
		Logger:  slog.New(slog.DiscardHandler),
		Timeout: ActuatorTimeout,
		Backoff: func(int) time.Duration { return 0 },
	}
}

// Containment sets the recorder's policy and a FastActuator on the env clock.
func Containment(p *warden.ContainmentPolicy) Option {
	return func(c *stack.Config) {
		c.Recorder.Policy = p
		c.Recorder.Actuator = FastActuator(c.Core.Clock)
	}
}

// MustReopen closes the env's store, opens the same SQLite file again and
// builds a new stack over it (as a restarted server would), with the same
// clock and data directory. The admin token stays valid.
func (e *Env) MustReopen(tb testing.TB, opts ...Option) *Env {
	tb.Helper()
	if err := e.Store.Close(); err != nil {
		tb.Fatal(err)
	}
	st, err := sqlite.Open(e.Dir.DBPath(), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return &Env{Stack: newStack(tb, e.Dir, st, e.Clock, opts), Dir: e.Dir, Store: st, Clock: e.Clock, Admin: e.Admin}
}

// MustReport reports an incident as p (AdminPrincipal when nil).
func (e *Env) MustReport(tb testing.TB, p *warden.Principal, req recorder.ReportRequest) *warden.Incident {
	tb.Helper()
	if p == nil {
		p = AdminPrincipal
	}
	inc, err := e.Recorder.ReportIncident(context.Background(), p, req)
	if err != nil {
		tb.Fatalf("report %s: %v", req.Class, err)
	}
	return inc
}

// MustIncident returns the stored incident with id.
func (e *Env) MustIncident(tb testing.TB, id string) *warden.Incident {
	tb.Helper()
	inc, err := e.Recorder.Incident(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return inc
}

// MustRequirement returns the recovery requirement of incident id, or nil
// if it has none.
func (e *Env) MustRequirement(tb testing.TB, id string) *warden.RecoveryRequirement {
	tb.Helper()
	var r *warden.RecoveryRequirement
	err := e.Store.View(context.Background(), func(tx warden.ReadTx) (err error) {
		r, err = tx.Requirement(id)
		return err
	})
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return nil
	} else if err != nil {
		tb.Fatal(err)
	}
	return r
}

// MustStats returns the incident counters.
func (e *Env) MustStats(tb testing.TB) *warden.IncidentStats {
	tb.Helper()
	s, err := e.Recorder.Stats(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// MustDeliveries returns every webhook delivery of incident id ("" for
// all), newest first.
func (e *Env) MustDeliveries(tb testing.TB, id string) []*warden.Delivery {
	tb.Helper()
	var out []*warden.Delivery
	f := warden.DeliveryFilter{IncidentID: id, Limit: warden.MaxPageSize}
	for {
		page, err := e.Recorder.Deliveries(context.Background(), f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, page.Items...)
		if page.Next == nil {
			return out
		}
		f.Before = *page.Next
	}
}
