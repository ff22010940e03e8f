package bench_test

import (
	"io"
	"testing"
	"time"

	"github.com/warden-sh/warden/bench"
	"github.com/warden-sh/warden/wardentest"
)

// TestHTTPAgainstAServer runs the load generator, briefly, against a
// server given by URL (whose containment targets answer 200): every run,
// the reads, and a preload complete, no report comes back
// containment_failed, and nothing is measured that only an embedded
// server has (its CPU time).
func TestHTTPAgainstAServer(t *testing.T) {
	tg := wardentest.MustTarget(t)
	env := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(tg.URL)))
	url, _ := env.MustServer(t)
	res, err := bench.HTTP(t.Context(), bench.HTTPOptions{URL: url, Token: env.Admin, Clients: 2, Duration: 100 * time.Millisecond, Preload: 20}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Embedded || res.Single.Requests == 0 || res.Concurrent.Requests == 0 || res.Health.Requests == 0 {
		t.Errorf("runs: %+v", res)
	}
	if res.ContainmentFailed != 0 || res.Concurrent.Errors != 0 {
		t.Errorf("%d containment_failed, %d errors", res.ContainmentFailed, res.Concurrent.Errors)
	}
	if res.AfterPreload == nil || res.AfterPreload.Reads.Stored < 20 || res.AfterPreload.Reads.List100.Requests != bench.ReadSamples {
		t.Errorf("after preload: %+v", res.AfterPreload)
	}
	if res.Concurrent.ServerCPUMs != 0 {
		t.Errorf("server CPU %v ms measured for a server given by URL", res.Concurrent.ServerCPUMs)
	}
}
