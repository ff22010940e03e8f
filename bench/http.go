package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPOptions configure the HTTP load generator.
type HTTPOptions struct {
	// URL is the base URL of a server speaking warden's incident API.
	// Empty: the benchmark starts its own `warden serve` on a temporary
	// data directory, with every containment target at an always-200
	// service it also starts, so the default run measures the path a
	// report takes when its containment calls a live target.
	URL      string
	Token    string // bearer token (reporter or admin; forensic for the export)
	Clients  int    // concurrent clients for the throughput run (default 16)
	Duration time.Duration
	// Class is the incident class to report (default tool_call_burst,
	// whose containment calls the agent target; forbidden_airlock_request
	// calls none).
	Class string
	// Preload reports this many incidents first (with 32 clients), then
	// measures throughput again, to show it does not fall as the store grows.
	Preload int
	// Export downloads a forensic bundle at the end, sampling the server's
	// RSS from /metrics while it streams.
	Export bool
	// Target, with an embedded server (no URL), is the containment target
	// to point its policy at instead of the always-200 service the
	// benchmark starts (e.g. a real agent runtime's endpoint on loopback).
	Target string
	// ServerBin, with an embedded server, is the warden binary to run it
	// with instead of this one: two builds compared in the same way on the
	// same machine.
	ServerBin string
	// ServerArgs are added to the embedded server's command line (e.g.
	// --cpuprofile FILE to profile the path measured).
	ServerArgs []string
}

// RunResult is one timed run.
type RunResult struct {
	Clients    int     `json:"clients"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	PerSec     float64 `json:"reports_per_sec"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	StoredFrom int64   `json:"stored_incidents_before"`
	// ServerCPUMs is the embedded server's CPU time (user and system, all
	// cores) per request during the run: what a request costs the
	// server, less sensitive than the rates to what else loads a shared
	// machine. 0 with --url or where /proc is not there.
	ServerCPUMs float64 `json:"server_cpu_ms_per_request,omitempty"`
}

// HTTPResult holds every run.
type HTTPResult struct {
	Class string `json:"class"`
	// Embedded says the benchmark ran its own server and target; Target
	// is the always-200 containment target it started, TargetCalls how
	// many containment calls it answered.
	Embedded    bool   `json:"embedded"`
	Target      string `json:"target,omitempty"`
	TargetCalls int64  `json:"target_calls,omitempty"`
	// ContainmentFailed counts reports answered containment_failed: the
	// server's targets did not all answer, so the run did not measure
	// the containing path it meant to.
	ContainmentFailed int64     `json:"containment_failed"`
	Health            RunResult `json:"health"`        // GET /health at Clients, same duration
	Single            RunResult `json:"single_client"` // target p99 ≤ 5 ms
	Concurrent        RunResult `json:"concurrent"`    // target ≥ 0.25 × Health's rate, 16 clients
	// HealthRatio is Concurrent's rate over Health's, measured in the same
	// run (target ≥ 0.25 for a containing class).
	HealthRatio float64 `json:"health_ratio"`
	// Reads are the operator's reads on the store as it was before the
	// report runs (target p99 ≤ 5 ms each, at 1,000,000 stored).
	Reads Reads `json:"reads"`
	// AfterPreload repeats the runs and the reads once Preload incidents
	// are stored (target: the same as with none).
	AfterPreload   *Stage  `json:"after_preload,omitempty"`
	ExportSeconds  float64 `json:"export_seconds,omitempty"`
	ExportBytes    int64   `json:"export_bytes,omitempty"`
	ExportMaxRSSMB float64 `json:"export_max_rss_mb,omitempty"` // target < 150 MB
	BaselineRSSMB  float64 `json:"rss_before_export_mb,omitempty"`
}

// Reads times an operator's reads, one client, ReadSamples each: the
// first page of 100 incidents, the stats, and one incident by id (ids
// sampled from the reports the benchmark made).
type Reads struct {
	Stored     int64     `json:"stored_incidents"`
	List100    RunResult `json:"list_100"`
	Stats      RunResult `json:"stats"`
	OneByID    RunResult `json:"one_incident"`
	SampledIDs int       `json:"sampled_ids"`
}

