package governor

import (
	"context"
	"encoding/json"

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
// touching Profile (any when empty), at most Limit (default 100).
type HistoryRequest struct {
	Profile string `json:"profile,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

// History is get_escalation_history's answer.
type History struct {
	History []HistoryEntry `json:"history"`
	Count   int            `json:"count"`
}

// EscalationHistory lists escalation and de-escalation receipts, newest
// first, optionally only those touching profile. It looks at the newest
// MaxPageSize receipts tagged "escalation" (the store pages forward only).
func (g *Governor) EscalationHistory(ctx context.Context, req HistoryRequest) (*History, error) {
	profile, limit := req.Profile, req.Limit
	if profile != "" {
		if _, err := warden.ParseProfile(profile); err != nil {
			return nil, err
		}
	}
	if limit <= 0 || limit > warden.MaxPageSize {
		limit = 100
	}
	history := []HistoryEntry{}
	err := g.core.View(ctx, "governor.EscalationHistory", func(tx warden.ReadTx) error {
		f := warden.ReceiptFilter{Scroll: warden.ScrollIdentity, Tag: "escalation", Limit: warden.MaxPageSize, Descending: true}
		page, err := tx.Receipts(f)
		if err != nil {
			return err
		}
		for _, r := range page {
			if r.Type != warden.ReceiptEscalation && r.Type != warden.ReceiptDeescalation {
				continue
			}
			var b escalationBody
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return err
			}
			if profile != "" && string(b.FromProfile) != profile && string(b.ToProfile) != profile {
				continue
			}
			history = append(history, HistoryEntry{EscalationID: b.EscalationID, EventType: b.EventType, FromProfile: b.FromProfile,
				ToProfile: b.ToProfile, Subject: b.Subject, Timestamp: r.Timestamp, ReceiptHash: r.RootHash, Seq: r.Seq,
				Context: b.Context, DeescalationType: b.DeescalationType, Tags: r.Tags})
			if len(history) == limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &History{History: history, Count: len(history)}, nil
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
