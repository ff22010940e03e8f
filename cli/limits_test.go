package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sh/warden/cli"
)

// metric reads one unlabelled metric from a server's /metrics.
func metric(t *testing.T, base, name string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return ""
}

// initialize opens an MCP session with token and returns the status.
func initialize(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeSessionLimitsAndOfflineRevocation: `warden serve`'s MCP
// session flags take effect, and a credential revoked by `warden
// credential revoke --data DIR` — another process on the running server's
// data directory — has its sessions closed by the server within its
// revocation loop (its requests are refused at once).
func TestServeSessionLimitsAndOfflineRevocation(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, out, errs := run(t, "init", "--data", data, "--json"); code != 0 {
		t.Fatal(out, errs)
	}
	code, out, errs := run(t, "credential", "add", "--data", data, "--name", "agent", "--role", "read", "--json")
	if code != 0 {
		t.Fatal(out, errs)
	}
	var cred struct{ Token string }
	if err := json.Unmarshal([]byte(out), &cred); err != nil || cred.Token == "" {
		t.Fatalf("credential add: %v %s", err, out)
	}
	s := startServer(t, data, "--mcp-max-sessions-per-principal", "2", "--mcp-session-idle", "1h")
	for i, want := range []int{200, 200, 429} {
		if got := initialize(t, s.URL, cred.Token); got != want {
			t.Fatalf("initialize %d: %d, want %d", i, got, want)
		}
	}
	if got := metric(t, s.URL, "warden_mcp_sessions_open"); got != "2" {
		t.Fatalf("open sessions %s, want 2", got)
	}

	if code, _, errs := run(t, "credential", "revoke", "--data", data, "agent"); code != 0 {
		t.Fatalf("credential revoke --data: %d %s", code, errs)
	}
	if got := initialize(t, s.URL, cred.Token); got != http.StatusUnauthorized {
		t.Fatalf("initialize after the revocation: %d, want 401 at once", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for metric(t, s.URL, "warden_mcp_sessions_open") != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("the revoked credential's sessions are still open: %s", metric(t, s.URL, "warden_mcp_sessions_open"))
		}
		time.Sleep(50 * time.Millisecond) // waiting for the loop, not timing it
	}
}

// TestServeLimitFlagsMustBePositive: a zero or negative limit is a usage
// error, not "unlimited".
func TestServeLimitFlagsMustBePositive(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, flag := range []string{"--max-streams", "--max-streams-per-principal", "--mcp-max-sessions", "--mcp-max-sessions-per-principal", "--mcp-session-idle"} {
		v := "0"
		if flag == "--mcp-session-idle" {
			v = "0s"
		}
		code, _, errs := run(t, "serve", "--data", data, "--addr", "127.0.0.1:0", flag, v)
		if code != cli.ExitUsage || !strings.Contains(errs, flag+" must be positive") {
			t.Errorf("%s %s: exit %d %q", flag, v, code, errs)
		}
	}
}
