package mcp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/wardentest"
)

// bearerTransport adds a bearer credential to every request, as an MCP
// client configured with an Authorization header does.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// agent is one MCP client session over streamable HTTP with one credential.
type agent struct {
	t    *testing.T
	name string
	cs   *sdk.ClientSession
}

// connect opens an MCP session at base+"/mcp" with token ("" for none). The
// session is closed when the test ends, before the server (LIFO cleanup).
func connect(t *testing.T, base, name, token string) *agent {
	t.Helper()
	client := sdk.NewClient(&sdk.Implementation{Name: "drill-" + name, Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{
		Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{token}}}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(func() { cs.Close() })
	return &agent{t: t, name: name, cs: cs}
}

// newAgent registers a credential with roles and connects with it.
func newAgent(t *testing.T, env *wardentest.Env, base, name string, roles ...warden.Role) *agent {
	t.Helper()
	token := env.MustCredential(t, engine.CredentialSpec{Name: name, Roles: roles})
	return connect(t, base, name, token)
}

// result calls a tool and returns its structured content and IsError,
// checking that the text content says the same.
func (a *agent) result(tool string, args map[string]any) (map[string]any, bool) {
	a.t.Helper()
	res, err := a.cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		a.t.Fatalf("%s: %s: %v", a.name, tool, err)
	}
	return checkResult(a.t, tool, res)
}

func checkResult(t *testing.T, tool string, res *sdk.CallToolResult) (map[string]any, bool) {
	t.Helper()
	m, ok := res.StructuredContent.(map[string]any)
	if !ok {
		t.Fatalf("%s: structured content is %T, want an object", tool, res.StructuredContent)
	}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %d content items, want 1", tool, len(res.Content))
	}
	text, ok := res.Content[0].(*sdk.TextContent)
	if !ok {
		t.Fatalf("%s: content is %T, want text", tool, res.Content[0])
	}
	if res.IsError {
		if text.Text != m["error"] || m["success"] != false || m["code"] == nil {
			t.Fatalf("%s: tool error text %q, structured %v", tool, text.Text, m)
		}
		return m, true
	}
	var fromText map[string]any
	if err := json.Unmarshal([]byte(text.Text), &fromText); err != nil {
		t.Fatalf("%s: text content is not JSON: %v", tool, err)
	}
	if d := cmp.Diff(m, fromText); d != "" {
		t.Fatalf("%s: text and structured content differ (-structured +text):\n%s", tool, d)
	}
	return m, false
}

// call calls a tool that must succeed.
func (a *agent) call(tool string, args map[string]any) map[string]any {
	a.t.Helper()
	m, isErr := a.result(tool, args)
	if isErr {
		a.t.Fatalf("%s: %s(%v) refused: %v", a.name, tool, args, m)
	}
	return m
}

// refused calls a tool that must be refused with code, its sentence
// containing want.
func (a *agent) refused(tool string, args map[string]any, code, want string) map[string]any {
	a.t.Helper()
	m, isErr := a.result(tool, args)
	if !isErr {
		a.t.Fatalf("%s: %s(%v) succeeded, want %s refusal: %v", a.name, tool, args, code, m)
	}
	if m["code"] != code || !strings.Contains(m["error"].(string), want) {
		a.t.Fatalf("%s: %s refused with %v %q, want %s containing %q", a.name, tool, m["code"], m["error"], code, want)
	}
	return m
}

// profile returns the agent's current profile as the agent reads it.
func (a *agent) profile() string {
	a.t.Helper()
	ctx := a.call("cognitive_context", map[string]any{"include": []string{"profile"}})
	return ctx["profile"].(map[string]any)["profile"].(string)
}

// escalate raises the agent one hop with a reason.
func (a *agent) escalate(to string) map[string]any {
	a.t.Helper()
	return a.call("escalate", map[string]any{"to_profile": to, "escalation_type": "operator_request", "reason": "DRILL: " + to + " for " + a.name})
}

// receipts returns the receipts of type typ, oldest first.
func receipts(t *testing.T, env *wardentest.Env, typ string) []*warden.Receipt {
	t.Helper()
	return env.MustReceipts(t, warden.ReceiptFilter{Type: typ})
}

// body decodes a receipt body.
func body(t *testing.T, r *warden.Receipt) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// byHash returns the receipt whose root hash is h.
func byHash(t *testing.T, env *wardentest.Env, h any) *warden.Receipt {
	t.Helper()
	for _, r := range env.MustReceipts(t, warden.ReceiptFilter{}) {
		if r.RootHash == h {
			return r
		}
	}
	t.Fatalf("no receipt with root hash %v", h)
	return nil
}

// authFailures returns the bodies of auth_failure receipts.
func authFailures(t *testing.T, env *wardentest.Env) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range receipts(t, env, warden.ReceiptAuthFailure) {
		out = append(out, body(t, r))
	}
	return out
}

func hasTag(r *warden.Receipt, prefix string) bool {
	for _, tag := range r.Tags {
		if strings.HasPrefix(tag, prefix) {
			return true
		}
	}
	return false
}
