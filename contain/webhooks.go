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
	// WebhookBatch is how many due deliveries RunOnce takes at a time.
	WebhookBatch = 100
	// webhookParallel bounds concurrent sends overall: with
	// webhookLaneParallel per destination, it takes 16 hung receivers to
	// hold every slot.
	webhookParallel = 64
	// webhookLaneParallel bounds concurrent sends to one destination, so a
	// receiver that hangs holds at most this many of the webhookParallel.
	webhookLaneParallel = 4
	// webhookLaneDepth bounds the deliveries Run holds for one destination
	// (sending or waiting), and so the rows one scan reads for it; the
	// rest stay due in the store until it drains.
	webhookLaneDepth = 16
	// webhookQueued bounds the deliveries in all of Run's lanes.
	webhookQueued = 256
	// webhookMaxDestinations bounds the destinations one scan asks for;
	// each is a few index probes, whatever its backlog.
	webhookMaxDestinations = 1024
	// webhookBreakerWait is how long a failing destination takes no
	// deliveries before its first probe; it doubles after each failed
	// probe, up to webhookBreakerMaxWait.
	webhookBreakerWait    = time.Second
	webhookBreakerMaxWait = time.Minute
)

// WebhookSender sends the webhook outbox: deliveries the recorder enqueued in
// the same transaction as the state change they report. It reads due
// deliveries from the outbox port and reports every outcome back through
// it (the recorder records it, receipting a final failure in the same
// transaction); it never writes to the store itself. It runs as its own
// goroutine (Run) and never blocks a request path; Wake makes it send a
// newly committed delivery at once instead of at the next poll.
//
// Run gives each destination (warden.Destination: the URL without
// credentials, query or fragment) its own lane: at most
// webhookLaneParallel sends and webhookLaneDepth held
// deliveries, within webhookParallel sends overall. A scan asks the outbox
// which destinations have deliveries due and reads only those of lanes
// with room, at most a lane's depth each: a full lane costs no reads, and
// a dead receiver's backlog is never read to find others'. A receiver that
// is slow or dead fills only its own lane; the others keep being sent. A
// delivery is never sent twice at once: it is held from the scan that
// takes it until a scan that starts after its outcome is recorded (or it
// is abandoned). Sends abandoned at shutdown are not recorded and are
// sent again by a later Run.
//
// A failing destination backs off as a whole. When an attempt to it fails
// with a network error (timeouts included), a 5xx or a 429, its lane takes
// no deliveries for 1 s (on Clock) and lets go of those waiting; then it
// sends one delivery as a probe, and waits twice as long after each probe
// that fails, up to a minute. Any other answer (a 2xx; a 3xx or a 4xx,
// the delivery's own problem: it fails and is retried on its own backoff)
// puts the lane back to full parallelism. So a
// dead receiver costs a probe now and then, not an attempt and a recorded
// outcome per delivery: the deliveries behind it stay pending in the
// store, their Attempts untouched, and go out when it answers again. The
// breaker is in memory; a restarted Run starts with every lane closed.
//
// Delivery is at least once: an outcome is recorded after the send, so a
// crash in between sends again. Receivers de-duplicate on
// X-Warden-Delivery. A delivery is failed for good, and receipted
// (webhook_delivery_failed), after MaxAttempts attempts of its own.
//
// Each request POSTs the delivery's payload bytes as they are, with
// Content-Type application/json, X-Warden-Event, X-Warden-Delivery,
// X-Warden-Timestamp (unix seconds) and X-Warden-Signature:
// "sha256=" + hex(HMAC-SHA256(HMACKey, timestamp + "." + payload)); see
// VerifyWebhookSignature. With an empty HMACKey no signature is sent.
type WebhookSender struct {
	// Outbox lists due deliveries and records outcomes (the recorder).
	Outbox warden.WebhookOutbox
	// Clock decides what is due, when a failing destination is probed, and
	// stamps timestamps; nil is the system clock.
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
	// lanes: Run's lanes by destination, while they hold deliveries or
	// their breaker is open.
	lanes  map[string]*lane
	queued int // deliveries in lanes, sending or waiting
}

// lane is one destination's share of Run: its waiting deliveries, the
// workers (at most webhookLaneParallel) sending them, and its breaker.
type lane struct {
	key   string
	queue []*warden.Delivery
	// held counts the lane's deliveries, waiting or being sent.
	held    int
	workers int
	// failures counts the destination's failed rounds in a row: the
	// failure that opened the breaker, then each failed probe. 0: closed.
	failures int
	// retryAt is when an open breaker lets a probe go.
	retryAt time.Time
	// probing: the lane's one delivery is a probe.
	probing bool
}

