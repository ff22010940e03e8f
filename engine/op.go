package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	warden "github.com/warden-sh/warden"
)

// Update runs fn as the operation op in ONE store transaction: every state
// change and every receipt fn makes is committed together, or none is.
//
//   - A *Denial returned by fn (see Deny) rolls fn back and is receipted in
//     a transaction of its own, so a refusal never changes state; the
//     caller gets the denial's *warden.Error. A principal's denials are
//     receipted at a bounded rate (Options.DenialRate): past it they are
//     counted, and the count is receipted with the next one or by
//     FlushSuppressed, so none goes unaccounted.
//   - A receipt whose type the catalogue (warden.ReceiptScroll) does not
//     list, or lists in another scroll, fails the transaction.
//   - Any error that is not a domain error (code EINTERNAL) comes back
//     named with op ("recorder.ReportIncident: …"); domain errors come
//     back unchanged for the transports' error tables.
//   - The receipts of a committed transaction are counted per scroll.
//   - While the startup check has found tampering, nothing is written:
//     EUNAVAILABLE (startup.go).
//   - An EUNAVAILABLE failure (storage full) degrades the core until
//     ProbeStorage finds that writes work again (see Degraded).
//   - Credentials it revoked are announced to the OnRevoke listeners once
//     it has committed, whichever rule revoked them.
func (e *Core) Update(ctx context.Context, op string, fn func(tx warden.Tx) error) error {
	if err := e.refuseWrites(); err != nil {
		return err
	}
	err := e.update(ctx, op, fn)
	if warden.ErrorCode(err) == warden.EUNAVAILABLE {
		e.storage.failed(err, e.now())
		if e.metrics != nil {
			e.metrics.Unavailable.Inc()
		}
	}
	return err
}

// update is Update without the gate and the storage health bookkeeping.
func (e *Core) update(ctx context.Context, op string, fn func(tx warden.Tx) error) error {
	var n scrollCounts
	var revoked []string
	err := e.store.Update(ctx, func(tx warden.Tx) error {
		n = scrollCounts{} // the store may run fn again after a retry
		revoked = revoked[:0]
		return fn(&countingTx{Tx: tx, n: &n, revoked: &revoked})
	})
	if err == nil {
		e.countReceipts(&n)
		e.revoked(revoked)
		return nil
	}
	var d *Denial
	if !errors.As(err, &d) {
		return named(op, err)
	}
	// One principal's denials are receipted at a bounded rate; the rest
	// are counted and the count rides on its next denial receipt or a
	// flush (limit.go). The refusal itself always happens.
	who, _ := d.body["principal"].(string)
	ok, suppressed := e.denials.take(who)
	if !ok {
		if e.metrics != nil {
			e.metrics.DenialsSuppressed.Inc()
		}
		return d.Err
	}
	if suppressed > 0 {
		d.body["suppressed_since_previous"] = suppressed
	}
	n = scrollCounts{}
	if werr := e.store.Update(context.WithoutCancel(ctx), func(tx warden.Tx) error {
		_, err := (&countingTx{Tx: tx, n: &n}).Append(d.draft)
		return err
	}); werr != nil {
		e.denials.restore(who, suppressed)
		return named(op, werr)
	}
	e.countReceipts(&n)
	return d.Err
}

// View runs fn as the operation op in one read-only snapshot; errors are
// named as Update names them.
func (e *Core) View(ctx context.Context, op string, fn func(tx warden.ReadTx) error) error {
	return named(op, e.store.View(ctx, fn))
}

// Stream runs fn as the operation op in one read-only snapshot that may
// stay open while a client downloads what fn writes (warden.Store.Stream):
// it never holds what View and Update need. Errors are named as Update
// names them.
func (e *Core) Stream(ctx context.Context, op string, fn func(tx warden.ReadTx) error) error {
	return named(op, e.store.Stream(ctx, fn))
}

// Totals returns the log's size and the incident counters from the
// store's memory (warden.Store.Totals): what /health shows, without a
// table read per call.
func (e *Core) Totals(ctx context.Context, op string) (warden.Totals, error) {
	t, err := e.store.Totals(ctx)
	return t, named(op, err)
}

// named prefixes a non-domain error with the operation that met it, so a
// log line says where a fault happened; domain errors pass unchanged.
func named(op string, err error) error {
	if err == nil || warden.ErrorCode(err) != warden.EINTERNAL {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Denial is a refusal that must be receipted. A rule returns it from inside
// Update's fn; Update rolls the transaction back and writes the denial's
// receipt on its own. A Denial MUST be made by Core.Deny: one built by hand
// has no receipt, and its append fails as an internal error.
type Denial struct {
	// Err is what the caller gets back.
	Err   *warden.Error
	draft warden.Draft
	body  map[string]any // draft.Body
}

// Error is the denial's *warden.Error text.
func (d *Denial) Error() string { return d.Err.Error() }

// Unwrap returns Err, so warden.ErrorCode sees the denial's code.
func (d *Denial) Unwrap() error { return d.Err }

// WithData attaches structured detail for the transports (for example what
// an approval needs) and returns d.
func (d *Denial) WithData(data map[string]any) *Denial {
	if len(data) > 0 {
		d.Err.Data = data
	}
	return d
}

// Deny returns a denial of code with the message, receipted as typ with
// body; the message and code are added to the body as "reason" and "code".
// Receipt bodies are free JSON, so body is a map here; results returned to
// callers are typed.
func (e *Core) Deny(typ string, body map[string]any, code, format string, args ...any) *Denial {
	err := warden.Errorf(code, format, args...)
	if body == nil {
		body = map[string]any{}
	}
	body["reason"] = err.Message
	body["code"] = code
	return &Denial{Err: err, draft: e.Draft(typ, body, "denied"), body: body}
}

// scrollCounts counts one transaction's receipts by scroll, in
// warden.Scrolls order (no map on the hot path).
type scrollCounts [len(warden.Scrolls)]int

// countingTx is the Tx every rule sees: it checks each receipt against the
// catalogue, counts what was appended and notes what was revoked.
type countingTx struct {
	warden.Tx
	n       *scrollCounts
	revoked *[]string
}

func (t *countingTx) RevokeCredential(name string, at time.Time) error {
	err := t.Tx.RevokeCredential(name, at)
	if err == nil {
		*t.revoked = append(*t.revoked, name)
	}
	return err
}

func (t *countingTx) Append(d warden.Draft) (*warden.Receipt, error) {
	if s, ok := warden.ReceiptScroll(d.Type); !ok || s != d.Scroll {
		return nil, fmt.Errorf("receipt type %q in scroll %q is not in the catalogue (warden.ReceiptScroll)", d.Type, d.Scroll)
	}
	r, err := t.Tx.Append(d)
	if err == nil {
		if i := scrollIndex(d.Scroll); i >= 0 {
			t.n[i]++
		}
	}
	return r, err
}

func scrollIndex(s string) int {
	for i, name := range warden.Scrolls {
		if name == s {
			return i
		}
	}
	return -1
}

func (e *Core) countReceipts(n *scrollCounts) {
	if e.metrics == nil {
		return
	}
	for i, k := range n {
		if k > 0 {
			e.metrics.Receipts.WithLabelValues(warden.Scrolls[i]).Add(float64(k))
		}
	}
}
