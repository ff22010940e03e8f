package http_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

// TestAuthMatrix walks every registered route with no token, a wrong token,
// a revoked token, a token of a role the route does not allow, and a token
// of a role it allows. Refusals must be 401/403 and receipted.
func TestAuthMatrix(t *testing.T) {
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Core.AuthFailureBurst = 1 << 20 })
	base, api := env.MustServer(t)
	tokens := map[warden.Role]string{}
	for _, r := range warden.Roles {
		spec := engine.CredentialSpec{Name: "role-" + string(r), Roles: []warden.Role{r}}
		if r == warden.RoleReporter {
			spec.Source = "agent-1"
		}
		tokens[r] = env.MustCredential(t, spec)
	}
	revoked := env.MustCredential(t, engine.CredentialSpec{Name: "gone", Roles: []warden.Role{warden.RoleAdmin}})
	if _, err := env.Core.RevokeCredential(t.Context(), &warden.Principal{Name: "t", Roles: []warden.Role{warden.RoleAdmin}}, "gone"); err != nil {
		t.Fatal(err)
	}

	routes := api.Routes()
	if len(routes) < 8 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	for _, rt := range routes {
		path := strings.ReplaceAll(rt.Pattern, "{seq}", "0")
		t.Run(rt.Method+" "+rt.Pattern, func(t *testing.T) {
			if rt.Public {
				if got := do(t, rt.Method, base+path, ""); got == 401 || got == 403 {
					t.Fatalf("public route answered %d without a token", got)
				}
				return
			}
			for name, token := range map[string]string{"no token": "", "wrong token": "wdn_notatoken", "malformed": "x", "revoked": revoked} {
				before := countAuthFailures(t, env)
				if got := do(t, rt.Method, base+path, token); got != http.StatusUnauthorized {
					t.Errorf("%s: got %d, want 401", name, got)
				}
				if after := countAuthFailures(t, env); after != before+1 {
					t.Errorf("%s: auth_failure receipts went %d → %d, want one more", name, before, after)
				}
			}
			allowed := map[warden.Role]bool{warden.RoleAdmin: true}
			for _, r := range rt.Roles {
				allowed[r] = true
			}
			for _, r := range warden.Roles {
				got := do(t, rt.Method, base+path, tokens[r])
				if allowed[r] && (got == 401 || got == 403) {
					t.Errorf("role %s is allowed but got %d", r, got)
				}
				if !allowed[r] {
					before := countAuthFailures(t, env)
					if got := do(t, rt.Method, base+path, tokens[r]); got != http.StatusForbidden {
						t.Errorf("role %s is not allowed but got %d, want 403", r, got)
					}
					if after := countAuthFailures(t, env); after != before+1 {
						t.Errorf("role %s: 403 was not receipted", r)
					}
				}
			}
		})
	}
}

func countAuthFailures(t *testing.T, env *wardentest.Env) int {
	t.Helper()
	return len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure}))
}

func do(t *testing.T, method, url, token string) int {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