// Stage is the report runs and the reads at one store size.
type Stage struct {
	Single      RunResult `json:"single_client"`
	Concurrent  RunResult `json:"concurrent"`
	HealthRatio float64   `json:"health_ratio"`
	Reads       Reads     `json:"reads"`
}

// ReadSamples is how many times Reads times each read.
const ReadSamples = 500

// PreloadClass is the class Preload reports: one whose containment calls
// no target, so a million are stored in minutes.
const PreloadClass = "forbidden_airlock_request"

type loadClient struct {
	o      HTTPOptions
	http   *http.Client
	seq    atomic.Int64
	report []byte
	failed atomic.Int64 // reports answered containment_failed

	cpu func() (float64, bool) // the embedded server's CPU seconds so far

	idMu sync.Mutex
	ids  []string // every idEvery-th reported incident's id, for Reads
}

// idEvery spaces the ids kept for Reads over the whole store.
const idEvery = 997

func (c *loadClient) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.o.URL+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	return c.http.Do(req)
}

func (c *loadClient) reportOnce(ctx context.Context) (time.Duration, error) {
	n := c.seq.Add(1)
	body, _ := json.Marshal(map[string]any{
		"class": c.o.Class, "source": "bench", "description": fmt.Sprintf("bench report %d", n),
		"evidence": map[string]string{"request": strconv.FormatInt(n, 10), "destination": "203.0.113.7:443"},
	})
	t0 := time.Now()
	resp, err := c.do(ctx, "POST", "/api/v1/incidents/report", body)
	if err != nil {
		return 0, err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lat := time.Since(t0)
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("report: HTTP %d", resp.StatusCode)
	}
	if bytes.Contains(answer, []byte(`"state":"containment_failed"`)) {
		c.failed.Add(1)
	}
	if n%idEvery == 1 {
		var inc struct{ ID string }
		if json.Unmarshal(answer, &inc) == nil && inc.ID != "" {
			c.idMu.Lock()
			c.ids = append(c.ids, inc.ID)
			c.idMu.Unlock()
		}
	}
	return lat, nil
}

// getOnce times one GET of path, which must answer 200.
func (c *loadClient) getOnce(ctx context.Context, path string) (time.Duration, error) {
	t0 := time.Now()
	resp, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return time.Since(t0), nil
}

// reads times the operator's reads (see Reads).
func (c *loadClient) reads(ctx context.Context, w io.Writer) (Reads, error) {
	r := Reads{Stored: c.stored(ctx)}
	c.idMu.Lock()
	ids := slices.Clone(c.ids)
	c.idMu.Unlock()
	r.SampledIDs = len(ids)
	var k atomic.Int64
	for _, read := range []struct {
		name string
		out  *RunResult
		path func() string
	}{
		{"GET /api/v1/incidents?limit=100", &r.List100, func() string { return "/api/v1/incidents?limit=100" }},
		{"GET /api/v1/stats", &r.Stats, func() string { return "/api/v1/stats" }},
		{"GET /api/v1/incidents/get?id=…", &r.OneByID, func() string {
			return "/api/v1/incidents/get?id=" + url.QueryEscape(ids[int(k.Add(1))%len(ids)])
		}},
	} {
		if read.out == &r.OneByID && len(ids) == 0 {
			continue
		}
		res, err := c.drive(ctx, 1, 24*time.Hour, ReadSamples, func(ctx context.Context) (time.Duration, error) {
			return c.getOnce(ctx, read.path())
		})
		if err != nil {
			return r, err
		}
		*read.out = res
		fmt.Fprintf(w, "  %s: p50 %.3f ms, p99 %.3f ms\n", read.name, res.P50Ms, res.P99Ms)
	}
	return r, nil
}

func (c *loadClient) healthOnce(ctx context.Context) (time.Duration, error) {
	return c.getOnce(ctx, "/health")
}

// run drives clients for d (or until total reports when total > 0).
func (c *loadClient) run(ctx context.Context, clients int, d time.Duration, total int64) (RunResult, error) {
	return c.drive(ctx, clients, d, total, c.reportOnce)
}

