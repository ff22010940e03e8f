package cli

import (
	"context"
	"log/slog"
	"sync"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

// loop is one of a server's background jobs. A loop with an interval runs
// every interval until its context ends; one without runs once (run may
// itself block until the context ends).
type loop struct {
	name  string
	every time.Duration
	run   func(ctx context.Context) error
}

// serverLoops lists everything `warden serve` does besides answering
// requests. Every one of them works from durable state (the outbox, pending
// containment, stored deadlines, the log), so a crash loses none of their
// work: the next start picks it up.
func serverLoops(l *local, sender *contain.WebhookSender, interrupted []string, integrityEvery, metricsEvery time.Duration) []loop {
	core, rec, gov := l.core, l.rec, l.gov
	log := core.Logger()
	loops := []loop{
		// Webhook deliveries from the outbox, woken by the recorder.
		{name: "webhooks", run: sender.Run},
		// Containment a crash interrupted, listed before the listener
		// accepted reports.
		{name: "resume-containment", run: func(ctx context.Context) error {
			n, err := rec.ResumeContainment(ctx, interrupted)
			if n > 0 {
				log.Warn("finished containment interrupted by a crash", "incidents", n)
			}
			return err
		}},
		// After storage was unavailable (full): find out when writes work
		// again (/health is degraded until then), then record the
		// containment that ran meanwhile but could not be recorded,
		// without calling its targets again.
		{name: "storage-recovery", every: time.Second, run: func(ctx context.Context) error {
			if _, err := core.ProbeStorage(ctx); warden.ErrorCode(err) == warden.EUNAVAILABLE {
				return nil // still full: /health says so; the store logged it
			} else if err != nil {
				return err
			}
			n, err := rec.RecordHeldContainment(ctx)
			if n > 0 {
				log.Warn("recorded containment that ran while storage was unavailable", "incidents", n)
			}
			if warden.ErrorCode(err) == warden.EUNAVAILABLE {
				return nil
			}
			return err
		}},
		// Expired escalations come down from their stored deadlines.
		{name: "ttl-sweep", every: time.Second, run: func(ctx context.Context) error {
			res, err := gov.SweepExpired(ctx)
			if len(res) > 0 {
				log.Info("escalations expired", "count", len(res))
			}
			return err
		}},
		// Credentials revoked by another process on the data directory
		// (`warden credential revoke --data DIR`): their MCP sessions and
		// streams are closed within a second. (Their requests are refused
		// at once anyway: authentication reads the store every time.)
		{name: "revocations", every: time.Second, run: func(ctx context.Context) error {
			_, err := core.NoticeRevocations(ctx)
			return err
		}},
		// Anchor the log at least every second while it changes, with the
		// count of auth failures not receipted one by one.
		{name: "checkpoint", every: time.Second, run: func(ctx context.Context) error {
			if err := core.FlushSuppressed(ctx); err != nil {
				log.Error("flushing auth failure count", "err", err)
			}
			_, err := core.Checkpoint(ctx)
			return err
		}},
	}
	if metricsEvery > 0 {
		// The gauges that need a store read (open and latched incidents,
		// the webhook backlog, active escalations, budgets) are refreshed
		// here, so a scrape never reads the store.
		loops = append(loops, loop{name: "metrics", every: metricsEvery, run: l.refreshMetrics})
	}
	if integrityEvery > 0 {
		monitor := &warden.Principal{Name: "warden:integrity-monitor", Roles: []warden.Role{warden.RoleAdmin}}
		loops = append(loops, loop{name: "integrity-scan", every: integrityEvery, run: func(ctx context.Context) error {
			res, err := rec.IntegrityScan(ctx, monitor)
			switch {
			case warden.ErrorCode(err) == warden.ENOTFOUND:
				return nil // no baseline recorded
			case err == nil && res.Reported:
				log.Warn("integrity violation reported", "incident", res.Incident.ID, "summary", res.Evidence["summary"])
			}
			return err
		}})
	}
	return loops
}

// runLoops starts every loop and returns a function that waits for all of
// them to stop (after ctx ends). An error is logged with the loop's name,
// unless it came from ctx ending.
func runLoops(ctx context.Context, loops []loop, log *slog.Logger) (wait func()) {
	var wg sync.WaitGroup
	report := func(name string, err error) {
		if err != nil && ctx.Err() == nil {
			log.Error("background loop", "loop", name, "err", err)
		}
	}
	for _, lp := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if lp.every <= 0 {
				report(lp.name, lp.run(ctx))
				return
			}
			t := time.NewTicker(lp.every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					report(lp.name, lp.run(ctx))
				}
			}
		}()
	}
	return wg.Wait
}

// refreshMetrics sets the gauges that need a store read (recorder and
// governor RefreshMetrics).
func (l *local) refreshMetrics(ctx context.Context) error {
	if err := l.rec.RefreshMetrics(ctx); err != nil {
		return err
	}
	return l.gov.RefreshMetrics(ctx)
}
