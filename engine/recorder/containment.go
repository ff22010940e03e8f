package recorder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	warden "github.com/warden-sh/warden"
)

// alertResults records log_alert actions, which cannot fail: the alert is
// the committed webhook delivery and the log line that follows the commit.
func alertResults(actions []string, now time.Time, drill bool) []warden.ContainmentResult {
	out := make([]warden.ContainmentResult, len(actions))
	for i, a := range actions {
		out[i] = warden.ContainmentResult{Action: a, Success: true, Error: "", CompletedAt: warden.FormatTime(now), DryRun: drill, Attempts: 1}
	}
	return out
}

// runActions executes actions concurrently through the actuator under pol.
func (rec *Recorder) runActions(ctx context.Context, pol *warden.ContainmentPolicy, actions []string, inc *warden.Incident) []warden.ContainmentResult {
	results := make([]warden.ContainmentResult, len(actions))
	act := rec.actuator
	var wg sync.WaitGroup
	for i, a := range actions {
		wg.Add(1)
		go func(i int, a string) {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					results[i] = warden.ContainmentResult{Action: a, Error: fmt.Sprintf("actuator panicked: %v", r), CompletedAt: warden.FormatTime(rec.core.Now())}
				}
			}()
			if act == nil {
				results[i] = warden.ContainmentResult{Action: a, Error: "no containment actuator configured", CompletedAt: warden.FormatTime(rec.core.Now())}
				return
			}
			results[i] = rec.execute(ctx, pol, a, inc)
		}(i, a)
	}
	wg.Wait()
	return results
}

// execute runs one action through the actuator, or, in drill mode, only
// asks it what it would do: the engine decides, so a live actuator wired
// into a drill never reaches a target.
func (rec *Recorder) execute(ctx context.Context, pol *warden.ContainmentPolicy, action string, inc *warden.Incident) warden.ContainmentResult {
	if rec.core.Drill() {
		r := rec.actuator.DryRun(ctx, pol, action, inc)
		r.Action, r.DryRun = action, true
		return r
	}
	r := rec.actuator.Execute(ctx, pol, action, inc)
	r.Action = action
	return r
}

// settleContainment sets the state from the results: contained only if the
// class auto-contains and every action succeeded.
func (rec *Recorder) settleContainment(inc *warden.Incident, rule warden.ClassRule) {
	inc.ContainmentPending = false
	if !rule.AutoContain {
		return // alerts only: the incident stays open
	}
	for _, r := range inc.ContainmentResults {
		if !r.Success {
			inc.State = warden.StateContainmentFailed
			return
		}
	}
	inc.State = warden.StateContained
}

// contain runs the pending containment of an incident and records it;
// recorded says whether this call recorded it (false: it was not pending,
// or another process recorded it first). op names the exported operation
// that asked, for errors. When the actions ran but their outcome cannot be
// recorded (storage full, or any other failed write), the outcome is held
// in memory and recorded by RecordHeldContainment once writes work again,
// so no target is called twice for it.
func (rec *Recorder) contain(ctx context.Context, op, id string) (inc *warden.Incident, recorded bool, err error) {
	ps := rec.policyState()
	if err := rec.core.View(ctx, op, func(tx warden.ReadTx) (err error) {
		inc, err = tx.Incident(id)
		return err
	}); err != nil {
		return nil, false, err
	}
	if !inc.ContainmentPending {
		return inc, false, nil
	}
	return rec.containPending(ctx, op, ps, inc)
}

// containPending is contain for an incident the caller already holds,
// pending under policy ps: a report passes the incident it just committed,
// so the containing path reads nothing before it calls the targets.
func (rec *Recorder) containPending(ctx context.Context, op string, ps *policyState, inc *warden.Incident) (*warden.Incident, bool, error) {
	id := inc.ID
	results := rec.runActions(ctx, ps.Policy, inc.ContainmentActions, inc)
	inc, recorded, err := rec.recordContainment(ctx, op, ps, id, results, "")
	if err != nil {
		rec.hold(id, &heldContainment{ps: ps, results: results, cause: warden.ErrorMessage(err)})
	}
	return inc, recorded, err
}

// recordContainment records the results of an incident's containment
// under the policy they ran with, unless it is no longer pending. delayed,
// when set, says why they are recorded late; it rides in the receipt.
func (rec *Recorder) recordContainment(ctx context.Context, op string, ps *policyState, id string, results []warden.ContainmentResult, delayed string) (inc *warden.Incident, recorded bool, err error) {
	now := rec.core.Now()
	detail := map[string]any{"results": results}
	if delayed != "" {
		detail["delayed"] = delayed
	}
	err = rec.core.Update(ctx, op, func(tx warden.Tx) (err error) {
		recorded = false
		if inc, err = tx.Incident(id); err != nil {
			return err
		}
		if !inc.ContainmentPending {
			return nil // another process recorded it first
		}
		recorded = true
		inc.ContainmentResults = results
		rec.settleContainment(inc, ruleOf(ps, inc.Class))
		if err := tx.UpdateIncident(inc); err != nil {
			return err
		}
		if _, err := tx.Append(rec.incidentDraft(warden.ReceiptContainment, inc, "warden", detail)); err != nil {
			return err
		}
		return rec.enqueueWebhooks(tx, ps, warden.EventContainment, inc, now)
	})
	if err != nil {
		return nil, false, err
	}
	if recorded {
		rec.countContainment(results)
		rec.wake()
	}
	return inc, recorded, nil
}

