package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLogLimit: repeated warnings and errors are sampled per message
// (a burst, then one a second, on the injected clock), each passed line
// says how many of its kind were dropped before it, other messages and
// info lines are not held back, and Flush accounts for what is left.
func TestLogLimit(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	h := newLimitHandler(slog.NewJSONHandler(&buf, nil), func() time.Time { return now })
	log := slog.New(h).With("component", "test")
	for range 100 {
		log.Error("sqlite: write transaction failed", "ops", 1)
		log.Info("http request", "status", 201)
	}
	log.Warn("another warning")
	now = now.Add(time.Second)
	for range 5 {
		log.Error("sqlite: write transaction failed", "ops", 1)
	}
	now = now.Add(time.Second)
	log.Error("sqlite: write transaction failed", "ops", 1)
	log.Error("sqlite: write transaction failed", "ops", 1)
	h.Flush()

	type line struct {
		Level      string `json:"level"`
		Msg        string `json:"msg"`
		Component  string `json:"component"`
		Suppressed uint64 `json:"suppressed_since_previous"`
		Count      uint64 `json:"suppressed"`
		Message    string `json:"message"`
	}
	count := map[string]int{}
	var samples []line
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var ln line
		if err := json.Unmarshal([]byte(l), &ln); err != nil {
			t.Fatal(err)
		}
		count[ln.Level+" "+ln.Msg]++
		if ln.Suppressed > 0 || ln.Count > 0 {
			samples = append(samples, ln)
		}
	}
	want := map[string]int{
		"ERROR sqlite: write transaction failed": logLimitBurst + 2, // the burst, then one per second
		"INFO http request":                      100,
		"WARN another warning":                   1,
		"ERROR log lines suppressed":             1,
	}
	if d := cmp.Diff(want, count); d != "" {
		t.Errorf("lines by level and message (-want +got):\n%s", d)
	}
	wantSamples := []line{
		{Level: "ERROR", Msg: "sqlite: write transaction failed", Component: "test", Suppressed: 90},
		{Level: "ERROR", Msg: "sqlite: write transaction failed", Component: "test", Suppressed: 4},
		{Level: "ERROR", Msg: "log lines suppressed", Message: "sqlite: write transaction failed", Count: 1},
	}
	if d := cmp.Diff(wantSamples, samples); d != "" {
		t.Errorf("lines carrying counts (-want +got):\n%s", d)
	}
}
