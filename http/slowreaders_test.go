package http_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	wardenhttp "github.com/warden-sh/warden/http"
	"github.com/warden-sh/warden/sqlite"
	"github.com/warden-sh/warden/wardentest"
)

// liveness bounds a request that must not wait for slow readers: generous,
// a liveness check and not a benchmark.
const liveness = 2 * time.Second

// slowReader is a client that asks for a streamed response, reads its
// status and headers, and then nothing: the slowest reader there is.
type slowReader struct {
	conn   net.Conn
	status int
	header http.Header
	err    errorBody // for a refusal
}

// openSlow sends GET path with token and reads the answer's head (a
// refusal's body too) within 10 s.
func openSlow(t *testing.T, addr, path, token string) *slowReader {
	t.Helper()
	sr, err := tryOpenSlow(t, addr, path, token)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return sr
}

// tryOpenSlow is openSlow for any goroutine: an answer whose head does not
// come within 10 s is an error.
func tryOpenSlow(t *testing.T, addr, path, token string) (*slowReader, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: warden\r\nAuthorization: Bearer %s\r\n\r\n", path, token); err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil)
	if err != nil {
		return nil, fmt.Errorf("no answer head within 10 s: %w", err)
	}
	sr := &slowReader{conn: conn, status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(data, &sr.err); err != nil {
			return nil, fmt.Errorf("%d %q", resp.StatusCode, data)
		}
	}
	return sr, nil
}

// timed runs one request and fails the test unless it answers want within
// the liveness bound; it returns how long it took.
func timed(t *testing.T, what string, want int, do func() (*http.Response, error)) time.Duration {
	t.Helper()
	start := time.Now()
	resp, err := do()
	d := time.Since(start)
	if err != nil {
		t.Fatalf("%s: %v after %s", what, err, d)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s: %d %s, want %d", what, resp.StatusCode, data, want)
	}
	if d > liveness {
		t.Fatalf("%s took %s while slow readers held their streams, more than %s", what, d, liveness)
	}
	return d
}

func post(url, token, body string) (*http.Response, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	return (&http.Client{Timeout: 5 * liveness}).Do(req)
}

func get(url, token string) (*http.Response, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return (&http.Client{Timeout: 5 * liveness}).Do(req)
}

// forensics creates n forensic credentials and returns their tokens.
func forensics(t *testing.T, env *wardentest.Env, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = env.MustCredential(t, engine.CredentialSpec{Name: fmt.Sprintf("forensic-%d", i), Roles: []warden.Role{warden.RoleForensic}})
	}
	return out
}

// TestSlowReadersDoNotStarveEveryone: 4 × the read pool clients ask for a
// forensic bundle and read nothing. Those past the stream limits are
// refused 429 with Retry-After and a sentence naming the limit; the ones
// admitted hold their snapshots; and all the while /health, an
// authenticated read and a treasury debit answer within the liveness
// bound. (Before, four such readers held every read connection and every
// request waited, /health included.)
func TestSlowReadersDoNotStarveEveryone(t *testing.T) {
	env := wardentest.MustEnv(t)
	reportMany(t, env, 1600) // a bundle far larger than every buffer on the way
	n := 4 * env.Store.ReadConns()
	tokens := forensics(t, env, (n+1)/2)
	reg := prometheus.NewRegistry()
	addr := serveOpts(t, wardenhttp.Options{Core: env.Core, Recorder: env.Recorder, Governor: env.Governor, Registry: reg, WriteIdle: time.Minute})
	base := "http://" + addr
	if resp, err := post(base+"/api/v1/governance/treasury_create_budget", env.Admin, `{"budget_id":"ops","name":"ops","allocated":1000000,"currency":"USD"}`); err != nil || resp.StatusCode != 200 {
		t.Fatalf("budget: %v %v", resp, err)
	}

	// All at once, as an attacker would.
	readers := make([]*slowReader, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { readers[i], errs[i] = tryOpenSlow(t, addr, "/api/v1/forensic/export", tokens[i/2]) })
	}
	wg.Wait()

	var worst time.Duration
	for i := range 5 {
		for _, d := range []time.Duration{
			timed(t, "GET /health", 200, func() (*http.Response, error) { return get(base+"/health", "") }),
			timed(t, "GET /api/v1/receipts/0", 200, func() (*http.Response, error) { return get(base+"/api/v1/receipts/0", env.Admin) }),
			timed(t, "treasury_debit", 200, func() (*http.Response, error) {
				return post(base+"/api/v1/governance/treasury_debit", env.Admin, fmt.Sprintf(`{"budget_id":"ops","amount":1,"description":"debit %d"}`, i))
			}),
			// The stream limit is full: another stream is refused at once.
			timed(t, "a further export", 429, func() (*http.Response, error) { return get(base+"/api/v1/forensic/export", env.Admin) }),
			timed(t, "GET /api/v1/incidents/get", 404, func() (*http.Response, error) { return get(base+"/api/v1/incidents/get?id=INC-none", env.Admin) }),
		} {
			worst = max(worst, d)
		}
	}

	admitted, refused := 0, 0
	for i, sr := range readers {
		switch {
		case errs[i] != nil:
			t.Fatalf("reader %d: %v", i, errs[i])
		case sr.status == http.StatusOK:
			admitted++
		case sr.status == http.StatusTooManyRequests:
			refused++
			if sr.err.Code != warden.ETOOMANY || !strings.Contains(sr.err.Error, "the most it sends at once") || sr.header.Get("Retry-After") != "5" {
				t.Fatalf("refusal %d: %+v, Retry-After %q", i, sr.err, sr.header.Get("Retry-After"))
			}
		default:
			t.Fatalf("reader %d: status %d %+v", i, sr.status, sr.err)
		}
	}
	want := min(n, wardenhttp.DefaultMaxStreams)
	if admitted != want || refused != n-want {
		t.Fatalf("%d slow readers: %d admitted, %d refused; want %d admitted", n, admitted, refused, want)
	}
	t.Logf("%d slow readers (%d holding a snapshot): slowest /health, read, debit or refusal %s", n, admitted, worst)

	// The admitted readers were really held: none has finished.
	if got := finished(t, reg, "/api/v1/forensic/export"); got != float64(refused+5) {
		t.Fatalf("%v export requests finished, want only the %d refused", got, refused+5)
	}
}

