package warden_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

func TestErrorCodeAndMessage(t *testing.T) {
	denied := warden.Errorf(warden.EDENIED, "Budget %s is frozen (%d).", "ops", 3)
	tests := []struct {
		name string
		err  error
		want codeOf
	}{
		{"nil", nil, codeOf{}},
		{"warden error", denied, codeOf{"denied", "Budget ops is frozen (3)."}},
		{"wrapped", fmt.Errorf("engine.Debit: %w", denied), codeOf{"denied", "Budget ops is frozen (3)."}},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", denied)), codeOf{"denied", "Budget ops is frozen (3)."}},
		{"joined: the first warden error", errors.Join(io.EOF, warden.Errorf(warden.ENOTFOUND, "No x."), denied), codeOf{"not_found", "No x."}},
		{"other error is internal, its text hidden", fmt.Errorf("open /secret/path: %w", io.ErrUnexpectedEOF), codeOf{"internal", "Internal error."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, errCode(tt.err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if got, want := denied.Error(), "warden error: code=denied message=Budget ops is frozen (3)."; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if e := warden.Errorf(warden.EINVALID, "100%% sure"); e.Message != "100% sure" || e.Data != nil {
		t.Errorf("Errorf = %+v", e)
	}
}

func TestValidScroll(t *testing.T) {
	for _, s := range []string{"identity", "cognitive", "treasury", "incident", "policy", "drill", "system"} {
		if !warden.ValidScroll(s) {
			t.Errorf("ValidScroll(%q) = false", s)
		}
	}
	for _, s := range []string{"", "Identity", "ledger", "incidents"} {
		if warden.ValidScroll(s) {
			t.Errorf("ValidScroll(%q) = true", s)
		}
	}
}

func TestFormatTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC), "2026-03-14T12:00:00Z"},
		{time.Date(2026, 3, 14, 13, 0, 0, 0, paris), "2026-03-14T12:00:00Z"},
		{time.Date(2026, 3, 14, 12, 0, 0, 120_000_000, time.UTC), "2026-03-14T12:00:00.12Z"},
		{time.Date(2026, 3, 14, 12, 0, 0, 1, time.UTC), "2026-03-14T12:00:00.000000001Z"},
		{time.Date(2026, 1, 1, 0, 30, 0, 0, paris), "2025-12-31T23:30:00Z"},
	}
	for _, tt := range tests {
		got := warden.FormatTime(tt.in)
		if got != tt.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if back := (&warden.Incident{CreatedAt: got}).CreatedTime(); !back.Equal(tt.in) {
			t.Errorf("CreatedTime(%q) = %v, want %v", got, back, tt.in)
		}
	}
	if got := (&warden.Incident{CreatedAt: "yesterday"}).CreatedTime(); !got.IsZero() {
		t.Errorf("CreatedTime of a bad stamp = %v, want zero", got)
	}
}

func TestSystemClockIsUTC(t *testing.T) {
	if loc := warden.SystemClock().Location(); loc != time.UTC {
		t.Errorf("SystemClock location = %v, want UTC", loc)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, ""}, {-time.Second, ""}, {time.Nanosecond, "1"}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {30 * time.Second, "30"},
	} {
		e := &warden.Error{Code: warden.ETOOMANY, RetryAfter: tc.d}
		if got := e.RetryAfterSeconds(); got != tc.want {
			t.Errorf("RetryAfter %s: %q, want %q", tc.d, got, tc.want)
		}
	}
}
