package http_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	wardenhttp "github.com/warden-sh/warden/http"
	"github.com/warden-sh/warden/wardentest"
)

// smallBuffers accepts connections whose kernel send buffer is small, so a
// client that stops reading stalls the server after little data.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// serveIdle serves the API with the given write idle bound and mounts.
func serveIdle(t *testing.T, env *wardentest.Env, idle time.Duration, reg *prometheus.Registry, mount map[string]http.Handler) string {
	t.Helper()
	return serveOpts(t, wardenhttp.Options{Core: env.Core, Recorder: env.Recorder, Governor: env.Governor, Registry: reg, WriteIdle: idle, Mount: mount})
}

func serveOpts(t *testing.T, o wardenhttp.Options) string {
	t.Helper()
	api := wardenhttp.NewServer(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(smallBuffers{ln})
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// finished returns how many requests to route have returned from their
// handler, from the server's request counter.
func finished(t *testing.T, reg *prometheus.Registry, route string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "warden_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == route {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestStalledReaderIsCutOff: a client that requests a page of the incident
// listing (the largest, 1000 incidents) and never reads it does not keep
// the handler alive: the stream ends once a write has waited WriteIdle.
func TestStalledReaderIsCutOff(t *testing.T) {
	env := wardentest.MustEnv(t)
	reportMany(t, env, 1600)

	reg := prometheus.NewRegistry()
	addr := serveIdle(t, env, 200*time.Millisecond, reg, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /api/v1/incidents?limit=1000 HTTP/1.1\r\nHost: warden\r\nAuthorization: Bearer %s\r\n\r\n", env.Admin); err != nil {
		t.Fatal(err)
	}
	// Read nothing. Without the bound the handler would wait here until
	// the client went away.
	deadline := time.Now().Add(20 * time.Second)
	for finished(t, reg, "/api/v1/incidents") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the listing handler is still writing to a client that stopped reading")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The client got a truncated stream, never a complete listing.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("read a complete %d-byte listing from a stream that was cut off", len(body))
	}
}

// reportMany reports n alert-only incidents from 8 goroutines.
func reportMany(t *testing.T, env *wardentest.Env, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range n / 8 {
				env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Source: "agent-1",
					Description: fmt.Sprintf("slow reader fixture %d/%d, padded so the listing is far larger than every buffer on the way", g, i)})
			}
		})
	}
	wg.Wait()
}

// TestTrickleReaderIsCutOff: a client that reads often enough to beat the
// per-write bound, but far below the minimum rate, is cut off too; the
// same listing read at full speed is complete.
func TestTrickleReaderIsCutOff(t *testing.T) {
	env := wardentest.MustEnv(t)
	reportMany(t, env, 1600)
	reg := prometheus.NewRegistry()
	// Per write 300 ms: never reached by a reader taking 8 KiB every 10 ms
	// (800 KiB/s); but the minimum rate is 8 MiB/s.
	addr := serveOpts(t, wardenhttp.Options{Core: env.Core, Recorder: env.Recorder, Governor: env.Governor, Registry: reg, WriteIdle: 300 * time.Millisecond, MinWriteRate: 8 << 20})
	read := func(pause time.Duration) (int, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /api/v1/incidents?limit=1000 HTTP/1.1\r\nHost: warden\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", env.Admin)
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8<<10)
		total := 0
		for {
			n, err := resp.Body.Read(buf)
			total += n
			if err == io.EOF {
				return total, nil
			} else if err != nil {
				return total, err
			}
			time.Sleep(pause) // the trickle, not a timing assertion
		}
	}
	if n, err := read(0); err != nil {
		t.Fatalf("a full-speed reader got %d bytes and %v", n, err)
	}
	if n, err := read(10 * time.Millisecond); err == nil {
		t.Fatalf("a reader below the minimum rate read the whole %d-byte listing", n)
	}
}

// TestWriteBoundDoesNotOutliveItsRequest: the deadline an API response set
// is gone before the next request on the same connection (net/http clears
// it once a response is finished), so a mounted handler (an MCP event
// stream) that writes later is not cut off.
func TestWriteBoundDoesNotOutliveItsRequest(t *testing.T) {
	env := wardentest.MustEnv(t)
	const idle = 100 * time.Millisecond
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * idle) // past any deadline the previous request left
		io.WriteString(w, "still here")
	})
	addr := serveIdle(t, env, idle, prometheus.NewRegistry(), map[string]http.Handler{"/slow": slow})

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var conns []string
	for _, path := range []string{"/health", "/slow"} {
		req, err := http.NewRequest("GET", "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		var local string
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { local = ci.Conn.LocalAddr().String() },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %q %v", path, resp.StatusCode, body, err)
		}
		conns = append(conns, local)
	}
	if conns[0] != conns[1] {
		t.Fatalf("requests used connections %v; the test needs one kept-alive connection", conns)
	}
}

// TestForensicExportFailureIsAnError: an export that fails before sending
// anything is answered with a JSON error, not an empty 200; and a HEAD of
// the export neither exports nor receipts an export.
func TestForensicExportFailureIsAnError(t *testing.T) {
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Recorder.HMACKey = nil })
	base, _ := env.MustServer(t)
	var e apiErr
	if st, raw := call(t, "GET", base+"/api/v1/forensic/export", env.Admin, nil, &e); st != http.StatusInternalServerError || e.Code != "internal" {
		t.Fatalf("export without keys: %d %s", st, raw)
	}

	env = wardentest.MustEnv(t)
	base, _ = env.MustServer(t)
	req, err := http.NewRequest("HEAD", base+"/api/v1/forensic/export", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+env.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("HEAD export: %d %v", resp.StatusCode, resp.Header)
	}
	if got := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptForensicExport}); len(got) != 0 {
		t.Fatalf("a HEAD request was receipted as %d export(s)", len(got))
	}
}
