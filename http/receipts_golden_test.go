package http_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/wardentest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/receipts.golden from this run")

// goldenRandom are body members whose values are random per run (ids,
// tokens, keys) or hash something random; the golden file holds a marker
// instead. Everything else a receipt says is compared byte for byte.
var goldenRandom = map[string]bool{
	"escalation_id": true, "decision_id": true, "invocation_id": true, "lockdown_id": true,
	"token_hash_prefix": true, "token_hash": true, "tem_context_hash": true, "receipt_hash": true, "root_hash": true,
	"bundle_hash": true, "public_key": true, "old_pubkey": true, "new_pubkey": true, "pubkey": true,
	"origin": true, "root": true, "policy_digest": true, "fingerprint": true, "kept_digest": true, "previous_digest": true, "digest": true,
}

// goldenPort hides the live target's port, which differs per run.
var goldenPort = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)

var goldenIDs = regexp.MustCompile(`(esc|dec|tem|LOCKDOWN-)_?[0-9a-f]{24}`)

// mask replaces the random members of a decoded body, at any depth.
func mask(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if goldenRandom[k] && e != nil {
				x[k] = "<random>"
			} else {
				x[k] = mask(e)
			}
		}
	case []any:
		for i := range x {
			x[i] = mask(x[i])
		}
	case string:
		return goldenIDs.ReplaceAllString(x, "<random-id>")
	}
	return v
}

