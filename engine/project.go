package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// The receipts are the source of truth; every state table is a projection
// of them. A Projection rebuilds some tables by folding the receipts in seq
// order, then compares what it built with the store's rows: a row the
// receipts cannot explain, a row missing, or a row that differs is
// tampering. Each domain owns the projections of the tables its rules
// write (the core: credentials; the recorder: incidents, requirements,
// counters, the baseline; the governor: escalations, budgets, treasury
// operations, approvals, approver keys), next to the rules that write the
// receipts, so a change to a receipt and to its replay are one change.
//
// Receipts written before a field was added to them lack it; a projection
// then compares only what its receipts say (documented per table).

// Projection rebuilds state tables from receipts and checks the store's.
type Projection interface {
	// Apply folds one receipt, in seq order, into the projection; it
	// ignores types it does not own. An error means the receipts
	// themselves do not make sense (a debit of a budget never created),
	// which is tampering too; it names the receipt.
	Apply(r *warden.Receipt) error
	// Compare checks the store's rows, in a snapshot holding exactly the
	// receipts applied, against the projection, reporting every
	// disagreement in a fixed order (table, then key).
	Compare(tx warden.ReadTx, report func(Mismatch)) error
}

// Mismatch is one state row that disagrees with the receipts.
type Mismatch struct {
	Table string `json:"table"`
	Key   string `json:"key"`
	// Seq is the receipt that last set the row, when there is one.
	Seq *uint64 `json:"seq,omitempty"`
	// Reason says how the row and the receipts disagree.
	Reason string `json:"reason"`
}

// String is the mismatch as a sentence naming the table, the row and why.
func (m Mismatch) String() string {
	s := fmt.Sprintf("%s %q: %s", m.Table, m.Key, m.Reason)
	if m.Seq != nil {
		s += fmt.Sprintf(" (last set by receipt %d)", *m.Seq)
	}
	return s
}

// StateError reports state rows the receipts cannot explain: tampering.
// Mismatches holds the first MaxMismatches, in the projections' order.
type StateError struct {
	Mismatches []Mismatch `json:"mismatches"`
	// More counts the mismatches not listed.
	More int `json:"more"`
}

// MaxMismatches bounds StateError.Mismatches.
const MaxMismatches = 50

// Error names the first mismatch and counts the rest.
func (e *StateError) Error() string {
	s := "state does not match the receipts: " + e.Mismatches[0].String()
	if n := len(e.Mismatches) - 1 + e.More; n > 0 {
		s += fmt.Sprintf(" (and %d more)", n)
	}
	return s
}

// ReceiptError is a receipt that makes no sense given those before it.
type ReceiptError struct {
	Seq    uint64
	Type   string
	Reason string
}

// Error names the receipt and why it cannot be replayed.
func (e *ReceiptError) Error() string {
	return fmt.Sprintf("receipt %d (%s) cannot be replayed: %s", e.Seq, e.Type, e.Reason)
}

// ReplayError returns a *ReceiptError for r.
func ReplayError(r *warden.Receipt, format string, args ...any) error {
	return &ReceiptError{Seq: r.Seq, Type: r.Type, Reason: fmt.Sprintf(format, args...)}
}

// Decode decodes a receipt body for a projection.
func Decode(r *warden.Receipt, v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return ReplayError(r, "body: %v", err)
	}
	return nil
}

// SeqPtr returns a pointer to seq, for Mismatch.Seq.
func SeqPtr(seq uint64) *uint64 { return &seq }

// Projections returns the core's projections (credentials).
func (e *Core) Projections() []Projection { return []Projection{newCredentialProjection()} }

// credentialProjection rebuilds the credentials table from
// credential_added, credential_human_set, credential_revoked and
// phoenix_revoke_credentials.
// Receipts written before they carried token_hash, created_at and
// revoked_at are compared on the token hash's prefix and on whether the
// credential is revoked.
type credentialProjection struct {
	creds map[string]*projectedCredential
}

type projectedCredential struct {
	warden.Credential
	tokenPrefix string // legacy receipts: only the prefix is known
	createdSet  bool
	revokedSet  bool // revoked, with the time known
	revoked     bool
	seq         uint64
}

func newCredentialProjection() *credentialProjection {
	return &credentialProjection{creds: map[string]*projectedCredential{}}
}

