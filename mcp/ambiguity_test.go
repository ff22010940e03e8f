package mcp_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/wardentest"
)

// TestMCPTwoAuthorizationHeadersAreRefused: /mcp refuses a request with
// two Authorization headers with 400 and the JSON error, receipted, even
// when both are valid; before, the first one won silently.
func TestMCPTwoAuthorizationHeadersAreRefused(t *testing.T) {
	env := wardentest.MustEnv(t)
	base := env.MustMCPServer(t)
	reader := env.MustCredential(t, engine.CredentialSpec{Name: "reader", Roles: []warden.Role{warden.RoleRead}})
	for name, auth := range map[string][]string{
		"admin then reader": {"Bearer " + env.Admin, "Bearer " + reader},
		"reader twice":      {"Bearer " + reader, "Bearer " + reader},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(authFailures(t, env))
			req, err := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(initialize))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for _, a := range auth {
				req.Header.Add("Authorization", a)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error, Code string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusBadRequest || e.Code != warden.EINVALID {
				t.Fatalf("status %d body %+v (%v), want 400 invalid", resp.StatusCode, e, err)
			}
			if resp.Header.Get("Mcp-Session-Id") != "" {
				t.Fatal("a session was opened")
			}
			af := authFailures(t, env)
			if len(af) != before+1 || af[len(af)-1]["status"] != float64(400) {
				t.Fatalf("auth_failure receipts: %v", af[before:])
			}
		})
	}
}
