package http_test

import (
	"encoding/json"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/wardentest"
)

// TestHumanCredentialsOverHTTP: only an admin sets the human attribute —
// with POST /api/v1/credentials {"human": true} or later with POST
// /api/v1/credentials/human, each receipted; credential_added carries
// "human" only when true, so receipts of credentials made before the
// attribute replay unchanged; anyone else is refused 403 and receipted.
func TestHumanCredentialsOverHTTP(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	var alice struct {
		warden.Credential
		Token string `json:"token"`
	}
	mustCall(t, 201, "POST", base+"/api/v1/credentials", env.Admin, map[string]any{"name": "alice", "roles": []string{"approver"}, "human": true}, &alice)
	if !alice.Human || alice.Token == "" {
		t.Fatalf("created %+v", alice)
	}
	bot := env.MustCredential(t, engine.CredentialSpec{Name: "bot", Roles: []warden.Role{warden.RoleOperator}})
	bodies := map[string]map[string]any{}
	for _, r := range env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptCredential}) {
		var b map[string]any
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		bodies[b["name"].(string)] = b
	}
	if bodies["alice"]["human"] != true {
		t.Fatalf("alice's credential_added body %v lacks human: true", bodies["alice"])
	}
	for _, name := range []string{"admin", "bot"} {
		if _, has := bodies[name]["human"]; has {
			t.Fatalf("%s's credential_added body %v names human though it is not", name, bodies[name])
		}
	}

	// Only an admin, not even an operator acting on itself.
	failures := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure}))
	mustCall(t, 403, "POST", base+"/api/v1/credentials/human", bot, map[string]any{"name": "bot", "human": true}, nil)
	mustCall(t, 403, "POST", base+"/api/v1/credentials", bot, map[string]any{"name": "x", "roles": []string{"read"}, "human": true}, nil)
	if n := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure})); n != failures+2 {
		t.Fatalf("%d auth_failure receipts, want %d", n, failures+2)
	}

	var c warden.Credential
	mustCall(t, 200, "POST", base+"/api/v1/credentials/human", env.Admin, map[string]any{"name": "bot", "human": true}, &c)
	mustCall(t, 200, "POST", base+"/api/v1/credentials/human", env.Admin, map[string]any{"name": "bot", "human": true}, &c) // unchanged: no receipt
	mustCall(t, 200, "POST", base+"/api/v1/credentials/human", env.Admin, map[string]any{"name": "alice", "human": false}, &c)
	mustCall(t, 404, "POST", base+"/api/v1/credentials/human", env.Admin, map[string]any{"name": "nobody", "human": true}, nil)
	var got []string
	for _, r := range env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptCredentialHuman}) {
		got = append(got, string(r.Body))
	}
	want := []string{`{"by":"admin","human":true,"name":"bot"}`, `{"by":"admin","human":false,"name":"alice"}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("credential_human_set receipts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var list struct {
		Credentials []warden.Credential `json:"credentials"`
	}
	mustCall(t, 200, "GET", base+"/api/v1/credentials", env.Admin, nil, &list)
	for _, c := range list.Credentials {
		if c.Human != (c.Name == "bot") {
			t.Errorf("listed %s human %v", c.Name, c.Human)
		}
	}
}

// TestOthersEscalationsRefusedAndReceipted: over HTTP, a read-role
// principal asking for everyone's active escalations (subject "*") is
// refused 403 with the rule's sentence and an auth_failure receipt.
func TestOthersEscalationsRefusedAndReceipted(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	reader := env.MustCredential(t, engine.CredentialSpec{Name: "reader", Roles: []warden.Role{warden.RoleRead}})
	failures := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure}))
	data := mustCall(t, 403, "POST", base+"/api/v1/governance/get_active_escalations", reader, map[string]any{"subject": "*"}, nil)
	if !strings.Contains(string(data), "needs the operator role") {
		t.Fatalf("refusal %s", data)
	}
	af := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure})
	if len(af) != failures+1 || !strings.Contains(string(af[len(af)-1].Body), `"principal":"reader"`) {
		t.Fatalf("auth_failure receipts %d (want %d)", len(af), failures+1)
	}
	op := env.MustCredential(t, engine.CredentialSpec{Name: "op", Roles: []warden.Role{warden.RoleOperator}})
	mustCall(t, 200, "POST", base+"/api/v1/governance/get_active_escalations", op, map[string]any{"subject": "*"}, nil)
}
