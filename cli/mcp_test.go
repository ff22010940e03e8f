package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/wardentest"
)

// stdioSession runs `warden mcp` in-process with args, its stdin and stdout
// piped to an SDK client session, and returns the session and the exit
// code channel.
func stdioSession(t *testing.T, args ...string) (*sdk.ClientSession, chan int, *syncBuffer) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	stderr := newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		code := cli.Main(context.Background(), append([]string{"mcp"}, args...), inR, outW, stderr)
		outW.Close()
		done <- code
	}()
	client := sdk.NewClient(&sdk.Implementation{Name: "stdio-test", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &sdk.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatalf("connect: %v (stderr %s)", err, stderr.String())
	}
	return cs, done, stderr
}

func stdioCall(t *testing.T, cs *sdk.ClientSession, tool string, args map[string]any) (map[string]any, bool) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	m, ok := res.StructuredContent.(map[string]any)
	if !ok || len(res.Content) != 1 {
		t.Fatalf("%s: structured %T, %d contents", tool, res.StructuredContent, len(res.Content))
	}
	if text := res.Content[0].(*sdk.TextContent).Text; res.IsError && text != m["error"] {
		t.Fatalf("%s: error text %q vs structured %v", tool, text, m)
	}
	return m, res.IsError
}

// `warden mcp` proxies every tool to a real server over HTTP with the
// credential from WARDEN_TOKEN; refusals come back as the same tool errors
// as over /mcp, receipted by the server.
func TestMCPStdioProxy(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Drill)
	url, _ := env.MustServer(t)
	agent := env.MustCredential(t, engine.CredentialSpec{Name: "stdio-agent", Roles: []warden.Role{warden.RoleRead}})
	t.Setenv("WARDEN_URL", url)
	t.Setenv("WARDEN_TOKEN", agent)

	cs, done, stderr := stdioSession(t)
	list, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names, want []string
	for _, tl := range list.Tools {
		names = append(names, tl.Name)
		if tl.InputSchema == nil {
			t.Errorf("%s has no input schema", tl.Name)
		}
	}
	for _, tl := range governor.Tools() {
		want = append(want, tl.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}

	// Allowed: the call acts as the token's principal on the server.
	got, isErr := stdioCall(t, cs, "treasury_create_budget", map[string]any{"budget_id": "drill-budget-001", "name": "Drill Training Budget", "allocated": 100, "currency": "DRILL_UNITS"})
	if isErr || got["success"] != true || got["created_by"] != "stdio-agent" || got["balance"] != float64(100) {
		t.Fatalf("create budget = %v", got)
	}

	// Denied by the ladder, with the seed's sentence and the denial's data.
	got, isErr = stdioCall(t, cs, "escalate", map[string]any{"from_profile": "observer", "to_profile": "guardian", "escalation_type": "threat_detected", "reason": "skip"})
	if !isErr || got["success"] != false || got["code"] != warden.EDENIED || !strings.Contains(got["error"].(string), "No escalation path from observer to guardian") {
		t.Fatalf("skip-level escalate = %v", got)
	}
	got, isErr = stdioCall(t, cs, "treasury_debit", map[string]any{"budget_id": "drill-budget-001", "amount": 500, "description": "DRILL: over budget"})
	if !isErr || got["code"] != warden.EINSUFFICIENT || !strings.Contains(got["error"].(string), "insufficient") {
		t.Fatalf("over-budget debit = %v", got)
	}
	// Denied by the authority matrix: receipted as an auth_failure by the server.
	got, isErr = stdioCall(t, cs, "cognitive_invoke_tem", map[string]any{"threat_id": "thr_DRILL"})
	if !isErr || got["code"] != warden.EDENIED || !strings.Contains(got["error"].(string), "requires profile guardian") {
		t.Fatalf("tem at observer = %v", got)
	}
	af := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure})
	if len(af) != 1 || !strings.Contains(string(af[0].Body), `"principal":"stdio-agent"`) {
		t.Fatalf("auth_failure receipts %v", af)
	}
	// Strict decoding happens on the server too.
	if got, isErr = stdioCall(t, cs, "treasury_balance", map[string]any{"budget_id": "drill-budget-001", "extra": 1}); !isErr || got["code"] != warden.EINVALID {
		t.Fatalf("unknown argument = %v", got)
	}

	// Closing stdin ends the process cleanly.
	cs.Close()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("warden mcp exited %d: %s", code, stderr.String())
	}

	// A bad credential: every call is refused 401 by the server.
	cs, done, _ = stdioSession(t, "--token", "wdn_not-a-token")
	got, isErr = stdioCall(t, cs, "guardian_status", nil)
	if !isErr || got["code"] != warden.EUNAUTHORIZED {
		t.Fatalf("call with an unknown token = %v", got)
	}
	cs.Close()
	<-done
}