// drive runs once from clients goroutines for d (or total calls).
func (c *loadClient) drive(ctx context.Context, clients int, d time.Duration, total int64, once func(context.Context) (time.Duration, error)) (RunResult, error) {
	res := RunResult{Clients: clients}
	var cpu0 float64
	cpuOK := false
	if c.cpu != nil {
		cpu0, cpuOK = c.cpu()
	}
	deadline := time.Now().Add(d)
	var count, errs atomic.Int64
	lats := make([][]time.Duration, clients)
	var first atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for ctx.Err() == nil {
				if total > 0 {
					if count.Add(1) > total {
						return
					}
				} else if !time.Now().Before(deadline) {
					return
				}
				lat, err := once(ctx)
				if err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, err)
					if errs.Load() > 100 {
						return
					}
					continue
				}
				if total == 0 {
					count.Add(1)
				}
				lats[g] = append(lats[g], lat)
			}
		}(g)
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res.Requests, res.Errors = int64(len(all)), errs.Load()
	if cpuOK && len(all) > 0 {
		if cpu1, ok := c.cpu(); ok {
			res.ServerCPUMs = (cpu1 - cpu0) * 1000 / float64(len(all))
		}
	}
	res.PerSec = float64(len(all)) / el.Seconds()
	res.P50Ms, res.P99Ms = pct(all, 50), pct(all, 99)
	if err, _ := first.Load().(error); err != nil && len(all) == 0 {
		return res, err
	}
	return res, ctx.Err()
}

func (c *loadClient) stored(ctx context.Context) int64 {
	resp, err := c.do(ctx, "GET", "/health", nil)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var h struct {
		Total int64 `json:"total_incidents"`
	}
	json.NewDecoder(resp.Body).Decode(&h)
	return h.Total
}

// rssMB reads process_resident_memory_bytes from /metrics.
func (c *loadClient) rssMB(ctx context.Context) float64 {
	resp, err := c.do(ctx, "GET", "/metrics", nil)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f / (1 << 20)
		}
	}
	return 0
}

// stage measures the store as it is: the reads, then reports from one
// client and from o.Clients, each for o.Duration.
func (c *loadClient) stage(ctx context.Context, w io.Writer, o HTTPOptions, health RunResult) (Stage, error) {
	var st Stage
	var err error
	stored := c.stored(ctx)
	fmt.Fprintf(w, "reads with %d stored, 1 client, %d each ...\n", stored, ReadSamples)
	if st.Reads, err = c.reads(ctx, w); err != nil {
		return st, err
	}
	fmt.Fprintf(w, "%s reports, 1 client for %s ...\n", o.Class, o.Duration)
	if st.Single, err = c.run(ctx, 1, o.Duration, 0); err != nil {
		return st, err
	}
	st.Single.StoredFrom = stored
	fmt.Fprintf(w, "  %.0f reports/s, p50 %.3f ms, p99 %.3f ms\n", st.Single.PerSec, st.Single.P50Ms, st.Single.P99Ms)
	fmt.Fprintf(w, "%s reports, %d clients for %s ...\n", o.Class, o.Clients, o.Duration)
	stored = c.stored(ctx)
	if st.Concurrent, err = c.run(ctx, o.Clients, o.Duration, 0); err != nil {
		return st, err
	}
	st.Concurrent.StoredFrom = stored
	if health.PerSec > 0 {
		st.HealthRatio = st.Concurrent.PerSec / health.PerSec
	}
	fmt.Fprintf(w, "  %.0f reports/s, p50 %.3f ms, p99 %.3f ms (%d stored before); %.2f × /health\n", st.Concurrent.PerSec, st.Concurrent.P50Ms,
		st.Concurrent.P99Ms, stored, st.HealthRatio)
	return st, nil
}

