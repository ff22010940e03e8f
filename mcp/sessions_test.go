package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	wardenhttp "github.com/warden-sh/warden/http"
	wardenmcp "github.com/warden-sh/warden/mcp"
	"github.com/warden-sh/warden/sqlite"
	"github.com/warden-sh/warden/wardentest"
)

// limitedServer serves the API with /mcp mounted, with the given MCP
// options, and returns its base URL and the metrics registry.
func limitedServer(t *testing.T, env *wardentest.Env, opts ...wardenmcp.Option) (string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	opts = append(opts, wardenmcp.WithRegistry(reg), wardenmcp.WithShutdown(ctx))
	srv := httptest.NewServer(wardenhttp.NewServer(wardenhttp.Options{Core: env.Core, Recorder: env.Recorder, Governor: env.Governor, Registry: prometheus.NewRegistry(),
		Mount: map[string]http.Handler{"/mcp": wardenmcp.Handler(env.Core, env.Governor, "test", opts...)}}))
	t.Cleanup(func() { cancel(); srv.Close() })
	return srv.URL, reg
}

// gauge reads a gauge or counter from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitGauge waits (bounded) until the open-session gauge reads want.
func waitGauge(t *testing.T, reg *prometheus.Registry, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for gauge(t, reg, "warden_mcp_sessions_open") != want {
		if time.Now().After(deadline) {
			t.Fatalf("%v MCP sessions open, want %v", gauge(t, reg, "warden_mcp_sessions_open"), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heap returns the live heap after a collection.
func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// floodResult counts the answers to a flood of initialize requests.
type floodResult struct {
	opened, refused atomic.Int64
	mu              sync.Mutex
	ids             []string // of the sessions opened
	other           []string
	refusal         struct{ Error, Code string }
	retryAfter      string
}

// flood sends n initialize requests with token from 16 goroutines.
func flood(t *testing.T, base, token string, n int) *floodResult {
	t.Helper()
	return floodWith(t, base, token, n, initialize)
}

// floodWith is flood with another request body.
func floodWith(t *testing.T, base, token string, n int, initialize string) *floodResult {
	t.Helper()
	var res floodResult
	var wg sync.WaitGroup
	next := atomic.Int64{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(initialize))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					res.mu.Lock()
					res.other = append(res.other, err.Error())
					res.mu.Unlock()
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusOK && resp.Header.Get("Mcp-Session-Id") != "":
					res.opened.Add(1)
					res.mu.Lock()
					res.ids = append(res.ids, resp.Header.Get("Mcp-Session-Id"))
					res.mu.Unlock()
				case resp.StatusCode == http.StatusTooManyRequests:
					res.refused.Add(1)
					res.mu.Lock()
					_ = json.Unmarshal(data, &res.refusal)
					res.retryAfter = resp.Header.Get("Retry-After")
					res.mu.Unlock()
				default:
					res.mu.Lock()
					res.other = append(res.other, fmt.Sprintf("%d %s", resp.StatusCode, data))
					res.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(res.other) > 0 {
		t.Fatalf("%d unexpected answers, first: %s", len(res.other), res.other[0])
	}
	return &res
}

// TestMCPSessionFloodIsBounded: a read token asking for thousands of
// sessions gets its per-principal cap and then 429s naming the cap, with
// Retry-After; several principals together stop at the server's cap; the
// heap stays bounded; a real SDK client is refused the same way, and gets
// a session again once one is closed. (Before, every request opened a
// session that lived 30 minutes: 26,000 in 45 s took 470 MB.)
func TestMCPSessionFloodIsBounded(t *testing.T) {
	const perPrincipal, overall, floodSize = 8, 32, 3000
	env := wardentest.MustEnv(t)
	before, goroutines := heap(), runtime.NumGoroutine()
	base, reg := limitedServer(t, env, wardenmcp.WithSessionLimits(overall, perPrincipal))
	attacker := env.MustCredential(t, engine.CredentialSpec{Name: "attacker", Roles: []warden.Role{warden.RoleRead}})

	res := flood(t, base, attacker, floodSize)
	if res.opened.Load() != perPrincipal || res.refused.Load() != floodSize-perPrincipal {
		t.Fatalf("flood of %d: %d sessions opened, %d refused; want %d opened", floodSize, res.opened.Load(), res.refused.Load(), perPrincipal)
	}
	if res.refusal.Code != warden.ETOOMANY || res.retryAfter != "30" ||
		!strings.Contains(res.refusal.Error, fmt.Sprintf(`principal "attacker" already has %d open, the most one principal may have`, perPrincipal)) {
		t.Fatalf("refusal %+v, Retry-After %q", res.refusal, res.retryAfter)
	}

	// More principals: the server's cap holds whoever asks.
	var tokens []string
	for i := range overall / perPrincipal {
		tokens = append(tokens, env.MustCredential(t, engine.CredentialSpec{Name: fmt.Sprintf("agent-%d", i), Roles: []warden.Role{warden.RoleRead}}))
	}
	opened := res.opened.Load()
	for _, tok := range tokens {
		r := flood(t, base, tok, 200)
		opened += r.opened.Load()
		if r.opened.Load() == 0 && !strings.Contains(r.refusal.Error, fmt.Sprintf("the server already has %d open, the most it keeps", overall)) {
			t.Fatalf("refusal at the server's cap: %+v", r.refusal)
		}
	}
	if opened != overall {
		t.Fatalf("%d sessions opened in all, want the cap %d", opened, overall)
	}
	waitGauge(t, reg, overall)
	grown := int64(heap()) - int64(before)
	t.Logf("%d session requests: %d open, heap grew %.1f MiB, %d more goroutines", floodSize+len(tokens)*200, overall, float64(grown)/(1<<20),
		runtime.NumGoroutine()-goroutines)
	// Uncapped, the same flood grows the heap by about 18 MiB (3,800
	// sessions of some 6 KiB each, before the goroutines' stacks).
	if grown > 8<<20 {
		t.Fatalf("heap grew %.1f MiB under the flood, more than 8 MiB", float64(grown)/(1<<20))
	}
	if got := gauge(t, reg, "warden_mcp_sessions_refused_total"); got != float64(floodSize+len(tokens)*200-overall) {
		t.Fatalf("refusals counted: %v", got)
	}

	// A real SDK client of a fresh principal is refused while the server
	// is full, and connects once a session is closed.
	fresh := env.MustCredential(t, engine.CredentialSpec{Name: "fresh", Roles: []warden.Role{warden.RoleRead}})
	client := sdk.NewClient(&sdk.Implementation{Name: "fresh", Version: "1"}, nil)
	transport := func() *sdk.StreamableClientTransport {
		return &sdk.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{fresh}}}
	}
	if cs, err := client.Connect(t.Context(), transport(), nil); err == nil {
		cs.Close()
		t.Fatal("connected past the server's session cap")
	} else if !strings.Contains(err.Error(), "429") && !strings.Contains(err.Error(), "Too Many") {
		t.Fatalf("connect past the cap: %v, want a 429", err)
	}
	req, _ := http.NewRequest(http.MethodDelete, base+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+attacker)
	req.Header.Set("Mcp-Session-Id", res.ids[0])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE a session: %v %v", resp, err)
	}
	resp.Body.Close()
	waitGauge(t, reg, overall-1)
	a := connect(t, base, "fresh", fresh)
	if got := a.call("cognitive_context", map[string]any{"include": []string{"profile"}}); got["profile"].(map[string]any)["principal"] != "fresh" {
		t.Fatalf("context = %v", got)
	}
}

// TestMCPRevocationClosesSessions: revoking a credential closes its open
// sessions at once — through the API, or from another process on the same
// data directory once the server notices — while other principals'
// sessions stay. (Before, they stayed in memory until their idle timeout.)
func TestMCPRevocationClosesSessions(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, reg := limitedServer(t, env)
	tokens := map[string]string{}
	for _, name := range []string{"alice", "bob", "carol"} {
		tokens[name] = env.MustCredential(t, engine.CredentialSpec{Name: name, Roles: []warden.Role{warden.RoleRead}})
	}
	for name, n := range map[string]int{"alice": 3, "bob": 2, "carol": 1} {
		for range n {
			connect(t, base, name, tokens[name])
		}
	}
	waitGauge(t, reg, 6)

	// Through the API.
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/credentials/revoke", strings.NewReader(`{"name":"alice"}`))
	req.Header.Set("Authorization", "Bearer "+env.Admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke alice: %v %v", resp, err)
	}
	resp.Body.Close()
	waitGauge(t, reg, 3)

	// Another process (`warden credential revoke --data DIR`), noticed by
	// the server's periodic NoticeRevocations.
	other, err := sqlite.Open(env.Dir.DBPath(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherCore, err := engine.New(engine.Options{Store: other})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherCore.RevokeCredential(t.Context(), &warden.Principal{Name: "cli", Roles: []warden.Role{warden.RoleAdmin}}, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg, "warden_mcp_sessions_open"); got != 3 {
		t.Fatalf("%v sessions before the server noticed, want 3", got)
	}
	if n, err := env.Core.NoticeRevocations(t.Context()); err != nil || n != 1 {
		t.Fatalf("NoticeRevocations = %d, %v", n, err)
	}
	waitGauge(t, reg, 1) // carol's
}

// TestMCPIdleSessionsExpire: a session that gets no request for the idle
// time is closed and stops counting against the caps.
func TestMCPIdleSessionsExpire(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, reg := limitedServer(t, env, wardenmcp.WithSessionIdle(100*time.Millisecond), wardenmcp.WithSessionLimits(0, 2))
	token := env.MustCredential(t, engine.CredentialSpec{Name: "idle", Roles: []warden.Role{warden.RoleRead}})
	if r := flood(t, base, token, 3); r.opened.Load() != 2 || r.refused.Load() != 1 {
		t.Fatalf("%d opened, %d refused; want 2, 1", r.opened.Load(), r.refused.Load())
	}
	waitGauge(t, reg, 0) // bounded: the SDK's idle timer runs on the wall clock
	if r := flood(t, base, token, 2); r.opened.Load() != 2 {
		t.Fatalf("after the idle sessions expired: %d opened, want 2", r.opened.Load())
	}
}

// TestMCPBatchInitializeIsCounted: an initialize inside a JSON-RPC batch
// (which the SDK accepts from clients of older protocol versions, and
// keeps the session of) counts against the caps like a plain one.
func TestMCPBatchInitializeIsCounted(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, reg := limitedServer(t, env, wardenmcp.WithSessionLimits(0, 2))
	token := env.MustCredential(t, engine.CredentialSpec{Name: "batcher", Roles: []warden.Role{warden.RoleRead}})
	batch := `[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}]`
	r := floodWith(t, base, token, 10, batch)
	if r.opened.Load() > 2 || r.refused.Load() < 8 {
		t.Fatalf("%d batch sessions opened, %d refused; want at most 2 and the rest refused", r.opened.Load(), r.refused.Load())
	}
	if got := gauge(t, reg, "warden_mcp_sessions_open"); got != float64(r.opened.Load()) {
		t.Fatalf("%v sessions counted, %d opened", got, r.opened.Load())
	}
}
