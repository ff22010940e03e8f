package contain

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	warden "github.com/warden-sh/warden"
)

// Webhook request headers.
const (
	HeaderEvent     = "X-Warden-Event"
	HeaderDelivery  = "X-Warden-Delivery"
	HeaderTimestamp = "X-Warden-Timestamp"
	HeaderSignature = "X-Warden-Signature"
)

// Webhook sender defaults.
const (
	DefaultWebhookAttempts = 8
	DefaultWebhookTimeout  = 5 * time.Second
	DefaultPollInterval    = time.Second
	MaxWebhookBackoff      = 5 * time.Minute
	// WebhookBatch is how many due deliveries RunOnce takes at a time, and
	// how many Run looks at per scan beyond those it skips.
	WebhookBatch = 100
	// webhookParallel bounds concurrent sends overall: with
	// webhookLaneParallel per destination, it takes 16 hung receivers to
	// hold every slot.
	webhookParallel = 64
	// webhookLaneParallel bounds concurrent sends to one destination, so a
	// receiver that hangs holds at most this many of the webhookParallel.
	webhookLaneParallel = 4
	// webhookLaneDepth bounds the deliveries Run holds for one destination
	// (sending or waiting); the rest stay due in the store until it drains.
	webhookLaneDepth = 16
	// webhookQueued bounds the deliveries in all of Run's lanes.
	webhookQueued = 256
	// webhookMaxScan bounds the due deliveries one scan reads looking past
	// those of full lanes (a dead receiver's backlog) for others.
	webhookMaxScan = 4096
)

// WebhookSender sends the webhook outbox: deliveries the recorder enqueued in
// the same transaction as the state change they report. It reads due
// deliveries from the outbox port and reports every outcome back through
// it (the recorder records it, receipting a final failure in the same
// transaction); it never writes to the store itself. It runs as its own
// goroutine (Run) and never blocks a request path; Wake makes it send a
// newly committed delivery at once instead of at the next poll.
//
// Run gives each destination (URL scheme and host) its own lane: at most
// webhookLaneParallel sends and webhookLaneDepth held deliveries, within
// webhookParallel sends overall. A receiver that is slow or dead fills
// only its own lane; the others keep being sent. A delivery is never sent
// twice at once: it is held from the scan that takes it until a scan that
// starts after its outcome is recorded.
//
// Delivery is at least once: an outcome is recorded after the send, so a
// crash in between sends again. Receivers de-duplicate on
// X-Warden-Delivery.
//
// Each request POSTs the delivery's payload bytes as they are, with
// Content-Type application/json, X-Warden-Event, X-Warden-Delivery,
// X-Warden-Timestamp (unix seconds) and X-Warden-Signature:
// "sha256=" + hex(HMAC-SHA256(HMACKey, timestamp + "." + payload)); see
// VerifyWebhookSignature. With an empty HMACKey no signature is sent.
type WebhookSender struct {
	// Outbox lists due deliveries and records outcomes (the recorder).
	Outbox warden.WebhookOutbox
	// Clock decides what is due and stamps timestamps; nil is the system clock.
	Clock warden.Clock
	// HMACKey signs every request.
	HMACKey []byte
	// Client sends; nil uses a client that never follows redirects.
	Client *http.Client
	// Logger receives failed sends; nil is slog.Default().
	Logger *slog.Logger
	// MaxAttempts is how many sends a delivery gets before it is failed
	// (DefaultWebhookAttempts when ≤ 0).
	MaxAttempts int
	// Backoff returns the wait after failed attempt number attempt (1, 2, …);
	// nil is 1 s · 2^(attempt-1), at most MaxWebhookBackoff.
	Backoff func(attempt int) time.Duration
	// PollInterval is how often Run looks for due deliveries without a Wake
	// (DefaultPollInterval when ≤ 0).
	PollInterval time.Duration
	// Timeout bounds each send (DefaultWebhookTimeout when ≤ 0).
	Timeout time.Duration

	once  sync.Once
	wake  chan struct{}
	slots chan struct{} // one per send in progress, webhookParallel at most

	// scanMu makes scans one at a time, so a delivery released at the start
	// of a scan cannot be taken by another scan reading an older snapshot.
	scanMu sync.Mutex
	mu     sync.Mutex
	// held: deliveries taken by Run or RunOnce and not yet released.
	held map[uint64]struct{}
	// settled: held deliveries whose outcome is recorded (or abandoned);
	// released at the start of the next scan.
	settled []uint64
	lanes   map[string]*lane
	queued  int // deliveries in lanes, sending or waiting
}

// lane is one destination's share of Run: its waiting deliveries and the
// workers (at most webhookLaneParallel) sending them.
type lane struct {
	key     string
	queue   []*warden.Delivery
	workers int
}

func (s *WebhookSender) setup() {
	s.once.Do(func() {
		s.wake = make(chan struct{}, 1)
		s.slots = make(chan struct{}, webhookParallel)
		s.held = map[uint64]struct{}{}
		s.lanes = map[string]*lane{}
	})
}