// HTTP runs the load generator and prints progress to w.
func HTTP(ctx context.Context, o HTTPOptions, w io.Writer) (*HTTPResult, error) {
	res := &HTTPResult{}
	var serverCPU func() (float64, bool)
	if o.URL == "" {
		targetURL := o.Target
		if targetURL == "" {
			target, err := startAlwaysOK()
			if err != nil {
				return nil, err
			}
			defer target.Close()
			targetURL = target.URL
			defer func() { res.TargetCalls = target.calls.Load() }()
			fmt.Fprintf(w, "starting warden serve with every containment target at %s (always 200) ...\n", targetURL)
		} else {
			fmt.Fprintf(w, "starting warden serve with every containment target at %s ...\n", targetURL)
		}
		srv, err := startEmbedded(ctx, o.ServerBin, targetURL, o.ServerArgs...)
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		o.URL, o.Token = srv.URL, srv.Token
		res.Embedded, res.Target = true, targetURL
		serverCPU = srv.cpuSeconds
	} else if o.Target != "" || o.ServerBin != "" {
		return nil, fmt.Errorf("bench http: --target and --server-bin apply to the server the benchmark starts; with --url, the server is yours")
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if o.Clients <= 0 {
		o.Clients = 16
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Class == "" {
		o.Class = "tool_call_burst"
	}
	res.Class = o.Class
	c := &loadClient{o: o, http: &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256},
	}, cpu: serverCPU}
	var err error

	fmt.Fprintf(w, "GET /health, %d clients for %s ...\n", o.Clients, o.Duration)
	if res.Health, err = c.drive(ctx, o.Clients, o.Duration, 0, c.healthOnce); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "  %.0f/s, p50 %.3f ms, p99 %.3f ms\n", res.Health.PerSec, res.Health.P50Ms, res.Health.P99Ms)

	stage, err := c.stage(ctx, w, o, res.Health)
	if err != nil {
		return nil, err
	}
	res.Single, res.Concurrent, res.HealthRatio, res.Reads = stage.Single, stage.Concurrent, stage.HealthRatio, stage.Reads
	if res.ContainmentFailed = c.failed.Load(); res.ContainmentFailed > 0 {
		fmt.Fprintf(w, "  WARNING: %d reports were containment_failed: the server's targets do not all answer, so this did not measure the containing path (run without --url, or point the server's targets at an always-200 service)\n", res.ContainmentFailed)
	}

	if o.Preload > 0 {
		fmt.Fprintf(w, "preloading %d %s incidents with 32 clients ...\n", o.Preload, PreloadClass)
		t0 := time.Now()
		c.o.Class = PreloadClass
		r, err := c.run(ctx, 32, 24*time.Hour, int64(o.Preload))
		c.o.Class = o.Class
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "  %d in %s (%.0f/s)\n", r.Requests, time.Since(t0).Round(time.Second), r.PerSec)
		after, err := c.stage(ctx, w, o, res.Health)
		if err != nil {
			return nil, err
		}
		res.AfterPreload = &after
	}

	if o.Export {
		res.BaselineRSSMB = c.rssMB(ctx)
		fmt.Fprintf(w, "forensic export of %d incidents (server RSS %.0f MB before) ...\n", c.stored(ctx), res.BaselineRSSMB)
		stop := make(chan struct{})
		var maxRSS atomic.Uint64
		var sampler sync.WaitGroup
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				if v := uint64(c.rssMB(ctx) * 1000); v > maxRSS.Load() {
					maxRSS.Store(v)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		t0 := time.Now()
		resp, err := c.do(ctx, "GET", "/api/v1/forensic/export", nil)
		if err == nil {
			if resp.StatusCode != 200 {
				err = fmt.Errorf("export: HTTP %d", resp.StatusCode)
			} else {
				res.ExportBytes, err = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
		}
		close(stop)
		sampler.Wait()
		if err != nil {
			return nil, err
		}
		res.ExportSeconds = time.Since(t0).Seconds()
		res.ExportMaxRSSMB = float64(maxRSS.Load()) / 1000
		fmt.Fprintf(w, "  %.1f MB in %.1f s, server RSS peak %.0f MB\n", float64(res.ExportBytes)/(1<<20), res.ExportSeconds, res.ExportMaxRSSMB)
	}
	return res, nil
}
