package cli_test

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
	"github.com/warden-sh/warden/contain"
)

func TestServeDevModeIsReceiptedAndShutsDownWithCheckpoint(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, data, "--dev")

	var health map[string]any
	if st := httpJSON(t, "GET", s.URL+"/health", "", nil, &health); st != 200 || health["status"] != "ok" {
		t.Fatalf("health: %d %v", st, health)
	}
	for _, k := range []string{"open_incidents", "total_incidents"} {
		if _, ok := health[k]; !ok {
			t.Errorf("health lacks %q", k)
		}
	}
	// Dev mode: no token needed, and the mode is in a receipt.
	var list struct{ Receipts []*warden.Receipt }
	if st := httpJSON(t, "GET", s.URL+"/api/v1/receipts?type=server_start", "", nil, &list); st != 200 || len(list.Receipts) != 1 {
		t.Fatalf("server_start receipts: %d %d", st, len(list.Receipts))
	}
	var body struct{ Dev bool }
	json.Unmarshal(list.Receipts[0].Body, &body)
	if !body.Dev || !slices.Contains(list.Receipts[0].Tags, "dev-mode") {
		t.Fatalf("server_start does not record dev mode: %s %v", list.Receipts[0].Body, list.Receipts[0].Tags)
	}
	if st := httpJSON(t, "GET", s.URL+"/metrics", "", nil, nil); st != 200 {
		// /metrics is text; a JSON decode is not attempted with out=nil.
		t.Fatalf("metrics: %d", st)
	}
	s.stop(t)

	// The final checkpoint covers everything: strict verify passes.
	code, out, errs := run(t, "verify", "--data", data)
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("verify after clean shutdown: %d %q %q", code, out, errs)
	}
}

func TestServeDevRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "192.0.2.1:0", ":0"} {
		code, _, errs := run(t, "serve", "--dev", "--data", filepath.Join(t.TempDir(), "d"), "--addr", addr)
		if code != cli.ExitUsage || !strings.Contains(errs, "loopback") {
			t.Errorf("--dev --addr %s: exit %d %q", addr, code, errs)
		}
	}
}

func TestServeWithoutDevRequiresToken(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, out, _ := run(t, "init", "--data", data, "--json")
	if code != 0 {
		t.Fatal(out)
	}
	var init struct{ Token string }
	json.Unmarshal([]byte(out), &init)
	s := startServer(t, data)
	if st := httpJSON(t, "GET", s.URL+"/api/v1/receipts", "", nil, nil); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if st := httpJSON(t, "GET", s.URL+"/api/v1/receipts", init.Token, nil, nil); st != 200 {
		t.Fatalf("admin token: %d", st)
	}
	// Credentials through the API with the CLI's --url mode.
	t.Setenv("WARDEN_TOKEN", init.Token)
	code, out, errs := run(t, "credential", "add", "--url", s.URL, "--name", "agent-7", "--role", "reporter", "--source", "agent-7", "--json")
	if code != 0 {
		t.Fatalf("credential add --url: %d %s %s", code, out, errs)
	}
	code, out, _ = run(t, "credential", "list", "--url", s.URL, "--json")
	if code != 0 || !strings.Contains(out, `"agent-7"`) {
		t.Fatalf("credential list --url: %d %s", code, out)
	}
	code, _, _ = run(t, "credential", "revoke", "--url", s.URL, "agent-7")
	if code != 0 {
		t.Fatal("revoke failed")
	}
	code, _, errs = run(t, "credential", "revoke", "--url", s.URL, "agent-7")
	if code != cli.ExitFailure || !strings.Contains(errs, "conflict") {
		t.Fatalf("double revoke: %d %s", code, errs)
	}
}

func TestInitTokenShownOnceAndStoredHashed(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, out, _ := run(t, "init", "--data", data, "--json")
	if code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	var init struct{ Token, Pubkey string }
	if err := json.Unmarshal([]byte(out), &init); err != nil || !strings.HasPrefix(init.Token, "wdn_") {
		t.Fatalf("init output: %v %s", err, out)
	}
	st, err := os.Stat(data)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v", st.Mode().Perm())
	}
	for _, f := range []string{"ledger.key", "hmac.key", "webhook.key"} {
		st, err := os.Stat(filepath.Join(data, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v %v", f, st.Mode().Perm(), err)
		}
	}
	// The token appears nowhere on disk.
	filepath.Walk(data, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), init.Token) {
				t.Errorf("token found in %s", p)
			}
		}
		return nil
	})
	if code, _, errs := run(t, "init", "--data", data); code == 0 {
		t.Fatalf("second init succeeded: %s", errs)
	}
	code, out, _ = run(t, "credential", "list", "--data", data)
	if code != 0 || !strings.Contains(out, "admin") {
		t.Fatalf("list: %s", out)
	}
	code, out, _ = run(t, "receipts", "list", "--data", data, "--json")
	if code != 0 || strings.Contains(out, init.Token) || !strings.Contains(out, "credential_added") {
		t.Fatalf("receipts: %s", out)
	}
	code, out, _ = run(t, "receipts", "show", "0", "--data", data)
	if code != 0 || !strings.Contains(out, "proof:") {
		t.Fatalf("show: %s", out)
	}
}

// TestWebhooksAreSignedWithTheWebhookKey: the server signs webhooks with
// webhook.key, not with the forensic key, so a receiver that can check
// webhooks cannot forge a forensic bundle's HMAC.
func TestWebhooksAreSignedWithTheWebhookKey(t *testing.T) {
	got := make(chan *http.Request, 8)
	bodies := make(chan []byte, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	t.Cleanup(hook.Close)
	targets := newTargets(t)
	policy := policyFile(t, targets.URL,
		"  # webhooks:\n  #   - url: https://alerts.example.internal/warden\n  #     events: [containment, escalation, recovery]",
		"  webhooks:\n    - url: "+hook.URL+"/hook\n      events: [containment, escalation, recovery]")
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, data, "--dev", "--policy", policy)
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{
		"class": "forbidden_airlock_request", "source": "airlock", "description": "egress to an unlisted host",
	}, nil); st != 201 {
		t.Fatalf("report: %d", st)
	}
	var r *http.Request
	select {
	case r = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook arrived")
	}
	body := <-bodies
	key := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ts, sig := r.Header.Get(contain.HeaderTimestamp), r.Header.Get(contain.HeaderSignature)
	if !contain.VerifyWebhookSignature(key("webhook.key"), ts, body, sig) {
		t.Fatal("the webhook does not verify with webhook.key")
	}
	if contain.VerifyWebhookSignature(key("hmac.key"), ts, body, sig) {
		t.Fatal("the webhook is signed with the forensic key")
	}
}

// TestServeCreatesTheWebhookKeyOfAnOlderDirectory: a data directory from
// before webhook.key existed gets one on the first start, with a warning
// telling the operator to hand it out and rotate hmac.key.
func TestServeCreatesTheWebhookKeyOfAnOlderDirectory(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, "init", "--data", data); code != 0 {
		t.Fatal(errs)
	}
	key := filepath.Join(data, "webhook.key")
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "verify", "--data", data); code != 0 {
		t.Fatal(errs)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Fatalf("a read-only command created webhook.key: %v", err)
	}
	s := startServer(t, data, "--dev")
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("webhook.key after start: %v %v", st, err)
	}
	if log := s.stderr.String(); !strings.Contains(log, "created webhook.key") || !strings.Contains(log, "rotate hmac.key") {
		t.Fatalf("no warning in the log:\n%s", log)
	}
}