// TestStreamLimitPerPrincipal: one principal gets at most
// DefaultMaxStreamsPerPrincipal streams at once, whichever routes they are;
// another principal still gets one; a finished stream frees its slot.
func TestStreamLimitPerPrincipal(t *testing.T) {
	env := wardentest.MustEnv(t)
	reportMany(t, env, 1600)
	tokens := forensics(t, env, 2)
	reg := prometheus.NewRegistry()
	addr := serveOpts(t, wardenhttp.Options{Core: env.Core, Recorder: env.Recorder, Governor: env.Governor, Registry: reg, WriteIdle: time.Minute})
	var held []*slowReader
	for range wardenhttp.DefaultMaxStreamsPerPrincipal {
		sr := openSlow(t, addr, "/api/v1/forensic/export", tokens[0])
		if sr.status != http.StatusOK {
			t.Fatalf("stream within the limit: %d %+v", sr.status, sr.err)
		}
		held = append(held, sr)
	}
	for _, path := range []string{"/api/v1/forensic/export", "/api/v1/incidents", "/api/v1/receipts"} {
		sr := openSlow(t, addr, path, tokens[0])
		if sr.status != http.StatusTooManyRequests || sr.err.Code != warden.ETOOMANY || sr.header.Get("Retry-After") == "" ||
			!strings.Contains(sr.err.Error, `principal "forensic-0" already has 2 open, the most one principal may have at once`) {
			t.Fatalf("%s past the per-principal limit: %d %+v", path, sr.status, sr.err)
		}
	}
	if sr := openSlow(t, addr, "/api/v1/forensic/export", tokens[1]); sr.status != http.StatusOK {
		t.Fatalf("another principal: %d %+v", sr.status, sr.err)
	}
	// A stream that ends frees its slot.
	before := finished(t, reg, "/api/v1/forensic/export")
	held[0].conn.Close()
	waitFinished(t, reg, "/api/v1/forensic/export", before+1)
	if sr := openSlow(t, addr, "/api/v1/forensic/export", tokens[0]); sr.status != http.StatusOK {
		t.Fatalf("after one stream ended: %d %+v", sr.status, sr.err)
	}
}

// waitFinished waits (bounded) until n requests to route have returned.
func waitFinished(t *testing.T, reg *prometheus.Registry, route string, n float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for finished(t, reg, route) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v requests finished, want %v", route, finished(t, reg, route), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRevocationCutsStreams: the streams of a credential revoked while
// they run end at once (not when the slow client's write deadline
// passes), whether the revocation comes through the API or from another
// process on the same data directory; other principals' streams go on.
func TestRevocationCutsStreams(t *testing.T) {
	env := wardentest.MustEnv(t)
	reportMany(t, env, 1600)
	tokens := forensics(t, env, 3)
	reg := prometheus.NewRegistry()
	addr := serveOpts(t, wardenhttp.Options{Core: env.Core, Recorder: env.Recorder, Governor: env.Governor, Registry: reg, WriteIdle: time.Hour})
	for i, tok := range tokens {
		if sr := openSlow(t, addr, "/api/v1/forensic/export", tok); sr.status != http.StatusOK {
			t.Fatalf("reader %d: %d %+v", i, sr.status, sr.err)
		}
	}
	route := "/api/v1/forensic/export"

	// Through the API.
	if resp, err := post("http://"+addr+"/api/v1/credentials/revoke", env.Admin, `{"name":"forensic-0"}`); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	waitFinished(t, reg, route, 1)

	// Another process: `warden credential revoke --data DIR` next to the
	// server, noticed by the server's periodic NoticeRevocations.
	other, err := sqlite.Open(env.Dir.DBPath(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherCore, err := engine.New(engine.Options{Store: other})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherCore.RevokeCredential(t.Context(), &warden.Principal{Name: "cli", Roles: []warden.Role{warden.RoleAdmin}}, "forensic-1"); err != nil {
		t.Fatal(err)
	}
	if n, err := env.Core.NoticeRevocations(t.Context()); err != nil || n != 1 {
		t.Fatalf("NoticeRevocations = %d, %v; want 1 (forensic-1)", n, err)
	}
	waitFinished(t, reg, route, 2)
	if got := finished(t, reg, route); got != 2 {
		t.Fatalf("%v streams ended, want 2: the third principal's goes on", got)
	}
}
