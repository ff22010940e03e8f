package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
)

// Projections returns the recorder's projections (see engine.Projection):
// incidents with their counters and the incident number counter, recovery
// requirements, and the integrity baseline.
func (rec *Recorder) Projections() []engine.Projection {
	return []engine.Projection{newIncidentProjection()}
}

// incidentProjection rebuilds incidents from the snapshot every incident
// receipt carries after its transition (the latest one is the row),
// requirements from recovery_required, recovery_acknowledged and
// recovery_reattested, the stats counters by StatsDelta, the "incident"
// counter, and the integrity baseline from integrity_baseline_recorded.
// It keeps a digest of each incident's snapshot, not the snapshot, so its
// memory stays small per incident; a mismatch is explained from the
// receipt that holds the snapshot.
type incidentProjection struct {
	incidents map[string]*projectedIncident
	interned  map[string]string // class, severity and state names, shared
	reqs      map[string]*projectedRequirement
	stats     map[string]int64
	maxNumber uint64
	count     uint64
	baseline  *warden.IntegrityBaseline
	baseSeq   uint64
	keys      map[string]*projectedKey // principal + "\x00" + key
}

type projectedKey struct {
	warden.ReportKey
	createdAt string // the incident's created_at, which the key shares
	seq       uint64
}

type projectedIncident struct {
	stored bool // the store holds it (Compare)
	digest [32]byte
	seq    uint64
	// what StatsDelta reads
	class         string
	severity      warden.Severity
	state         warden.IncidentState
	autoContained bool
}

func (i *projectedIncident) stub() *warden.Incident {
	return &warden.Incident{Class: i.class, Severity: i.severity, State: i.state, AutoContained: i.autoContained}
}

type projectedRequirement struct {
	req *warden.RecoveryRequirement
	seq uint64
}

func newIncidentProjection() *incidentProjection {
	return &incidentProjection{incidents: map[string]*projectedIncident{}, interned: map[string]string{}, reqs: map[string]*projectedRequirement{}, stats: map[string]int64{},
		keys: map[string]*projectedKey{}}
}

// snapshotBody is the part of an incident receipt the replay reads.
type snapshotBody struct {
	Incident   json.RawMessage `json:"incident"`
	IncidentID string          `json:"incident_id"` // notes beside a snapshot
	Detail     json.RawMessage `json:"detail"`
	Principal  string          `json:"principal"`
}

