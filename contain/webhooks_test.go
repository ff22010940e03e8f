package contain_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

var hookKey = []byte("webhook-hmac-key-0123456789abcdef")

func newSender(clock *testClock) *contain.WebhookSender {
	log, _ := newLogger()
	return &contain.WebhookSender{Clock: clock.Now, HMACKey: hookKey, Logger: log}
}

func testDelivery(url string) *warden.Delivery {
	return &warden.Delivery{
		ID:         42,
		Event:      warden.EventContainment,
		URL:        url,
		Payload:    []byte(`{"event":"containment","timestamp":"2026-03-14T12:00:00Z","incident":{"id":"INC-20260314-120000-0001"},"actions":["freeze_agent"],"severity":"high","source":"s"}`),
		IncidentID: "INC-20260314-120000-0001",
		Status:     warden.DeliveryPending,
		CreatedAt:  time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC),
	}
}

func TestDeliverSuccess(t *testing.T) {
	rx := newTarget(t, status(http.StatusNoContent))
	clock := newClock()
	s := newSender(clock)
	d := testDelivery(rx.URL + "/hook")
	orig := *d
	got := s.Deliver(context.Background(), d)

	want := orig
	want.Status = warden.DeliveryDelivered
	want.Attempts = 1
	want.LastStatus = http.StatusNoContent
	want.DeliveredAt = clock.Now()
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("delivery (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&orig, d); diff != "" {
		t.Errorf("Deliver modified its argument (-before +after):\n%s", diff)
	}

	reqs := rx.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/hook" {
		t.Errorf("request = %s %s", r.Method, r.Path)
	}
	if string(r.Body) != string(d.Payload) {
		t.Errorf("body = %q, want the payload bytes as they are", r.Body)
	}
	ts := strconv.FormatInt(clock.Now().Unix(), 10)
	for h, v := range map[string]string{
		"Content-Type":       "application/json",
		"X-Warden-Event":     "containment",
		"X-Warden-Delivery":  "42",
		"X-Warden-Timestamp": ts,
	} {
		if got := r.Header.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	sig := r.Header.Get("X-Warden-Signature")
	if !contain.VerifyWebhookSignature(hookKey, r.Header.Get("X-Warden-Timestamp"), r.Body, sig) {
		t.Errorf("signature %q does not verify", sig)
	}
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Errorf("signature %q is not sha256=<64 hex>", sig)
	}
}