// TestReceiptsGolden drives one scenario through the HTTP API — credentials,
// incidents of several classes with containment against a live target, the
// recovery ceremony, a policy reload, the integrity monitor, escalations
// with approvals, TTL expiry, budgets, decisions, Tem, anchoring, phoenix
// operations, refusals of every kind, a forensic export — and compares
// every receipt it leaves (type, scroll, tags, body with random values
// masked) with testdata/receipts.golden. The golden file was written by the
// engine before it was split into a core, a recorder and a governor, so a
// refactoring that changes what the ledger says fails here. Regenerate it
// with -update only for an intended change, and say so in the commit.
func TestReceiptsGolden(t *testing.T) {
	target := wardentest.MustTarget(t)
	target.Respond("/api/v1/vault/relock", http.StatusServiceUnavailable)
	env := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(target.URL)))
	mustStart(t, env)
	base, _ := env.MustServer(t)
	admin := env.Admin

	step := 0
	send := func(method, path, token string, body string) (int, map[string]any) {
		t.Helper()
		step++
		env.Clock.Advance(time.Second)
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, r)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(data, &out)
		return resp.StatusCode, out
	}
	must := func(want int, method, path, token, body string) map[string]any {
		t.Helper()
		code, out := send(method, path, token, body)
		if code != want && !(want == 200 && code/100 == 2) {
			t.Fatalf("step %d %s %s: %d %v, want %d", step, method, path, code, out, want)
		}
		return out
	}
	tool := func(want int, token, name, args string) map[string]any {
		t.Helper()
		return must(want, "POST", "/api/v1/governance/"+name, token, args)
	}
	cred := func(body string) string {
		t.Helper()
		return must(200, "POST", "/api/v1/credentials", admin, body)["token"].(string)
	}

	// Identity: credentials, a refused one, a bad token.
	rep := cred(`{"name":"rep","roles":["reporter"],"source":"agent-7","classes":["prompt_injection","tool_call_burst"]}`)
	agent := cred(`{"name":"agent-1","roles":["read"]}`)
	appr := cred(`{"name":"appr","roles":["approver"],"human":true}`)
	cred(`{"name":"ops","roles":["operator","recovery-admin"]}`)
	must(409, "POST", "/api/v1/credentials", admin, `{"name":"rep","roles":["read"]}`)
	must(401, "GET", "/api/v1/receipts", "wdn_not-a-token", "")
	must(403, "POST", "/api/v1/incidents/resolve", agent, `{"id":"INC-x"}`)

	// Incidents: contained, containment_failed, alert-only, a severity
	// window, a latched critical one, refusals and the ceremony.
	must(200, "POST", "/api/v1/incidents/report", rep, `{"class":"prompt_injection","source":"agent-7","description":"jailbreak attempt","evidence":{"prompt":"ignore previous"}}`)
	for i := 0; i < 3; i++ {
		must(200, "POST", "/api/v1/incidents/report", rep, fmt.Sprintf(`{"class":"tool_call_burst","source":"agent-7","description":"burst %d"}`, i))
	}
	must(403, "POST", "/api/v1/incidents/report", rep, `{"class":"tool_call_burst","source":"agent-8","description":"wrong source"}`)
	must(200, "POST", "/api/v1/incidents/report", admin, `{"class":"forbidden_airlock_request","source":"airlock","description":"egress","evidence":{"destination":"203.0.113.7:443"}}`)
	crit := must(200, "POST", "/api/v1/incidents/report", admin, `{"class":"unauthorized_access","severity":"critical","source":"vault","description":"vault opened"}`)
	id := crit["id"].(string)
	must(409, "POST", "/api/v1/incidents/resolve", admin, `{"id":"`+id+`"}`)
	must(409, "POST", "/api/v1/recovery/reattest", admin, `{"incident_id":"`+id+`"}`)
	must(200, "POST", "/api/v1/recovery/ack", admin, `{"incident_id":"`+id+`","operator":"admin@secai"}`)
	must(409, "POST", "/api/v1/recovery/ack", admin, `{"incident_id":"`+id+`","operator":"admin@secai"}`)
	must(200, "POST", "/api/v1/recovery/reattest", admin, `{"incident_id":"`+id+`"}`)
	must(200, "POST", "/api/v1/incidents/resolve", admin, `{"id":"`+id+`"}`)
	must(409, "POST", "/api/v1/incidents/resolve", admin, `{"id":"`+id+`"}`)
	must(200, "POST", "/api/v1/reload", admin, `{}`)

	// The integrity monitor: a baseline, a clean scan, a violation.
	watched := filepath.Join(t.TempDir(), "watched.conf")
	if err := os.WriteFile(watched, []byte("a=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"paths": []string{watched}})
	must(200, "POST", "/api/v1/integrity/baseline", admin, string(b))
	must(200, "POST", "/api/v1/integrity/scan", admin, `{}`)
	if err := os.WriteFile(watched, []byte("a=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must(200, "POST", "/api/v1/integrity/scan", admin, `{}`)

	// Governance: the ladder with approvals, refusals, TTL expiry.
	tool(200, agent, "escalate", `{"to_profile":"operator","escalation_type":"operator_request","reason":"maintenance"}`)
	tool(403, agent, "escalate", `{"to_profile":"phoenix","escalation_type":"crisis_declared","reason":"x"}`)
	tool(200, agent, "escalate_on_threat", `{"threat_id":"thr-1","threat_type":"exfiltration","confidence":0.85}`)
	tool(403, agent, "escalate_on_threat", `{"threat_id":"thr-2","threat_type":"probe","confidence":0.5}`)
	denied := tool(403, agent, "escalate_to_phoenix", `{"reason":"crisis","approved_by":"appr"}`)
	tool(200, appr, "approve_escalation", `{"request_digest":"`+denied["request_digest"].(string)+`"}`)
	tool(200, agent, "escalate_to_phoenix", `{"reason":"crisis","approved_by":"appr"}`)
	tool(200, agent, "cognitive_decide", `{"decision":"isolate host","reasoning":"burst","confidence":0.9,"evidence":["e1"]}`)
	tool(200, agent, "cognitive_invoke_tem", `{"threat_id":"thr-1","threat_type":"exfiltration","reason":"contain"}`)
	tool(200, agent, "guardian_anchor", `{}`)
	tool(403, agent, "phoenix_revoke_credentials", `{}`) // an agent is not human
	tool(200, agent, "phoenix_lockdown", `{"reason":"crisis"}`)
	tool(200, admin, "register_approver_key", `{"approver":"appr","public_key":"`+strings.Repeat("A", 43)+`="}`)
	tool(400, admin, "register_approver_key", `{"approver":"nobody","public_key":"`+strings.Repeat("A", 43)+`="}`)

	// Treasury: a budget, spending, refusals, a credit.
	tool(200, admin, "treasury_create_budget", `{"budget_id":"ops-q3","name":"ops","allocated":100,"currency":"USD"}`)
	tool(200, admin, "treasury_debit", `{"budget_id":"ops-q3","amount":60,"description":"gpu","idempotency_key":"k1"}`)
	tool(200, admin, "treasury_debit", `{"budget_id":"ops-q3","amount":60,"description":"gpu","idempotency_key":"k1"}`)
	tool(409, admin, "treasury_debit", `{"budget_id":"ops-q3","amount":50,"description":"more"}`)
	tool(404, admin, "treasury_debit", `{"budget_id":"none","amount":1,"description":"x"}`)
	tool(200, admin, "treasury_credit", `{"budget_id":"ops-q3","amount":10,"description":"top-up"}`)

	// TTLs: everything the agent holds expires.
	env.Clock.Advance(3 * time.Hour)
	tool(200, admin, "check_expired_escalations", `{}`)

	must(200, "GET", "/api/v1/forensic/export", admin, "")
	// An admin marks a credential human after the fact.
	must(200, "POST", "/api/v1/credentials/human", admin, `{"name":"ops","human":true}`)

	var buf bytes.Buffer
	for _, r := range env.MustReceipts(t, warden.ReceiptFilter{}) {
		var body any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		var mb bytes.Buffer
		enc := json.NewEncoder(&mb)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(mask(body)); err != nil {
			t.Fatal(err)
		}
		masked := bytes.TrimSpace(mb.Bytes())
		masked = bytes.ReplaceAll(masked, []byte(filepath.Dir(watched)), []byte("<tmp>"))
		masked = goldenPort.ReplaceAll(masked, []byte("127.0.0.1:<port>"))
		tags := append([]string(nil), r.Tags...)
		sort.Strings(tags)
		fmt.Fprintf(&buf, "%d %s %s %s %s\n\t%s\n", r.Seq, r.Timestamp, r.Scroll, r.Type, strings.Join(tags, ","), goldenIDs.ReplaceAll(masked, []byte("<random-id>")))
	}
	golden := filepath.Join("testdata", "receipts.golden")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		wl, gl := strings.Split(string(want), "\n"), strings.Split(buf.String(), "\n")
		for i := 0; i < len(wl) || i < len(gl); i++ {
			var w, g string
			if i < len(wl) {
				w = wl[i]
			}
			if i < len(gl) {
				g = gl[i]
			}
			if w != g {
				t.Fatalf("receipts differ from %s at line %d:\nwant %s\ngot  %s", golden, i+1, w, g)
			}
		}
	}
}