// room returns how many more deliveries l may take at now: up to its depth
// while its breaker is closed; while open, one (the probe) once retryAt
// has come and the lane is empty, else none.
func (l *lane) room(now time.Time) int {
	switch {
	case l.failures == 0:
		return webhookLaneDepth - l.held
	case l.held == 0 && !now.Before(l.retryAt):
		return 1
	default:
		return 0
	}
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

// fill hands due deliveries to their destinations' lanes. It asks which
// destinations have deliveries due and, for each whose lane has room while
// the lanes hold fewer than webhookQueued, reads that destination's oldest
// due deliveries: the lane's held ones (which may come back, and are
// skipped) plus its room. One fill reads at most webhookLaneDepth rows per
// destination, whatever the backlogs; a full lane, or one whose breaker is
// open, costs none.
func (s *WebhookSender) fill(ctx context.Context, wg *sync.WaitGroup) error {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	s.release()
	now := clockOr(s.Clock)()
	dests, err := s.dueDestinations(ctx, now)
	if err != nil {
		return err
	}
	s.forgetIdle(dests, now)
	for _, dest := range dests {
		if ctx.Err() != nil {
			return nil
		}
		limit, more := s.readLimit(dest, now)
		if !more {
			return nil
		}
		if limit == 0 {
			continue
		}
		due, err := s.dueDeliveries(ctx, now, dest, limit)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.take(ctx, wg, dest, due, now)
		s.mu.Unlock()
	}
	return nil
}

// readLimit returns how many of dest's due deliveries fill reads: its
// lane's held ones plus its room, 0 if it has none. more is false once the
// lanes hold webhookQueued.
func (s *WebhookSender) readLimit(dest string, now time.Time) (limit int, more bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	free := webhookQueued - s.queued
	if free <= 0 {
		return 0, false
	}
	l := s.lanes[dest]
	if l == nil {
		return min(webhookLaneDepth, free), true
	}
	room := min(l.room(now), free)
	if room <= 0 {
		return 0, true
	}
	return l.held + room, true
}

// take queues due deliveries to dest that nobody holds in dest's lane,
// while it has room, starting workers up to webhookLaneParallel. s.mu
// MUST be held.
func (s *WebhookSender) take(ctx context.Context, wg *sync.WaitGroup, dest string, due []*warden.Delivery, now time.Time) {
	l := s.lanes[dest]
	if l == nil {
		l = &lane{key: dest}
		s.lanes[dest] = l
	}
	for _, d := range due {
		if _, ok := s.held[d.ID]; ok {
			continue
		}
		if s.queued >= webhookQueued || l.room(now) <= 0 {
			break
		}
		s.held[d.ID] = struct{}{}
		s.queued++
		l.held++
		l.queue = append(l.queue, d)
		l.probing = l.failures > 0
		if l.workers < webhookLaneParallel {
			l.workers++
			wg.Go(func() { s.work(ctx, l) })
		}
	}
	s.retire(l)
}

// forgetIdle drops the breakers of destinations that have nothing due and
// whose retry time has come, so the lanes map stays as small as the set of
// due destinations: such a breaker holds nothing back, and if the
// destination comes due again and still fails, it costs one more round of
// sends (at most webhookLaneParallel) before its breaker opens again.
// s.mu is taken.
func (s *WebhookSender) forgetIdle(due []string, now time.Time) {
	isDue := make(map[string]bool, len(due))
	for _, d := range due {
		isDue[d] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, l := range s.lanes {
		if l.workers == 0 && !now.Before(l.retryAt) && !isDue[key] {
			delete(s.lanes, key)
		}
	}
}

// retire drops l once it holds nothing and its breaker is closed. s.mu
// MUST be held.
func (s *WebhookSender) retire(l *lane) {
	if l.held == 0 && l.workers == 0 && l.failures == 0 && s.lanes[l.key] == l {
		delete(s.lanes, l.key)
	}
}

// work sends l's deliveries one at a time until its queue is empty or ctx
// is done; waiting deliveries are then abandoned (they stay due).
func (s *WebhookSender) work(ctx context.Context, l *lane) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if ctx.Err() != nil {
			s.drop(l)
		}
		if len(l.queue) == 0 {
			l.workers--
			s.retire(l)
			return
		}
		d := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		s.mu.Unlock()

		upd, err := s.attempt(ctx, d)
		if err != nil {
			s.logger().LogAttrs(ctx, slog.LevelError, "webhook sender", slog.String("error", err.Error()))
		}
		s.mu.Lock()
		s.judge(ctx, l, upd)
		s.settle(d.ID)
		s.queued--
		l.held--
		s.Wake() // room in this lane
	}
}