func TestDeliverFailures(t *testing.T) {
	t.Run("5xx reschedules with exponential backoff capped at 5 minutes", func(t *testing.T) {
		rx := newTarget(t, status(http.StatusInternalServerError))
		clock := newClock()
		s := newSender(clock)
		s.MaxAttempts = 12
		d := testDelivery(rx.URL)
		wantWaits := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
		for i, w := range wantWaits {
			d = s.Deliver(context.Background(), d)
			if d.Status != warden.DeliveryPending || d.Attempts != i+1 || d.LastStatus != 500 || !strings.Contains(d.LastError, "HTTP 500") {
				t.Fatalf("attempt %d: %+v", i+1, d)
			}
			if wait := d.NextAttemptAt.Sub(clock.Now()); wait != w*time.Second {
				t.Errorf("attempt %d: next attempt in %s, want %s", i+1, wait, w*time.Second)
			}
			clock.Advance(w * time.Second)
		}
		d = s.Deliver(context.Background(), d)
		if d.Status != warden.DeliveryFailed || d.Attempts != 12 || !d.NextAttemptAt.IsZero() {
			t.Errorf("after MaxAttempts: %+v, want failed", d)
		}
		if n := len(rx.requests()); n != 12 {
			t.Errorf("receiver got %d requests, want 12", n)
		}
	})
	t.Run("default MaxAttempts is 8", func(t *testing.T) {
		rx := newTarget(t, status(http.StatusBadGateway))
		s := newSender(newClock())
		d := testDelivery(rx.URL)
		d.Attempts = 6
		if d = s.Deliver(context.Background(), d); d.Status != warden.DeliveryPending || d.Attempts != 7 {
			t.Errorf("attempt 7: %+v", d)
		}
		if d = s.Deliver(context.Background(), d); d.Status != warden.DeliveryFailed || d.Attempts != 8 {
			t.Errorf("attempt 8: %+v", d)
		}
	})
	t.Run("4xx is retried too", func(t *testing.T) {
		rx := newTarget(t, status(http.StatusUnauthorized))
		d := newSender(newClock()).Deliver(context.Background(), testDelivery(rx.URL))
		if d.Status != warden.DeliveryPending || d.LastStatus != 401 {
			t.Errorf("%+v", d)
		}
	})
	t.Run("success after failure clears the error", func(t *testing.T) {
		rx := newTarget(t, func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
		clock := newClock()
		s := newSender(clock)
		d := s.Deliver(context.Background(), testDelivery(rx.URL))
		clock.Advance(time.Second)
		d = s.Deliver(context.Background(), d)
		if d.Status != warden.DeliveryDelivered || d.Attempts != 2 || d.LastError != "" || d.LastStatus != 200 || !d.DeliveredAt.Equal(clock.Now()) {
			t.Errorf("%+v", d)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		rx := newTarget(t, nil)
		url := rx.URL
		rx.Close()
		d := newSender(newClock()).Deliver(context.Background(), testDelivery(url))
		if d.Status != warden.DeliveryPending || d.LastStatus != 0 || !strings.Contains(d.LastError, "connection refused") {
			t.Errorf("%+v", d)
		}
	})
	t.Run("hanging receiver times out", func(t *testing.T) {
		rx := newTarget(t, hang(t))
		s := newSender(newClock())
		s.Timeout = 50 * time.Millisecond
		start := time.Now()
		d := s.Deliver(context.Background(), testDelivery(rx.URL))
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("took %s", elapsed)
		}
		if d.Status != warden.DeliveryPending || !strings.Contains(d.LastError, "timed out after 50ms") {
			t.Errorf("%+v", d)
		}
	})
	t.Run("redirects are not followed", func(t *testing.T) {
		elsewhere := newTarget(t, nil)
		rx := newTarget(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL, http.StatusFound)
		})
		d := newSender(newClock()).Deliver(context.Background(), testDelivery(rx.URL))
		if d.Status != warden.DeliveryPending || d.LastStatus != http.StatusFound || len(elsewhere.requests()) != 0 {
			t.Errorf("%+v; redirect target got %d requests", d, len(elsewhere.requests()))
		}
	})
	t.Run("URL secrets stay out of the error", func(t *testing.T) {
		rx := newTarget(t, status(http.StatusTeapot))
		u := strings.Replace(rx.URL, "http://", "http://user:hunter2@", 1) + "/hook?token=hunter2"
		d := newSender(newClock()).Deliver(context.Background(), testDelivery(u))
		if strings.Contains(d.LastError, "hunter2") || !strings.Contains(d.LastError, "/hook") {
			t.Errorf("LastError = %q", d.LastError)
		}
	})
	t.Run("unsigned without a key", func(t *testing.T) {
		rx := newTarget(t, nil)
		s := newSender(newClock())
		s.HMACKey = nil
		if d := s.Deliver(context.Background(), testDelivery(rx.URL)); d.Status != warden.DeliveryDelivered {
			t.Fatalf("%+v", d)
		}
		if _, ok := rx.requests()[0].Header["X-Warden-Signature"]; ok {
			t.Error("a signature was sent with no key")
		}
	})
}

func TestVerifyWebhookSignature(t *testing.T) {
	payload := []byte(`{"event":"recovery"}`)
	good := contain.SignWebhook(hookKey, "1773489600", payload)
	tests := []struct {
		name    string
		key     []byte
		ts      string
		payload []byte
		sig     string
		want    bool
	}{
		{"valid", hookKey, "1773489600", payload, good, true},
		{"wrong key", []byte("other"), "1773489600", payload, good, false},
		{"other timestamp", hookKey, "1773489601", payload, good, false},
		{"tampered payload", hookKey, "1773489600", []byte(`{"event":"recoverx"}`), good, false},
		{"no prefix", hookKey, "1773489600", payload, strings.TrimPrefix(good, "sha256="), false},
		{"other algorithm", hookKey, "1773489600", payload, "sha1=" + strings.TrimPrefix(good, "sha256="), false},
		{"not hex", hookKey, "1773489600", payload, "sha256=zz", false},
		{"truncated", hookKey, "1773489600", payload, good[:len(good)-2], false},
		{"empty", hookKey, "1773489600", payload, "", false},
		{"empty key", nil, "1773489600", payload, contain.SignWebhook(nil, "1773489600", payload), false},
	}
	for _, tt := range tests {
		if got := contain.VerifyWebhookSignature(tt.key, tt.ts, tt.payload, tt.sig); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	// A fixed vector (computed independently with Python's hmac module),
	// so receivers in other languages can check theirs:
	// HMAC-SHA256(key "key", message "1.{}").
	if got := contain.SignWebhook([]byte("key"), "1", []byte("{}")); got != "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224" {
		t.Errorf("SignWebhook = %q", got)
	}
}

func TestWebhookSenderWithoutStore(t *testing.T) {
	s := newSender(newClock())
	// Wake never blocks, however often it is called with nobody listening.
	for range 3 {
		s.Wake()
	}
	if _, err := s.RunOnce(context.Background()); err == nil {
		t.Error("RunOnce without a store succeeded")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("Run without a store succeeded")
	}
}
