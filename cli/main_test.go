package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-sh/warden/cli"
)

// run runs warden with args and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(t.Context(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// server is a `warden serve` running in-process on 127.0.0.1:0.
type server struct {
	URL    string
	cancel context.CancelFunc
	done   chan int
	stderr *syncBuffer
}

type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { s := &syncBuffer{mu: make(chan struct{}, 1)}; return s }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// startServer runs `warden serve` with args until the test ends or stop.
func startServer(t *testing.T, data string, args ...string) *server {
	t.Helper()
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--compat-ports") }) {
		// --dev would take the fixed step 10 ports; parallel tests must not.
		args = append(args, "--compat-ports=false")
	}
	return startServerAsIs(t, data, args...)
}

// startServerAsIs is startServer without test defaults: args as given.
func startServerAsIs(t *testing.T, data string, args ...string) *server {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan int, 1), stderr: newSyncBuffer()}
	full := append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--ready-file", ready}, args...)
	go func() {
		s.done <- cli.Main(ctx, full, strings.NewReader(""), io.Discard, s.stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			s.URL = "http://" + strings.TrimSpace(string(b))
			break
		}
		select {
		case code := <-s.done:
			t.Fatalf("serve exited with %d: %s", code, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %s", s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // waiting for readiness, not timing
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends the equivalent of SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if code := <-s.done; code != 0 {
		t.Errorf("serve exited with %d: %s", code, s.stderr.String())
	}
}

func httpJSON(t *testing.T, method, url, token string, in any, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, data)
		}
	}
	return resp.StatusCode
}

func wardenNow() time.Time { return time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC) }

var crashClient = &http.Client{Timeout: 10 * time.Second}

func newRequest(method, url string, body io.Reader) (*http.Request, error) {
	return http.NewRequest(method, url, body)
}