// Wake asks Run to look for due deliveries now. It never blocks.
func (s *WebhookSender) Wake() {
	s.setup()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends due deliveries until ctx is done, then returns nil once every
// send it started has finished or been abandoned (abandoned sends are not
// recorded and are sent again later). Outbox errors are logged and retried
// at the next poll; they do not stop it.
func (s *WebhookSender) Run(ctx context.Context) error {
	if s.Outbox == nil {
		return errors.New("contain.WebhookSender.Run: no outbox")
	}
	s.setup()
	poll := s.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		err := s.fill(ctx, &wg)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.logger().LogAttrs(ctx, slog.LevelError, "webhook sender", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake: // a Wake, or room in a lane
		}
	}
}

// fill hands due deliveries to their destinations' lanes until none is left
// that is not held, or the lanes hold webhookQueued, or it has read
// webhookMaxScan. Deliveries of a full lane are skipped: they stay due.
func (s *WebhookSender) fill(ctx context.Context, wg *sync.WaitGroup) error {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	limit, skipped := 0, 0
	for ctx.Err() == nil {
		next := min(WebhookBatch+s.release()+skipped, webhookMaxScan)
		limit = max(next, limit)
		due, err := s.due(ctx, limit)
		if err != nil {
			return err
		}
		progress, full := false, false
		skipped = 0
		s.mu.Lock()
		for _, d := range due {
			if _, ok := s.held[d.ID]; ok {
				continue
			}
			if s.queued >= webhookQueued {
				full = true
				break
			}
			key := destination(d.URL)
			l := s.lanes[key]
			if l == nil {
				l = &lane{key: key}
				s.lanes[key] = l
			}
			if l.workers+len(l.queue) >= webhookLaneDepth {
				skipped++
				continue
			}
			s.held[d.ID] = struct{}{}
			s.queued++
			l.queue = append(l.queue, d)
			progress = true
			if l.workers < webhookLaneParallel {
				l.workers++
				wg.Go(func() { s.work(ctx, l) })
			}
		}
		s.mu.Unlock()
		if full || len(due) < limit || limit >= webhookMaxScan {
			return nil
		}
		if !progress {
			// Everything read is held or skipped: read further, or stop
			// at webhookMaxScan.
			limit = min(2*limit, webhookMaxScan)
		}
	}
	return nil
}

// work sends l's deliveries one at a time until its queue is empty or ctx
// is done; waiting deliveries are then abandoned (they stay due).
func (s *WebhookSender) work(ctx context.Context, l *lane) {
	for {
		s.mu.Lock()
		if ctx.Err() != nil {
			for _, d := range l.queue {
				s.settle(d.ID)
				s.queued--
			}
			l.queue = nil
		}
		if len(l.queue) == 0 {
			l.workers--
			if l.workers == 0 {
				delete(s.lanes, l.key)
			}
			s.mu.Unlock()
			return
		}
		d := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		s.mu.Unlock()

		if _, err := s.attempt(ctx, d); err != nil {
			s.logger().LogAttrs(ctx, slog.LevelError, "webhook sender", slog.String("error", err.Error()))
		}
		s.mu.Lock()
		s.settle(d.ID)
		s.queued--
		s.mu.Unlock()
		s.Wake() // room in this lane
	}
}

// settle marks a held delivery done with; s.mu MUST be held.
func (s *WebhookSender) settle(id uint64) {
	s.settled = append(s.settled, id)
}

// release lets go of settled deliveries, whose outcomes are committed, so
// a scan starting now sees their new state. It returns how many remain
// held. s.scanMu MUST be held.
func (s *WebhookSender) release() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.settled {
		delete(s.held, id)
	}
	s.settled = s.settled[:0]
	return len(s.held)
}

// due reads up to limit due deliveries, oldest first.
func (s *WebhookSender) due(ctx context.Context, limit int) ([]*warden.Delivery, error) {
	due, err := s.Outbox.DueDeliveries(ctx, clockOr(s.Clock)(), limit)
	if err != nil {
		return nil, fmt.Errorf("contain.WebhookSender: due deliveries: %w", err)
	}
	return due, nil
}