// MaxHeldContainment bounds the containment outcomes held in memory for
// RecordHeldContainment. Beyond it an outcome is dropped (logged): its
// incident stays pending in the store, and the next start runs its
// containment again (InterruptedContainment).
const MaxHeldContainment = 4096

// heldContainment is a containment whose actions ran and whose outcome
// could not be recorded.
type heldContainment struct {
	ps      *policyState
	results []warden.ContainmentResult
	cause   string // the sentence the recording failed with
}

func (rec *Recorder) hold(id string, h *heldContainment) {
	rec.heldMu.Lock()
	defer rec.heldMu.Unlock()
	if _, ok := rec.held[id]; !ok && len(rec.held) >= MaxHeldContainment {
		rec.core.Logger().Error("containment outcome not held: too many await recording; the next start runs it again",
			"incident", id, "held", len(rec.held))
		return
	}
	if rec.held == nil {
		rec.held = map[string]*heldContainment{}
	}
	rec.held[id] = h
}

// HeldContainment returns the ids of the incidents whose containment ran
// but awaits recording (RecordHeldContainment), sorted.
func (rec *Recorder) HeldContainment() []string {
	rec.heldMu.Lock()
	defer rec.heldMu.Unlock()
	ids := make([]string, 0, len(rec.held))
	for id := range rec.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// RecordHeldContainment records the containment whose actions ran but
// whose outcome could not be recorded (storage full), with the results
// they had: targets are not called again. Each is receipted once
// (incident_containment, its detail saying why it is late); one already
// recorded meanwhile is dropped. It stops at the first EUNAVAILABLE
// (storage still full) and returns how many it recorded. Servers call it
// every second or so; while nothing is held it does nothing.
func (rec *Recorder) RecordHeldContainment(ctx context.Context) (int, error) {
	rec.retryMu.Lock()
	defer rec.retryMu.Unlock()
	var errs []error
	done := 0
	for _, id := range rec.HeldContainment() {
		rec.heldMu.Lock()
		h := rec.held[id]
		rec.heldMu.Unlock()
		_, recorded, err := rec.recordContainment(ctx, "recorder.RecordHeldContainment", h.ps, id, h.results, h.cause)
		if err != nil && warden.ErrorCode(err) != warden.ENOTFOUND {
			errs = append(errs, fmt.Errorf("incident %s: %w", id, err))
			if warden.ErrorCode(err) == warden.EUNAVAILABLE {
				break // the rest would fail the same way
			}
			continue
		}
		rec.heldMu.Lock()
		delete(rec.held, id)
		rec.heldMu.Unlock()
		if recorded {
			done++
		}
	}
	return done, errors.Join(errs...)
}

func ruleOf(ps *policyState, class string) warden.ClassRule {
	return ps.Policy.Rules[class]
}

// InterruptedContainment lists the incidents whose containment a crash
// interrupted (still marked pending). A server calls it before it accepts
// reports, then hands the list to ResumeContainment: an incident reported
// after the list was taken is contained by its own request, so no target
// is called twice for it.
func (rec *Recorder) InterruptedContainment(ctx context.Context) ([]string, error) {
	var ids []string
	err := rec.core.View(ctx, "recorder.InterruptedContainment", func(tx warden.ReadTx) error {
		return tx.PendingContainment(func(i *warden.Incident) error {
			ids = append(ids, i.ID)
			return nil
		})
	})
	return ids, err
}

// ResumeContainment finishes the interrupted containment of ids (from
// InterruptedContainment) and records it. An incident recorded meanwhile
// (by another process) is skipped. It returns how many it finished.
func (rec *Recorder) ResumeContainment(ctx context.Context, ids []string) (int, error) {
	// One incident that cannot be finished does not hold up the others.
	var errs []error
	done := 0
	for _, id := range ids {
		_, recorded, err := rec.contain(ctx, "recorder.ResumeContainment", id)
		if err != nil {
			errs = append(errs, fmt.Errorf("incident %s: %w", id, err))
			continue
		}
		if recorded {
			done++
		}
	}
	return done, errors.Join(errs...)
}

// RunActions runs containment actions for inc through the actuator under
// policy p (a snapshot from Policy), concurrently, and returns their
// outcomes. It records nothing: the caller receipts what it asked for
// before and what happened after (phoenix lockdown does both).
func (rec *Recorder) RunActions(ctx context.Context, p *warden.ContainmentPolicy, actions []string, inc *warden.Incident) []warden.ContainmentResult {
	return rec.runActions(ctx, p, actions, inc)
}