func (p *incidentProjection) Apply(r *warden.Receipt) error {
	switch r.Type {
	case warden.ReceiptIntegrityBaseline:
		b := new(warden.IntegrityBaseline)
		if err := engine.Decode(r, b); err != nil {
			return err
		}
		p.baseline, p.baseSeq = b, r.Seq
		return nil
	case warden.ReceiptIncidentReported, warden.ReceiptContainment, warden.ReceiptIncidentAcknowledged, warden.ReceiptIncidentResolved,
		warden.ReceiptRecoveryAcknowledged, warden.ReceiptRecoveryReattested, warden.ReceiptRecoveryRequired:
	default:
		return nil
	}
	var b snapshotBody
	if err := engine.Decode(r, &b); err != nil {
		return err
	}
	id := b.IncidentID
	if b.Incident != nil {
		var inc struct { // what the replay reads of the snapshot
			ID            string               `json:"id"`
			Number        uint64               `json:"number"`
			Class         string               `json:"class"`
			Severity      warden.Severity      `json:"severity"`
			State         warden.IncidentState `json:"state"`
			AutoContained bool                 `json:"auto_contained"`
			CreatedAt     string               `json:"created_at"`
		}
		if err := json.Unmarshal(b.Incident, &inc); err != nil {
			return engine.ReplayError(r, "incident snapshot: %v", err)
		}
		id = inc.ID
		old, known := p.incidents[id]
		if !known && r.Type != warden.ReceiptIncidentReported {
			return engine.ReplayError(r, "incident %s changes before it was reported", id)
		}
		if known && r.Type == warden.ReceiptIncidentReported {
			return engine.ReplayError(r, "incident %s reported twice", id)
		}
		var oldStub *warden.Incident
		if known {
			oldStub = old.stub()
		}
		now := old
		if !known {
			now = new(projectedIncident)
		}
		*now = projectedIncident{digest: sha256.Sum256(b.Incident), seq: r.Seq, class: p.intern(inc.Class),
			severity: warden.Severity(p.intern(string(inc.Severity))), state: warden.IncidentState(p.intern(string(inc.State))), autoContained: inc.AutoContained}
		for k, v := range warden.StatsDelta(oldStub, now.stub()) {
			p.stats[k] += v
		}
		p.incidents[id] = now
		if !known {
			p.count++
			p.maxNumber = max(p.maxNumber, inc.Number)
			var key struct {
				IdempotencyKey string `json:"idempotency_key"`
				RequestHash    string `json:"request_hash"`
			}
			if b.Detail != nil && json.Unmarshal(b.Detail, &key) == nil && key.IdempotencyKey != "" {
				p.keys[b.Principal+"\x00"+key.IdempotencyKey] = &projectedKey{ReportKey: warden.ReportKey{Principal: b.Principal, Key: key.IdempotencyKey,
					RequestHash: key.RequestHash, IncidentID: inc.ID}, createdAt: inc.CreatedAt, seq: r.Seq}
			}
		}
	}
	// The requirement, where the receipt carries one.
	var req *warden.RecoveryRequirement
	switch r.Type {
	case warden.ReceiptRecoveryRequired, warden.ReceiptRecoveryAcknowledged:
		req = new(warden.RecoveryRequirement)
		if err := json.Unmarshal(b.Detail, req); err != nil {
			return engine.ReplayError(r, "requirement: %v", err)
		}
	case warden.ReceiptRecoveryReattested:
		var d struct {
			Requirement *warden.RecoveryRequirement `json:"requirement"`
		}
		if err := json.Unmarshal(b.Detail, &d); err != nil || d.Requirement == nil {
			return engine.ReplayError(r, "requirement: %v", err)
		}
		req = d.Requirement
	}
	if req != nil {
		if _, ok := p.incidents[req.IncidentID]; !ok || (id != "" && req.IncidentID != id) {
			return engine.ReplayError(r, "requirement of incident %s, which the receipts do not hold", req.IncidentID)
		}
		if _, ok := p.reqs[req.IncidentID]; !ok && r.Type != warden.ReceiptRecoveryRequired {
			return engine.ReplayError(r, "requirement of incident %s changes before it was created", req.IncidentID)
		}
		p.reqs[req.IncidentID] = &projectedRequirement{req: req, seq: r.Seq}
	}
	return nil
}

// intern shares the few distinct class, severity and state names among
// the many incidents the projection holds.
func (p *incidentProjection) intern(s string) string {
	if v, ok := p.interned[s]; ok {
		return v
	}
	p.interned[s] = s
	return s
}