// judge moves l's breaker on the outcome of one of its attempts (nil: cut
// short, which says nothing about the destination). A failure opens it, or
// keeps it open for twice as long if the attempt was the probe; a failure
// of a send that began before it opened changes nothing more. Any other
// outcome closes it. While it is open the lane's waiting deliveries are
// let go, unattempted. s.mu MUST be held.
func (s *WebhookSender) judge(ctx context.Context, l *lane, upd *warden.Delivery) {
	probe := l.probing
	l.probing = false
	switch {
	case upd == nil:
	case !destinationFailed(upd):
		l.failures, l.retryAt = 0, time.Time{}
	case probe || l.failures == 0:
		l.failures++
		wait := min(webhookBreakerWait<<min(l.failures-1, 20), webhookBreakerMaxWait)
		l.retryAt = clockOr(s.Clock)().Add(wait)
		s.logger().LogAttrs(ctx, slog.LevelWarn, "webhook destination failing; holding its deliveries",
			slog.String("destination", redactURL(l.key)), slog.Int("failures", l.failures),
			slog.Duration("retry_in", wait), slog.Int("released", len(l.queue)))
	}
	if l.failures > 0 {
		s.drop(l)
	}
}

// destinationFailed reports whether an attempt's outcome is the
// destination's failure (no answer, a 5xx or a 429) rather than its
// delivery's.
func destinationFailed(upd *warden.Delivery) bool {
	if upd.Status == warden.DeliveryDelivered {
		return false
	}
	return upd.LastStatus == 0 || upd.LastStatus >= 500 || upd.LastStatus == http.StatusTooManyRequests
}

// drop lets go of l's waiting deliveries, unattempted: they stay due in
// the store. s.mu MUST be held.
func (s *WebhookSender) drop(l *lane) {
	for _, d := range l.queue {
		s.settle(d.ID)
		s.queued--
		l.held--
	}
	clear(l.queue)
	l.queue = l.queue[:0]
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

// dueDestinations asks the outbox which destinations have deliveries due.
func (s *WebhookSender) dueDestinations(ctx context.Context, now time.Time) ([]string, error) {
	dests, err := s.Outbox.DueDestinations(ctx, now, webhookMaxDestinations)
	if err != nil {
		return nil, fmt.Errorf("contain.WebhookSender: due destinations: %w", err)
	}
	return dests, nil
}

// dueDeliveries reads up to limit deliveries to dest due at now, oldest
// first.
func (s *WebhookSender) dueDeliveries(ctx context.Context, now time.Time, dest string, limit int) ([]*warden.Delivery, error) {
	due, err := s.Outbox.DueDeliveries(ctx, now, dest, limit)
	if err != nil {
		return nil, fmt.Errorf("contain.WebhookSender: due deliveries: %w", err)
	}
	return due, nil
}

// RunOnce sends up to WebhookBatch deliveries that are due now and records
// each outcome in its own transaction. It returns how many it sent, once
// all have been sent; per destination it sends webhookLaneParallel at a
// time. Deliveries Run is sending are left to Run. A send cut short by ctx
// is not recorded (it is sent again later). RunOnce is one pass over what
// is due: it neither consults nor moves Run's breakers.
func (s *WebhookSender) RunOnce(ctx context.Context) (int, error) {
	if s.Outbox == nil {
		return 0, errors.New("contain.WebhookSender.RunOnce: no outbox")
	}
	s.setup()
	s.scanMu.Lock()
	mine, err := s.takeBatch(ctx)
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
		key := warden.Destination(d.URL)
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
			upd, err := s.attempt(ctx, d)
			mu.Lock()
			defer mu.Unlock()
			if upd != nil {
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

// takeBatch holds up to WebhookBatch due deliveries that nobody holds,
// destination by destination, the longest waiting first. On an outbox
// error it holds none. s.scanMu MUST be held.
func (s *WebhookSender) takeBatch(ctx context.Context) ([]*warden.Delivery, error) {
	held := s.release()
	now := clockOr(s.Clock)()
	dests, err := s.dueDestinations(ctx, now)
	if err != nil {
		return nil, err
	}
	var mine []*warden.Delivery
	for _, dest := range dests {
		if len(mine) == WebhookBatch {
			break
		}
		// Held ones (Run's) may come back; read past them.
		due, err := s.dueDeliveries(ctx, now, dest, WebhookBatch-len(mine)+held)
		if err != nil {
			s.mu.Lock()
			for _, d := range mine {
				s.settle(d.ID)
			}
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Lock()
		for _, d := range due {
			if _, ok := s.held[d.ID]; !ok && len(mine) < WebhookBatch {
				s.held[d.ID] = struct{}{}
				mine = append(mine, d)
			}
		}
		s.mu.Unlock()
	}
	return mine, nil
}

// attempt sends d once in one of the sender's webhookParallel slots and
// records the outcome. It returns d as the attempt left it, or nil if it
// made none: a send cut short by ctx is not the receiver's failure and is
// not recorded.
func (s *WebhookSender) attempt(ctx context.Context, d *warden.Delivery) (*warden.Delivery, error) {
	if ctx.Err() != nil {
		return nil, nil
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, nil
	}
	upd := s.Deliver(ctx, d)
	<-s.slots
	if ctx.Err() != nil && upd.Status != warden.DeliveryDelivered {
		return nil, nil
	}
	return upd, s.record(ctx, upd)
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