// A script that pipes its whole session into `warden mcp` and closes
// stdin gets every answer, initialize first, before the process exits.
func TestMCPStdioScript(t *testing.T) {
	env := wardentest.MustEnv(t)
	url, _ := env.MustServer(t)
	t.Setenv("WARDEN_URL", url)
	t.Setenv("WARDEN_TOKEN", env.MustCredential(t, engine.CredentialSpec{Name: "script", Roles: []warden.Role{warden.RoleRead}}))

	script := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"script","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"guardian_status","arguments":{}}}`,
	}, "\n") + "\n"
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	if code := cli.Main(t.Context(), []string{"mcp"}, strings.NewReader(script), stdout, stderr); code != cli.ExitOK {
		t.Fatalf("warden mcp exited %d: %s", code, stderr.String())
	}
	var ids []float64
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var m struct {
			ID     float64
			Error  any
			Result struct{ IsError bool }
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil || m.Error != nil || m.Result.IsError {
			t.Fatalf("answer %s (%v)", line, err)
		}
		ids = append(ids, m.ID)
	}
	if len(ids) != 3 || ids[0] != 1 || !slices.Contains(ids, 2) || !slices.Contains(ids, 3) {
		t.Fatalf("answered %v, want 1 first, then 2 and 3; stdout:\n%s", ids, stdout.String())
	}
}

// End to end: `warden mcp` against `warden serve --dev --drill`, and the
// streamable endpoint /mcp on the same listener.
func TestMCPAgainstWardenServe(t *testing.T) {
	s := startServer(t, t.TempDir()+"/data", "--dev", "--drill")
	t.Setenv("WARDEN_URL", s.URL)
	t.Setenv("WARDEN_TOKEN", "")
	cs, done, stderr := stdioSession(t)
	got, isErr := stdioCall(t, cs, "cognitive_context", map[string]any{"include": []string{"health", "profile"}})
	if isErr || got["health"].(map[string]any)["drill_mode"] != true || got["profile"].(map[string]any)["principal"] != warden.DevPrincipal {
		t.Fatalf("context over stdio = %v", got)
	}
	cs.Close()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("warden mcp exited %d: %s", code, stderr.String())
	}
	// Without a token it says, once and in flags, what a normal server
	// would do with every call (issue 10: CLI errors speak CLI).
	if !strings.Contains(stderr.String(), "no token (--token or WARDEN_TOKEN)") {
		t.Errorf("warden mcp without a token: stderr %q", stderr.String())
	}

	client := sdk.NewClient(&sdk.Implementation{Name: "http-test", Version: "1"}, nil)
	hs, err := client.Connect(t.Context(), &sdk.StreamableClientTransport{Endpoint: s.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	res, err := hs.CallTool(t.Context(), &sdk.CallToolParams{Name: "escalate", Arguments: map[string]any{"to_profile": "phoenix", "escalation_type": "crisis_declared", "reason": "skip"}})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.StructuredContent.(map[string]any); !res.IsError || !strings.Contains(m["error"].(string), "No escalation path from observer to phoenix") {
		t.Fatalf("skip-level escalate over /mcp = %v", m)
	}
}