func (p *incidentProjection) Compare(tx warden.ReadTx, report func(engine.Mismatch)) error {
	err := tx.Incidents(warden.IncidentFilter{}, func(s *warden.Incident) error {
		want, ok := p.incidents[s.ID]
		if ok {
			want.stored = true
		}
		if !ok {
			report(engine.Mismatch{Table: "incidents", Key: s.ID, Reason: "no receipt reported this incident"})
			return nil
		}
		c, err := ledger.Canonical(s)
		if err != nil {
			return err
		}
		if sha256.Sum256(c) == want.digest {
			return nil
		}
		report(engine.Mismatch{Table: "incidents", Key: s.ID, Seq: engine.SeqPtr(want.seq), Reason: explainIncident(tx, want.seq, s, c)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range engine.SortedKeys(p.incidents) {
		if !p.incidents[id].stored {
			report(engine.Mismatch{Table: "incidents", Key: id, Seq: engine.SeqPtr(p.incidents[id].seq), Reason: "the receipts hold this incident; the store has no such row"})
		}
	}
	seen := map[string]bool{}
	err = tx.Requirements(false, func(s *warden.RecoveryRequirement) error {
		seen[s.IncidentID] = true
		want, ok := p.reqs[s.IncidentID]
		if !ok {
			report(engine.Mismatch{Table: "recovery_requirements", Key: s.IncidentID, Reason: "no receipt created this requirement"})
		} else if why := engine.DiffRecords(want.req, s); why != "" {
			report(engine.Mismatch{Table: "recovery_requirements", Key: s.IncidentID, Seq: engine.SeqPtr(want.seq), Reason: why})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range engine.SortedKeys(p.reqs) {
		if !seen[id] {
			report(engine.Mismatch{Table: "recovery_requirements", Key: id, Seq: engine.SeqPtr(p.reqs[id].seq), Reason: "the receipts created this requirement; the store has no such row"})
		}
	}
	stats, err := tx.IncidentStats()
	if err != nil {
		return err
	}
	if why := engine.DiffRecords(warden.StatsFromCounters(p.stats), stats); why != "" {
		report(engine.Mismatch{Table: "incident_stats", Key: "counters", Reason: why})
	}
	// The open incidents by class and severity (counters of their own).
	open, err := tx.CountOpenIncidents()
	if err != nil {
		return err
	}
	want := map[string]int64{}
	for k, n := range p.stats {
		if _, _, ok := warden.ParseOpenClassKey(k); ok && n != 0 {
			want[k] = n
		}
	}
	got := map[string]int64{}
	for _, c := range open {
		if c.Open != 0 {
			got[warden.OpenClassKey(c.Class, c.Severity)] = c.Open
		}
	}
	if why := engine.DiffRecords(want, got); why != "" {
		report(engine.Mismatch{Table: "incident_stats", Key: "open by class and severity", Reason: why})
	}
	n, err := tx.Counter("incident")
	if err != nil {
		return err
	}
	if n != p.maxNumber || n != p.count {
		report(engine.Mismatch{Table: "counters", Key: "incident",
			Reason: fmt.Sprintf("%d, the receipts hold %d incidents numbered up to %d", n, p.count, p.maxNumber)})
	}
	// Report keys: every stored one is a keyed report's (keys past their
	// lifetime are forgotten, so the receipts may hold more).
	err = tx.EachReportKey(func(k *warden.ReportKey) error {
		name := k.Principal + "/" + k.Key
		want, ok := p.keys[k.Principal+"\x00"+k.Key]
		switch {
		case !ok:
			report(engine.Mismatch{Table: "report_keys", Key: name, Reason: "no receipted report carries this idempotency key"})
		case want.RequestHash != k.RequestHash || want.IncidentID != k.IncidentID || want.createdAt != warden.FormatTime(k.CreatedAt):
			report(engine.Mismatch{Table: "report_keys", Key: name, Seq: engine.SeqPtr(want.seq),
				Reason: fmt.Sprintf("incident %s, request %s at %s; the receipts say incident %s, request %s at %s",
					k.IncidentID, k.RequestHash, warden.FormatTime(k.CreatedAt), want.IncidentID, want.RequestHash, want.createdAt)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	b, err := tx.IntegrityBaseline()
	switch {
	case warden.ErrorCode(err) == warden.ENOTFOUND:
		if p.baseline != nil {
			report(engine.Mismatch{Table: "integrity_baseline", Key: "baseline", Seq: engine.SeqPtr(p.baseSeq), Reason: "the receipts recorded a baseline; the store has none"})
		}
	case err != nil:
		return err
	case p.baseline == nil:
		report(engine.Mismatch{Table: "integrity_baseline", Key: "baseline", Reason: "no receipt recorded this baseline"})
	default:
		if why := engine.DiffRecords(p.baseline, b); why != "" {
			report(engine.Mismatch{Table: "integrity_baseline", Key: "baseline", Seq: engine.SeqPtr(p.baseSeq), Reason: why})
		}
	}
	return nil
}

// explainIncident names the members of a stored incident that differ from
// the snapshot in receipt seq.
func explainIncident(tx warden.ReadTx, seq uint64, s *warden.Incident, stored []byte) string {
	r, err := tx.Receipt(seq)
	if err != nil {
		return "differs from its latest receipted snapshot"
	}
	var b snapshotBody
	if json.Unmarshal(r.Body, &b) != nil || b.Incident == nil {
		return "differs from its latest receipted snapshot"
	}
	var want warden.Incident
	if json.Unmarshal(b.Incident, &want) != nil || bytes.Equal(b.Incident, stored) {
		return "differs from its latest receipted snapshot"
	}
	return engine.DiffRecords(&want, s)
}
