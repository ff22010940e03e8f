package mcp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	wardenhttp "github.com/warden-sh/warden/http"
	wardenmcp "github.com/warden-sh/warden/mcp"
	"github.com/warden-sh/warden/wardentest"
)

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// post sends one raw MCP POST to /mcp.
func post(t *testing.T, base string, header map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// /mcp on a non-dev server: every request needs a valid bearer credential;
// refusals are 401 with WWW-Authenticate and receipted; a session is bound
// to its principal and each request acts as its own token's principal.
func TestMCPRequiresBearerCredential(t *testing.T) {
	env := wardentest.MustEnv(t)
	base := env.MustMCPServer(t)

	for name, auth := range map[string]string{"missing": "", "unknown": "Bearer wdn_not-a-token", "malformed": "Basic YWdlbnQ6eA=="} {
		t.Run(name, func(t *testing.T) {
			before := len(authFailures(t, env))
			h := map[string]string{}
			if auth != "" {
				h["Authorization"] = auth
			}
			resp, data := post(t, base, h, initialize)
			var e struct{ Error, Code string }
			if err := json.Unmarshal(data, &e); err != nil || resp.StatusCode != http.StatusUnauthorized || e.Code != warden.EUNAUTHORIZED {
				t.Fatalf("status %d body %s, want 401 unauthorized", resp.StatusCode, data)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="warden"` {
				t.Fatalf("WWW-Authenticate %q", got)
			}
			af := authFailures(t, env)
			if len(af) != before+1 {
				t.Fatalf("%d new auth_failure receipts, want 1", len(af)-before)
			}
			want := map[string]any{"status": float64(401), "code": "unauthorized", "reason": e.Error, "method": "POST", "path": "/mcp",
				"remote": "127.0.0.1", "suppressed_since_previous": float64(0)}
			if d := cmp.Diff(want, af[len(af)-1]); d != "" {
				t.Fatalf("auth_failure body (-want +got):\n%s", d)
			}
		})
	}

	t.Run("sdk client with an unknown token", func(t *testing.T) {
		client := sdk.NewClient(&sdk.Implementation{Name: "bad", Version: "1"}, nil)
		cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{
			Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{"wdn_nope"}}}, nil)
		if err == nil {
			cs.Close()
			t.Fatal("connected with an unknown token")
		}
	})

	t.Run("behind a reverse proxy on loopback", func(t *testing.T) {
		token := env.MustCredential(t, engine.CredentialSpec{Name: "proxied", Roles: []warden.Role{warden.RoleRead}})
		if resp, data := post(t, base, map[string]string{"Authorization": "Bearer " + token, "Host": "warden.example.com"}, initialize); resp.StatusCode != http.StatusOK {
			t.Fatalf("authenticated request with a public Host header: %d %s", resp.StatusCode, data)
		}
	})

	t.Run("a session is bound to its principal", func(t *testing.T) {
		a := newAgent(t, env, base, "agent-a", warden.RoleRead)
		otherToken := env.MustCredential(t, engine.CredentialSpec{Name: "agent-b", Roles: []warden.Role{warden.RoleRead}})
		if got := a.call("cognitive_context", map[string]any{"include": []string{"profile"}}); got["profile"].(map[string]any)["principal"] != "agent-a" {
			t.Fatalf("context = %v", got)
		}
		before := len(authFailures(t, env))
		resp, data := post(t, base, map[string]string{"Authorization": "Bearer " + otherToken, "Mcp-Session-Id": a.cs.ID(), "Mcp-Protocol-Version": "2025-06-18"},
			`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"cognitive_context","arguments":{"include":["profile"]}}}`)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("another principal on agent-a's session: status %d %s, want 403", resp.StatusCode, data)
		}
		af := authFailures(t, env)
		if len(af) != before+1 || af[len(af)-1]["principal"] != "agent-b" || af[len(af)-1]["status"] != float64(403) {
			t.Fatalf("auth_failure receipts: %v", af[before:])
		}
	})

	t.Run("a revoked credential fails its next request", func(t *testing.T) {
		a := newAgent(t, env, base, "agent-revoked", warden.RoleRead)
		a.call("guardian_status", nil)
		admin := &warden.Principal{Name: "test-admin", Roles: []warden.Role{warden.RoleAdmin}}
		if _, err := env.Core.RevokeCredential(context.Background(), admin, "agent-revoked"); err != nil {
			t.Fatal(err)
		}
		before := len(authFailures(t, env))
		if _, err := a.cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "guardian_status"}); err == nil {
			t.Fatal("call with a revoked credential succeeded")
		}
		af := authFailures(t, env)
		if len(af) <= before || !strings.Contains(af[len(af)-1]["reason"].(string), "revoked") {
			t.Fatalf("auth_failure receipts after revocation: %v", af[before:])
		}
	})
}

// In --dev mode a request without a token is the dev principal.
func TestMCPDevModeNeedsNoToken(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Dev)
	base := env.MustMCPServer(t)
	a := connect(t, base, "dev", "")
	got := a.call("cognitive_context", map[string]any{"include": []string{"profile"}})
	if p := got["profile"].(map[string]any); p["principal"] != warden.DevPrincipal || p["profile"] != "observer" {
		t.Fatalf("dev context = %v", got)
	}

	// Without a token, DNS rebinding is the threat: foreign Host headers are refused.
	before := len(authFailures(t, env))
	if resp, data := post(t, base, map[string]string{"Host": "rebind.example"}, initialize); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dev request with a foreign Host header: %d %s, want 403", resp.StatusCode, data)
	}
	if af := authFailures(t, env); len(af) != before+1 || af[len(af)-1]["status"] != float64(403) {
		t.Fatalf("auth_failure receipts: %v", af[before:])
	}

	// Internal errors reach the agent as a generic sentence only.
	env.Store.Close()
	m := a.refused("guardian_status", nil, warden.EINTERNAL, "")
	if m["error"] != "Internal error." {
		t.Fatalf("internal error shown as %q", m["error"])
	}
}

// tools/list: every engine tool with its name, description and a schema
// derived from its argument type; arguments are decoded strictly.
func TestToolsListAndSchemas(t *testing.T) {
	env := wardentest.MustEnv(t)
	base := env.MustMCPServer(t)
	a := newAgent(t, env, base, "agent", warden.RoleRead)
	res, err := a.cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	byName := map[string]*sdk.Tool{}
	for _, tl := range res.Tools {
		got = append(got, tl.Name)
		byName[tl.Name] = tl
	}
	for _, tl := range governor.Tools() {
		want = append(want, tl.Name)
		if byName[tl.Name] == nil || byName[tl.Name].Description != tl.Description {
			t.Errorf("tool %s: listed as %+v", tl.Name, byName[tl.Name])
		}
	}
	slices.Sort(got)
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("tools (-engine +mcp):\n%s", d)
	}
	for _, name := range []string{"cognitive_context", "treasury_debit", "escalate_to_phoenix", "escalate_on_threat", "deescalate"} {
		if _, seed := governor.DefaultAuthority[name]; !seed {
			t.Errorf("seed tool %s missing from the authority matrix", name)
		}
	}

	schema := func(tool string) map[string]any {
		t.Helper()
		b, err := json.Marshal(byName[tool].InputSchema)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m["type"] != "object" || m["additionalProperties"] != false {
			t.Fatalf("%s schema %s: want a closed object", tool, b)
		}
		return m
	}
	debit := schema("treasury_debit")
	if req := debit["required"].([]any); !slices.Contains(req, any("budget_id")) || !slices.Contains(req, any("amount")) || slices.Contains(req, any("idempotency_key")) {
		t.Fatalf("treasury_debit required %v", req)
	}
	if typ := debit["properties"].(map[string]any)["amount"].(map[string]any)["type"]; typ != "integer" {
		t.Fatalf("amount type %v", typ)
	}
	esc := schema("escalate")["properties"].(map[string]any)
	if enum := esc["to_profile"].(map[string]any)["enum"]; !cmp.Equal(enum, []any{"observer", "operator", "guardian", "phoenix", "sovereign"}) {
		t.Fatalf("to_profile enum %v", enum)
	}
	if enum := esc["escalation_type"].(map[string]any)["enum"].([]any); len(enum) != len(warden.EscalationTypes) {
		t.Fatalf("escalation_type enum %v", enum)
	}
	if _, ok := esc["approved_by"].(map[string]any)["anyOf"]; !ok {
		t.Fatalf("approved_by schema %v, want string or array", esc["approved_by"])
	}
	schema("guardian_status")
	for _, tl := range governor.Tools() {
		if _, err := wardenmcp.InputSchema(tl); err != nil {
			t.Error(err)
		}
	}

	a.refused("treasury_balance", map[string]any{"budget_id": "b", "budgetid": "x"}, warden.EINVALID, "")
	a.refused("get_escalation_history", map[string]any{"limit": "ten"}, warden.EINVALID, "")
	a.call("escalate", map[string]any{"to_profile": "operator", "escalation_type": "operator_request", "reason": "one approver as a string", "approved_by": "x"})
}

// WithShutdown: once the server's context ends, open sessions close (so
// their event streams cannot hold up http.Server shutdown) and new requests
// are refused.
func TestHandlerShutdownClosesSessions(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Dev)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(wardenhttp.NewServer(wardenhttp.Options{Core: env.Core, Recorder: env.Recorder, Governor: env.Governor, Registry: prometheus.NewRegistry(),
		Mount: map[string]http.Handler{"/mcp": wardenmcp.Handler(env.Core, env.Governor, "test", wardenmcp.WithShutdown(ctx))}}))
	client := sdk.NewClient(&sdk.Implementation{Name: "shutdown", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: srv.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "guardian_status"}); err != nil {
		t.Fatal(err)
	}

	cancel()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }() // waits for every open stream
	select {
	case <-closed:
	case <-time.After(5 * time.Second): // a deadlock guard, not a timing assertion
		t.Fatal("server close is held up by an MCP session after shutdown began")
	}
}

func TestHandlerRefusesRequestsAfterShutdown(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Dev)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv := httptest.NewServer(wardenmcp.Handler(env.Core, env.Governor, "test", wardenmcp.WithShutdown(ctx)))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(initialize))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d after shutdown, want 503", resp.StatusCode)
	}
}
