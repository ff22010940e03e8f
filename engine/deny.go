package engine

import (
	"context"
	"errors"

	warden "github.com/warden-sh/warden"
)

// denial is a refusal that must be receipted. A rule returns it from inside
// a transaction; update rolls that transaction back (nothing the rule did
// is kept) and writes the denial receipt in a transaction of its own, so a
// denial never changes state and is never lost.
type denial struct {
	err   *warden.Error
	draft warden.Draft
}

func (d *denial) Error() string { return d.err.Error() }
func (d *denial) Unwrap() error { return d.err }

// deny returns a denial of code with the message, receipted as typ in scroll
// with body (the message and code are added to it as "reason" and "code").
func (e *Engine) deny(typ, scroll string, body map[string]any, code, format string, args ...any) error {
	err := warden.Errorf(code, format, args...)
	if body == nil {
		body = map[string]any{}
	}
	body["reason"] = err.Message
	body["code"] = code
	return &denial{err: err, draft: e.draft(typ, scroll, body, "denied")}
}

// update runs fn in one store transaction. A *denial from fn rolls fn back
// and is receipted on its own; the caller gets the denial's *warden.Error.
func (e *Engine) update(ctx context.Context, fn func(tx warden.Tx) error) error {
	err := e.store.Update(ctx, fn)
	var d *denial
	if !errors.As(err, &d) {
		return err
	}
	if werr := e.store.Update(context.WithoutCancel(ctx), func(tx warden.Tx) error {
		_, err := tx.Append(d.draft)
		return err
	}); werr != nil {
		return werr
	}
	e.countReceipt(d.draft.Scroll)
	return d.err
}
