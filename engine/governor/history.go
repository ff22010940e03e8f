package governor

import (
	"context"
	"encoding/json"
	"fmt"

	warden "github.com/warden-sh/warden"
)

// HistoryEntry is one escalation history entry (seed 002 plus context and
// tags, so a drill marker in a threat id is findable).
type HistoryEntry struct {
	EscalationID     string                   `json:"escalation_id"`
	EventType        string                   `json:"event_type"`
	FromProfile      warden.Profile           `json:"from_profile"`
	ToProfile        warden.Profile           `json:"to_profile"`
	Subject          string                   `json:"subject"`
	Timestamp        string                   `json:"timestamp"`
	ReceiptHash      string                   `json:"receipt_hash"`
	Seq              uint64                   `json:"seq"`
	Context          warden.EscalationContext `json:"context"`
	DeescalationType *warden.DeescalationType `json:"deescalation_type,omitempty"`
	Tags             []string                 `json:"tags"`
}

// HistoryRequest is get_escalation_history's arguments: only escalations
// touching Profile (any when empty), at most Limit (default 100, at most
// warden.MaxPageSize), older than Before when given (the NextBefore of a
// previous answer).
type HistoryRequest struct {
	Profile string  `json:"profile,omitempty"`
	Limit   int     `json:"limit,omitempty"`
	Before  *uint64 `json:"before,omitempty"`
}

// History is get_escalation_history's answer. Count is the number of
// entries returned; NextBefore is non-null exactly when older entries
// match too: pass it as before to read them. Nothing is left out silently.
type History struct {
	History    []HistoryEntry `json:"history"`
	Count      int            `json:"count"`
	NextBefore *uint64        `json:"next_before"`
}

// historyPage is how many receipts EscalationHistory reads per snapshot;
// each page is a short read, so a long history never holds one open.
const historyPage = warden.MaxPageSize

// EscalationHistory lists escalation and de-escalation receipts, newest
// first, optionally only those touching a profile, paging backwards
// through the identity scroll until it has Limit entries or reaches the
// first receipt, however many receipts that takes. EINVALID for an unknown
// profile or a limit outside 1..warden.MaxPageSize (0 means 100).
func (g *Governor) EscalationHistory(ctx context.Context, req HistoryRequest) (*History, error) {
	profile, limit := req.Profile, req.Limit
	if profile != "" {
		if _, err := warden.ParseProfile(profile); err != nil {
			return nil, err
		}
	}
	switch {
	case limit == 0:
		limit = 100
	case limit < 0 || limit > warden.MaxPageSize:
		return nil, warden.Errorf(warden.EINVALID, "limit must be between 1 and %d; page on with before (the answer's next_before).", warden.MaxPageSize)
	}
	out := &History{History: []HistoryEntry{}}
	before := req.Before
	for {
		var page []*warden.Receipt
		err := g.core.View(ctx, "governor.EscalationHistory", func(tx warden.ReadTx) (err error) {
			page, err = tx.Receipts(warden.ReceiptFilter{Scroll: warden.ScrollIdentity, Tag: "escalation", Before: before,
				Limit: historyPage, Descending: true})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			if r.Type != warden.ReceiptEscalation && r.Type != warden.ReceiptDeescalation {
				continue
			}
			var b escalationBody
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return nil, fmt.Errorf("governor.EscalationHistory: receipt %d: %w", r.Seq, err)
			}
			if profile != "" && string(b.FromProfile) != profile && string(b.ToProfile) != profile {
				continue
			}
			if len(out.History) == limit {
				// One more matches: say where to read on.
				next := out.History[limit-1].Seq
				out.NextBefore = &next
				out.Count = len(out.History)
				return out, nil
			}
			out.History = append(out.History, HistoryEntry{EscalationID: b.EscalationID, EventType: b.EventType, FromProfile: b.FromProfile,
				ToProfile: b.ToProfile, Subject: b.Subject, Timestamp: r.Timestamp, ReceiptHash: r.RootHash, Seq: r.Seq,
				Context: b.Context, DeescalationType: b.DeescalationType, Tags: r.Tags})
		}
		if len(page) < historyPage {
			out.Count = len(out.History)
			return out, nil
		}
		before = &page[len(page)-1].Seq
	}
}

// ActiveEscalation is one active hop as get_active_escalations shows it.
type ActiveEscalation struct {
	EscalationID   string                `json:"escalation_id"`
	Subject        string                `json:"subject"`
	FromProfile    warden.Profile        `json:"from_profile"`
	ToProfile      warden.Profile        `json:"to_profile"`
	EscalationType warden.EscalationType `json:"escalation_type"`
	CreatedAt      string                `json:"created_at"`
	ExpiresAt      *string               `json:"expires_at"`
	Reversible     bool                  `json:"reversible"`
	TemContextHash string                `json:"tem_context_hash"`
}

// ActiveList is get_active_escalations' answer.
type ActiveList struct {
	ActiveCount int                 `json:"active_count"`
	Escalations []*ActiveEscalation `json:"escalations"`
}

// ActiveEscalations lists the active escalations of subject ("*" for all).
func (g *Governor) ActiveEscalations(ctx context.Context, subject string) (*ActiveList, error) {
	if subject == "*" {
		subject = ""
	}
	out := &ActiveList{Escalations: []*ActiveEscalation{}}
	err := g.core.View(ctx, "governor.ActiveEscalations", func(tx warden.ReadTx) error {
		active, err := tx.ActiveEscalations(subject)
		for _, a := range active {
			out.Escalations = append(out.Escalations, &ActiveEscalation{EscalationID: a.EscalationID, Subject: a.Subject,
				FromProfile: a.FromProfile, ToProfile: a.ToProfile, EscalationType: a.EscalationType, CreatedAt: a.CreatedAt,
				ExpiresAt: a.ExpiresAt, Reversible: a.Reversible, TemContextHash: a.TemContextHash})
		}
		return err
	})
	out.ActiveCount = len(out.Escalations)
	return out, err
}
