package cli

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLogFormatAuto: auto writes text to a terminal and JSON to anything
// else; an unknown format is refused.
func TestLogFormatAuto(t *testing.T) {
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer pty.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var buf bytes.Buffer
	for _, c := range []struct {
		name   string
		to     io.Writer
		format string
		want   string
	}{
		{"terminal", pty, logFormatAuto, logFormatText},
		{"pipe", w, logFormatAuto, logFormatJSON},
		{"buffer", &buf, logFormatAuto, logFormatJSON},
		{"json on a terminal", pty, logFormatJSON, logFormatJSON},
		{"text to a pipe", w, logFormatText, logFormatText},
	} {
		if got := logFormat(c.format, c.to); got != c.want {
			t.Errorf("%s: --log-format %s writes %s, want %s", c.name, c.format, got, c.want)
		}
	}
	if _, err := newLogHandler(&buf, "yaml", 0, time.Now); err == nil {
		t.Error("--log-format yaml accepted")
	}
}

// TestLogLimitText: the sampling of repeated warnings and errors works the
// same in the text format as in JSON (TestLogLimit): a burst, then one a
// second with the count dropped before it, and Flush's tally.
func TestLogLimitText(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	h, err := newLogHandler(&buf, logFormatText, 0, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	for range 100 {
		log.Error("sqlite: write transaction failed")
	}
	now = now.Add(time.Second)
	log.Error("sqlite: write transaction failed")
	log.Error("sqlite: write transaction failed")
	h.Flush()
	out := buf.String()
	if strings.Contains(out, "{") {
		t.Fatalf("JSON in a text log:\n%s", out)
	}
	if n := strings.Count(out, `msg="sqlite: write transaction failed"`); n != logLimitBurst+1 {
		t.Errorf("%d lines passed, want %d:\n%s", n, logLimitBurst+1, out)
	}
	for _, want := range []string{"suppressed_since_previous=90", `msg="log lines suppressed" message="sqlite: write transaction failed" suppressed=1`} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %s:\n%s", want, out)
		}
	}
}