func (p *credentialProjection) Apply(r *warden.Receipt) error {
	switch r.Type {
	case warden.ReceiptCredential:
		var b credentialBody
		if err := Decode(r, &b); err != nil {
			return err
		}
		if _, ok := p.creds[b.Name]; ok {
			return ReplayError(r, "credential %q was already created", b.Name)
		}
		c := &projectedCredential{Credential: warden.Credential{Name: b.Name, Roles: b.Roles, Source: b.Source, Classes: b.Classes,
			TokenHash: b.TokenHash, Human: b.Human}, tokenPrefix: b.TokenHashPrefix, seq: r.Seq}
		if b.CreatedAt != "" {
			t, err := time.Parse(warden.TimeFormat, b.CreatedAt)
			if err != nil {
				return ReplayError(r, "created_at: %v", err)
			}
			c.CreatedAt, c.createdSet = t, true
		}
		p.creds[b.Name] = c
	case warden.ReceiptCredentialHuman:
		var b credentialHumanBody
		if err := Decode(r, &b); err != nil {
			return err
		}
		c, ok := p.creds[b.Name]
		if !ok {
			return ReplayError(r, "credential %q marked but never created", b.Name)
		}
		c.Human, c.seq = b.Human, r.Seq
	case warden.ReceiptRevocation:
		var b struct {
			Name      string `json:"name"`
			RevokedAt string `json:"revoked_at"`
		}
		if err := Decode(r, &b); err != nil {
			return err
		}
		return p.revoke(r, b.Name, b.RevokedAt)
	case warden.ReceiptPhoenixRevoke:
		var b struct {
			Credentials []string `json:"credentials"`
			DryRun      bool     `json:"dry_run"`
			RevokedAt   string   `json:"revoked_at"`
		}
		if err := Decode(r, &b); err != nil {
			return err
		}
		if b.DryRun {
			return nil
		}
		for _, name := range b.Credentials {
			if err := p.revoke(r, name, b.RevokedAt); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *credentialProjection) revoke(r *warden.Receipt, name, at string) error {
	c, ok := p.creds[name]
	if !ok {
		return ReplayError(r, "credential %q revoked but never created", name)
	}
	if c.revoked {
		return ReplayError(r, "credential %q revoked twice", name)
	}
	c.revoked, c.seq = true, r.Seq
	if at != "" {
		t, err := time.Parse(warden.TimeFormat, at)
		if err != nil {
			return ReplayError(r, "revoked_at: %v", err)
		}
		c.RevokedAt, c.revokedSet = &t, true
	}
	return nil
}

func (p *credentialProjection) Compare(tx warden.ReadTx, report func(Mismatch)) error {
	stored, err := tx.Credentials()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range stored {
		seen[s.Name] = true
		want, ok := p.creds[s.Name]
		if !ok {
			report(Mismatch{Table: "credentials", Key: s.Name, Reason: "no receipt created this credential"})
			continue
		}
		if why := want.differs(s); why != "" {
			report(Mismatch{Table: "credentials", Key: s.Name, Seq: SeqPtr(want.seq), Reason: why})
		}
	}
	for _, name := range SortedKeys(p.creds) {
		if !seen[name] {
			report(Mismatch{Table: "credentials", Key: name, Seq: SeqPtr(p.creds[name].seq), Reason: "the receipts created this credential; the store has no such row"})
		}
	}
	return nil
}

// differs says how the stored credential s differs from the projected one.
func (c *projectedCredential) differs(s *warden.Credential) string {
	var why []string
	if !slices.Equal(c.Roles, s.Roles) {
		why = append(why, fmt.Sprintf("roles %v, the receipts say %v", s.Roles, c.Roles))
	}
	if c.Human != s.Human {
		why = append(why, fmt.Sprintf("human %t, the receipts say %t", s.Human, c.Human))
	}
	if c.Source != s.Source {
		why = append(why, fmt.Sprintf("source %q, the receipts say %q", s.Source, c.Source))
	}
	if !slices.Equal(c.Classes, s.Classes) && !(len(c.Classes) == 0 && len(s.Classes) == 0) {
		why = append(why, fmt.Sprintf("classes %v, the receipts say %v", s.Classes, c.Classes))
	}
	switch {
	case c.TokenHash != "" && c.TokenHash != s.TokenHash:
		why = append(why, "token hash differs from the receipted one")
	case c.TokenHash == "" && c.tokenPrefix != "" && !strings.HasPrefix(s.TokenHash, c.tokenPrefix):
		why = append(why, "token hash differs from the receipted prefix")
	}
	if c.createdSet && !c.CreatedAt.Equal(s.CreatedAt) {
		why = append(why, fmt.Sprintf("created_at %s, the receipts say %s", warden.FormatTime(s.CreatedAt), warden.FormatTime(c.CreatedAt)))
	}
	switch {
	case c.revoked != (s.RevokedAt != nil):
		if c.revoked {
			why = append(why, "not revoked, the receipts revoked it")
		} else {
			why = append(why, "revoked, no receipt revoked it")
		}
	case c.revokedSet && !c.RevokedAt.Equal(*s.RevokedAt):
		why = append(why, fmt.Sprintf("revoked_at %s, the receipts say %s", warden.FormatTime(*s.RevokedAt), warden.FormatTime(*c.RevokedAt)))
	}
	return strings.Join(why, "; ")
}

// SortedKeys returns m's keys in order, for the projections' fixed order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DiffRecords compares two records by their canonical JSON and names the
// members that differ ("" when equal), for a Mismatch's reason.
func DiffRecords(want, got any) string {
	w, err1 := ledger.Canonical(want)
	g, err2 := ledger.Canonical(got)
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("cannot be compared (%v %v)", err1, err2)
	}
	if bytes.Equal(w, g) {
		return ""
	}
	var wm, gm map[string]json.RawMessage
	if json.Unmarshal(w, &wm) != nil || json.Unmarshal(g, &gm) != nil {
		return "differs from what the receipts say"
	}
	var names []string
	for k, v := range wm {
		if !bytes.Equal(v, gm[k]) {
			names = append(names, fmt.Sprintf("%s %s, the receipts say %s", k, orNone(gm[k]), v))
		}
	}
	for k, v := range gm {
		if _, ok := wm[k]; !ok {
			names = append(names, fmt.Sprintf("%s %s, the receipts have none", k, v))
		}
	}
	sort.Strings(names)
	return fmt.Sprint(names)
}

func orNone(v json.RawMessage) string {
	if v == nil {
		return "absent"
	}
	return string(v)
}
