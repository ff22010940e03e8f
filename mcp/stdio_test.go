package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/warden-sh/warden/engine/governor"
	wardenmcp "github.com/warden-sh/warden/mcp"
	"github.com/warden-sh/warden/wardentest"
)

// stdioWait bounds how long a test waits for ServeIO to return.
const stdioWait = 10 * time.Second

const (
	stdioInitialized = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
	stdioToolsList   = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	stdioStatus      = `{"jsonrpc":"2.0","id":"3","method":"tools/call","params":{"name":"guardian_status","arguments":{}}}`
)

// lockedBuffer is ServeIO's stdout: the SDK writes it from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// devServer is an in-process MCP server over a --dev engine, where a call
// without a credential acts as the dev principal.
func devServer(t *testing.T) *sdk.Server {
	t.Helper()
	env := wardentest.MustEnv(t, wardentest.Dev)
	return wardenmcp.NewServer(env.Core, env.Governor, "test")
}

// runServeIO runs ServeIO until it returns, failing the test if it takes
// longer than stdioWait.
func runServeIO(t *testing.T, ctx context.Context, s *sdk.Server, in io.Reader, out io.Writer) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- wardenmcp.ServeIO(ctx, s, in, out) }()
	select {
	case err := <-done:
		return err
	case <-time.After(stdioWait):
		t.Fatalf("ServeIO did not return within %s", stdioWait)
		return nil
	}
}

// stdioAnswers decodes ServeIO's output, one message or batch a line, and
// returns the answers in the order written, keyed by their raw id.
func stdioAnswers(t *testing.T, out string) (order []string, byID map[string]map[string]any) {
	t.Helper()
	byID = map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var batch []json.RawMessage
		if json.Unmarshal([]byte(line), &batch) != nil {
			batch = []json.RawMessage{json.RawMessage(line)}
		}
		for _, raw := range batch {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("output line is not JSON-RPC: %s", line)
			}
			if _, ok := m["method"]; ok {
				continue // a notification or request to the client
			}
			var v map[string]any
			json.Unmarshal(raw, &v)
			id := string(m["id"])
			if _, dup := byID[id]; dup {
				t.Fatalf("answer %s written twice:\n%s", id, out)
			}
			order = append(order, id)
			byID[id] = v
		}
	}
	return order, byID
}

// checkAnswered fails unless the output answers exactly ids, initialize
// (id 1) first, each with a result and no error.
func checkAnswered(t *testing.T, out string, ids ...string) map[string]map[string]any {
	t.Helper()
	order, byID := stdioAnswers(t, out)
	if len(order) != len(ids) || order[0] != "1" {
		t.Fatalf("answers %v, want %v with 1 first; output:\n%s", order, ids, out)
	}
	for _, id := range ids {
		a, ok := byID[id]
		if !ok {
			t.Fatalf("no answer for %s; output:\n%s", id, out)
		}
		res, _ := a["result"].(map[string]any)
		if a["error"] != nil || res == nil || res["isError"] == true {
			t.Fatalf("answer %s is an error: %v", id, a)
		}
	}
	return byID
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// A request read just before the end of input is answered before ServeIO
// returns: `printf initialize | warden mcp` prints the initialize result.
func TestServeIOAnswersBeforeEOF(t *testing.T) {
	out := &lockedBuffer{}
	if err := runServeIO(t, t.Context(), devServer(t), strings.NewReader(lines(initialize)), out); err != nil {
		t.Fatalf("ServeIO: %v", err)
	}
	byID := checkAnswered(t, out.String(), "1")
	if info := byID["1"]["result"].(map[string]any)["serverInfo"].(map[string]any); info["name"] != wardenmcp.ServerName {
		t.Fatalf("serverInfo %v", info)
	}
}

// A client that writes its whole session at once — as a script piping a
// file does — gets every answer, initialize first, and none is an error.
func TestServeIOWholeSessionAtOnce(t *testing.T) {
	for name, in := range map[string]string{
		"lines":                      lines(initialize, stdioInitialized, stdioToolsList, stdioStatus),
		"final line without newline": strings.TrimSuffix(lines(initialize, stdioInitialized, stdioToolsList, stdioStatus), "\n"),
		// Batches exist up to protocol 2025-03-26; the answer is one array.
		"batch": lines(strings.Replace(initialize, "2025-06-18", "2025-03-26", 1), stdioInitialized,
			"["+stdioToolsList+","+stdioStatus+"]"),
	} {
		t.Run(name, func(t *testing.T) {
			out := &lockedBuffer{}
			if err := runServeIO(t, t.Context(), devServer(t), strings.NewReader(in), out); err != nil {
				t.Fatalf("ServeIO: %v", err)
			}
			byID := checkAnswered(t, out.String(), "1", "2", `"3"`)
			if tools := byID["2"]["result"].(map[string]any)["tools"].([]any); len(tools) != len(governor.Tools()) {
				t.Fatalf("tools/list listed %d tools", len(tools))
			}
			if sc := byID[`"3"`]["result"].(map[string]any)["structuredContent"].(map[string]any); sc["status"] != "operational" {
				t.Fatalf("guardian_status = %v", sc)
			}
		})
	}
}

// A line that is not JSON ends the session with the SDK's parse error,
// after the requests read before it are answered.
func TestServeIOMalformedLine(t *testing.T) {
	out := &lockedBuffer{}
	err := runServeIO(t, t.Context(), devServer(t), strings.NewReader(lines(initialize, stdioToolsList, "not json", stdioStatus)), out)
	if err == nil || !strings.Contains(err.Error(), "invalid character") {
		t.Fatalf("ServeIO = %v, want the SDK's parse error", err)
	}
	checkAnswered(t, out.String(), "1", "2")
}

// A line that is JSON but not a JSON-RPC 2.0 message may end the session
// too: the requests read before it are answered first.
func TestServeIONotAMessage(t *testing.T) {
	for _, bad := range []string{`123`, `[]`, `"x"`, `{"jsonrpc":"1.0","id":9,"method":"ping"}`, `[1]`} {
		t.Run(bad, func(t *testing.T) {
			out := &lockedBuffer{}
			runServeIO(t, t.Context(), devServer(t), strings.NewReader(lines(initialize, stdioToolsList, bad, stdioStatus)), out)
			_, byID := stdioAnswers(t, out.String())
			for _, id := range []string{"1", "2"} {
				if a, ok := byID[id]; !ok || a["result"] == nil {
					t.Fatalf("request %s before %s: answer %v; output:\n%s", id, bad, a, out.String())
				}
			}
		})
	}
}

// When ctx is done, ServeIO returns promptly though its input never ends
// and cannot be closed (as a blocking stdin), after answering what it read.
func TestServeIOCancelWithEndlessInput(t *testing.T) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() }) // releases the goroutine reading pr
	outR, outW := io.Pipe()
	s := devServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- wardenmcp.ServeIO(ctx, s, struct{ io.Reader }{pr}, outW) }()

	if _, err := io.WriteString(pw, lines(initialize, stdioInitialized, stdioStatus)); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	dec := json.NewDecoder(io.TeeReader(outR, &out))
	for range 2 {
		var m json.RawMessage
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("reading answers: %v", err)
		}
	}
	go io.Copy(io.Discard, outR)
	checkAnswered(t, out.String(), "1", `"3"`)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeIO: %v", err)
		}
	case <-time.After(stdioWait):
		t.Fatalf("ServeIO did not return within %s of ctx being done", stdioWait)
	}
}

