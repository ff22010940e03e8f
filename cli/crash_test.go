package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
)

// buildBinary compiles cmd/warden once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "warden-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "warden")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/warden").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, out)
	}
	return bin, nil
})

type proc struct {
	cmd *exec.Cmd
	url string
	out *bytes.Buffer
}

func startProc(t *testing.T, bin, data string) *proc {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	var out bytes.Buffer
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--ready-file", ready, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return &proc{cmd: cmd, url: "http://" + strings.TrimSpace(string(b)), out: &out}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("server not ready: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond) // waiting for readiness, not timing
	}
}

// TestCrashKeepsEveryAcknowledgedWrite kills a real `warden serve` with
// SIGKILL at random moments while 16 clients write; after each restart every
// write that was acknowledged is present with its receipt, state and
// receipts match one to one, and `warden verify` passes.
func TestCrashKeepsEveryAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server; skipped with -short")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	out, err := exec.Command(bin, "init", "--data", data, "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var init struct{ Token string }
	json.Unmarshal(out, &init)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	acked := map[string]bool{}
	var mu sync.Mutex
	const cycles, clients = 6, 16
	for cycle := 0; cycle < cycles; cycle++ {
		p := startProc(t, bin, data)
		// Everything acknowledged before must have survived.
		checkAcked(t, p.url, init.Token, acked)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("c%d-%d-%d", cycle, c, i)
					st, err := post(p.url+"/api/v1/credentials", init.Token, map[string]any{"name": name, "roles": []string{"read"}})
					if err != nil {
						return // the server died under us: unacknowledged
					}
					if st == 201 {
						mu.Lock()
						acked[name] = true
						mu.Unlock()
					}
				}
			}(c)
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond) // a random moment to kill at
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		close(stop)
		wg.Wait()
	}
	p := startProc(t, bin, data)
	checkAcked(t, p.url, init.Token, acked)
	if len(acked) < cycles*clients {
		t.Fatalf("only %d writes acknowledged in %d cycles; the load did not run", len(acked), cycles)
	}
	// Restart anchored the tail left by the kill: strict verify passes
	// against the running server's store.
	vout, err := exec.Command(bin, "verify", "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("verify after crashes: %v: %s", err, vout)
	}
	t.Logf("%d acknowledged writes survived %d SIGKILLs; %s", len(acked), cycles, bytes.TrimSpace(vout))
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("clean shutdown: %v: %s", err, p.out.String())
	}
}

// checkAcked asserts every acknowledged credential exists and that
// credentials and credential_added receipts match one to one.
func checkAcked(t *testing.T, url, token string, acked map[string]bool) {
	t.Helper()
	have := map[string]bool{}
	// Every page of the listing, by its Link headers.
	for next := "/api/v1/credentials?limit=1000"; next != ""; {
		req, err := http.NewRequest("GET", url+next, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var creds struct {
			Credentials []*warden.Credential `json:"credentials"`
		}
		err = json.NewDecoder(resp.Body).Decode(&creds)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("list credentials: %d %v", resp.StatusCode, err)
		}
		for _, c := range creds.Credentials {
			have[c.Name] = true
		}
		next = ""
		if l := resp.Header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	for name := range acked {
		if !have[name] {
			t.Fatalf("acknowledged credential %q lost after SIGKILL", name)
		}
	}
	receipted := map[string]int{}
	var after *uint64
	for {
		q := url + "/api/v1/receipts?type=credential_added&limit=1000"
		if after != nil {
			q += fmt.Sprintf("&after=%d", *after)
		}
		var page struct {
			Receipts  []*warden.Receipt `json:"receipts"`
			NextAfter *uint64           `json:"next_after"`
		}
		if st := httpJSON(t, "GET", q, token, nil, &page); st != 200 {
			t.Fatalf("receipts: %d", st)
		}
		for _, r := range page.Receipts {
			var b struct{ Name string }
			json.Unmarshal(r.Body, &b)
			receipted[b.Name]++
		}
		if page.NextAfter == nil {
			break
		}
		after = page.NextAfter
	}
	for name := range have {
		if receipted[name] != 1 {
			t.Fatalf("credential %q has %d receipts, want exactly 1", name, receipted[name])
		}
	}
	if len(receipted) != len(have) {
		t.Fatalf("%d receipted credentials vs %d stored", len(receipted), len(have))
	}
}

func post(url, token string, body any) (int, error) {
	b, _ := json.Marshal(body)
	req, _ := newRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := crashClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sink json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&sink); err != nil {
		return 0, err // a torn response is not an acknowledgement
	}
	return resp.StatusCode, nil
}