// RunOnce sends up to WebhookBatch deliveries that are due now and records
// each outcome in its own transaction. It returns how many it sent, once
// all have been sent; per destination it sends webhookLaneParallel at a
// time. Deliveries Run is sending are left to Run. A send cut short by ctx
// is not recorded (it is sent again later).
func (s *WebhookSender) RunOnce(ctx context.Context) (int, error) {
	if s.Outbox == nil {
		return 0, errors.New("contain.WebhookSender.RunOnce: no outbox")
	}
	s.setup()
	s.scanMu.Lock()
	s.release()
	due, err := s.due(ctx, WebhookBatch)
	var mine []*warden.Delivery
	s.mu.Lock()
	for _, d := range due {
		if _, ok := s.held[d.ID]; !ok {
			s.held[d.ID] = struct{}{}
			mine = append(mine, d)
		}
	}
	s.mu.Unlock()
	s.scanMu.Unlock()
	if err != nil {
		return 0, err
	}

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		sent  int
		lanes = map[string]chan struct{}{}
	)
	for _, d := range mine {
		key := destination(d.URL)
		if lanes[key] == nil {
			lanes[key] = make(chan struct{}, webhookLaneParallel)
		}
		sem := lanes[key]
		wg.Go(func() {
			defer func() {
				s.mu.Lock()
				s.settle(d.ID)
				s.mu.Unlock()
			}()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			ok, err := s.attempt(ctx, d)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				sent++
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return sent, errors.Join(errs...)
}

// attempt sends d once in one of the sender's webhookParallel slots and
// records the outcome. It reports whether it attempted to record one: a
// send cut short by ctx is not the receiver's failure and is not recorded.
func (s *WebhookSender) attempt(ctx context.Context, d *warden.Delivery) (bool, error) {
	if ctx.Err() != nil {
		return false, nil
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return false, nil
	}
	upd := s.Deliver(ctx, d)
	<-s.slots
	if ctx.Err() != nil && upd.Status != warden.DeliveryDelivered {
		return false, nil
	}
	return true, s.record(ctx, upd)
}

// destination names the receiver a lane is for: the URL's scheme and host
// (a dead host is one lane whatever its paths), or the URL if it has none.
func destination(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// record reports a delivery's new state to the outbox, even if ctx was
// canceled after the send: the receiver has answered, and forgetting that
// would resend.
func (s *WebhookSender) record(ctx context.Context, d *warden.Delivery) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.Outbox.RecordDelivery(rctx, d); err != nil {
		return fmt.Errorf("contain.WebhookSender: record delivery %d: %w", d.ID, err)
	}
	return nil
}

// Deliver makes one attempt to send d and returns its next state; it does
// not touch the store and does not modify d. Attempts goes up by one. On a
// 2xx the delivery is delivered (DeliveredAt set, LastError cleared).
// Otherwise LastStatus (0 for a network error) and LastError say why, and
// it is pending again at now + Backoff(Attempts), or failed once Attempts
// reaches MaxAttempts.
func (s *WebhookSender) Deliver(ctx context.Context, d *warden.Delivery) *warden.Delivery {
	upd := *d
	upd.Attempts++
	status, err := s.send(ctx, d)
	now := clockOr(s.Clock)()
	upd.LastStatus = status
	if err == nil {
		upd.Status = warden.DeliveryDelivered
		upd.LastError = ""
		upd.DeliveredAt = now
		upd.NextAttemptAt = time.Time{}
		return &upd
	}
	upd.LastError = printable(err.Error(), 500)
	maxAttempts := s.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultWebhookAttempts
	}
	if upd.Attempts >= maxAttempts {
		upd.Status = warden.DeliveryFailed
		upd.NextAttemptAt = time.Time{}
	} else {
		upd.Status = warden.DeliveryPending
		upd.NextAttemptAt = now.Add(s.backoff(upd.Attempts))
	}
	s.logger().LogAttrs(ctx, slog.LevelWarn, "webhook delivery failed",
		slog.Uint64("delivery_id", d.ID), slog.String("event", d.Event),
		slog.String("url", redactURL(d.URL)), slog.Int("attempts", upd.Attempts),
		slog.String("status", upd.Status), slog.String("error", upd.LastError))
	return &upd
}

// send POSTs d once and returns the HTTP status (0 if none) and an error
// unless the receiver answered 2xx.
func (s *WebhookSender) send(ctx context.Context, d *warden.Delivery) (int, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	ts := strconv.FormatInt(clockOr(s.Clock)().Unix(), 10)
	h := http.Header{}
	h.Set("User-Agent", "warden-webhook")
	h.Set(HeaderEvent, d.Event)
	h.Set(HeaderDelivery, strconv.FormatUint(d.ID, 10))
	h.Set(HeaderTimestamp, ts)
	if len(s.HMACKey) > 0 {
		h.Set(HeaderSignature, SignWebhook(s.HMACKey, ts, d.Payload))
	}
	status, _, err := post(ctx, s.Client, postCall{URL: d.URL, Body: d.Payload, Header: h, Timeout: timeout})
	return status, err
}

func (s *WebhookSender) backoff(attempt int) time.Duration {
	if s.Backoff != nil {
		return s.Backoff(attempt)
	}
	return min(time.Second<<min(max(attempt-1, 0), 20), MaxWebhookBackoff)
}

func (s *WebhookSender) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// SignWebhook returns the X-Warden-Signature value for a payload sent at
// timestamp (unix seconds, as sent in X-Warden-Timestamp):
// "sha256=" + hex(HMAC-SHA256(key, timestamp + "." + payload)).
func SignWebhook(key []byte, timestamp string, payload []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(payload)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifyWebhookSignature reports, in constant time, whether signature is
// the X-Warden-Signature of payload sent at timestamp under key. An empty
// key never verifies. Receivers SHOULD also reject timestamps far from
// their own clock, so a captured request cannot be replayed later.
func VerifyWebhookSignature(key []byte, timestamp string, payload []byte, signature string) bool {
	if len(key) == 0 {
		return false
	}
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(SignWebhook(key, timestamp, payload), "sha256="))
	return hmac.Equal(got, want)
}