// hangingServer is a remote MCP server whose every tool call hangs until
// the call is cancelled or the test ends; called receives each call.
func hangingServer(t *testing.T) (s *sdk.Server, called <-chan struct{}) {
	t.Helper()
	release, calls := make(chan struct{}), make(chan struct{}, 16)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, `{"success":false,"error":"released","code":"internal"}`, http.StatusInternalServerError)
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	return wardenmcp.NewRemoteServer(governor.Tools(), hang.URL, "", "test",
		wardenmcp.WithLogger(slog.New(slog.DiscardHandler))), calls
}

// setDrainTimeout sets wardenmcp.DrainTimeout until the test ends.
func setDrainTimeout(t *testing.T, d time.Duration) {
	t.Helper()
	prev := wardenmcp.DrainTimeout
	wardenmcp.DrainTimeout = d
	t.Cleanup(func() { wardenmcp.DrainTimeout = prev })
}

// The wait for answers at the end of input is bounded by DrainTimeout: a
// call that never ends does not hold ServeIO, and the others are answered.
func TestServeIODrainTimeout(t *testing.T) {
	s, _ := hangingServer(t)
	setDrainTimeout(t, 100*time.Millisecond)
	out := &lockedBuffer{}
	if err := runServeIO(t, t.Context(), s, strings.NewReader(lines(initialize, stdioInitialized, stdioStatus, stdioToolsList)), out); err != nil {
		t.Fatalf("ServeIO: %v", err)
	}
	// The hanging call may be answered with an error as the session ends.
	order, byID := stdioAnswers(t, out.String())
	if len(order) < 2 || order[0] != "1" || byID["2"]["result"] == nil {
		t.Fatalf("answers %v, want 1 first and 2; output:\n%s", order, out)
	}
}

// The wait for answers at the end of input also ends when ctx is done.
func TestServeIOCancelWhileDraining(t *testing.T) {
	s, called := hangingServer(t)
	setDrainTimeout(t, time.Hour)
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- wardenmcp.ServeIO(ctx, s, strings.NewReader(lines(initialize, stdioInitialized, stdioStatus, stdioToolsList)), outW)
	}()

	var out strings.Builder
	dec := json.NewDecoder(io.TeeReader(outR, &out))
	for range 2 {
		var m json.RawMessage
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("reading answers: %v", err)
		}
	}
	go io.Copy(io.Discard, outR)
	checkAnswered(t, out.String(), "1", "2")
	<-called

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeIO: %v", err)
		}
	case <-time.After(stdioWait):
		t.Fatalf("ServeIO did not return within %s of ctx being done", stdioWait)
	}
}
