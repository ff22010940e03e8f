package governor

import (
	"context"
	"fmt"

	warden "github.com/warden-sh/warden"
)

// GuardianStatus is guardian_status's answer: the log's head, every
// scroll's root, and the latest signed checkpoint (absent before the first).
type GuardianStatus struct {
	Status      string                       `json:"status"`
	DrillMode   bool                         `json:"drill_mode"`
	LogSize     uint64                       `json:"log_size"`
	RootHash    []byte                       `json:"root_hash"`
	ScrollRoots map[string]warden.ScrollHead `json:"scroll_roots"`
	Checkpoint  *CheckpointStatus            `json:"checkpoint,omitempty"`
}

// CheckpointStatus describes a signed checkpoint.
type CheckpointStatus struct {
	Size      uint64 `json:"size"`
	RootHash  []byte `json:"root_hash"`
	Note      string `json:"note"`
	CreatedAt string `json:"created_at"`
}

// GuardianStatus reports scroll roots and the latest signed checkpoint.
func (g *Governor) GuardianStatus(ctx context.Context) (*GuardianStatus, error) {
	out := &GuardianStatus{Status: "operational", DrillMode: g.core.Drill(), ScrollRoots: map[string]warden.ScrollHead{}}
	err := g.core.View(ctx, "governor.GuardianStatus", func(tx warden.ReadTx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		for name, s := range head.Scrolls {
			out.ScrollRoots[name] = s
		}
		out.LogSize, out.RootHash = head.Size, head.RootHash
		cp, err := tx.LatestCheckpoint()
		if err == nil {
			out.Checkpoint = &CheckpointStatus{Size: cp.Size, RootHash: cp.RootHash, Note: cp.Note, CreatedAt: warden.FormatTime(cp.CreatedAt)}
		} else if warden.ErrorCode(err) != warden.ENOTFOUND {
			return err
		}
		return nil
	})
	return out, err
}

// AnchorResult is guardian_anchor's answer.
type AnchorResult struct {
	Success        bool     `json:"success"`
	CheckpointSize uint64   `json:"checkpoint_size"`
	RootHash       []byte   `json:"root_hash"`
	Checkpoint     string   `json:"checkpoint"`
	MirrorName     string   `json:"mirror_name"`
	Mirrored       bool     `json:"mirrored"`
	ReceiptHash    string   `json:"receipt_hash"`
	Tags           []string `json:"tags"`
}

// Anchor signs a checkpoint now, receipts the anchoring (tagged DRILL/* in
// drill mode) and exports the checkpoint to the mirror.
func (g *Governor) Anchor(ctx context.Context, p *warden.Principal) (*AnchorResult, error) {
	cp, err := g.core.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if cp == nil {
		return nil, warden.Errorf(warden.ECONFLICT, "The log is empty; nothing to anchor.")
	}
	name := fmt.Sprintf("checkpoint-%012d.note", cp.Size)
	if g.core.Drill() {
		name = "DRILL-" + name
	}
	mirrored := false
	if g.mirror != nil {
		if err := g.mirror.Put(name, []byte(cp.Note)); err != nil {
			return nil, fmt.Errorf("governor.Anchor: mirror: %w", err)
		}
		mirrored = true
	}
	tags := []string{"anchor"}
	if g.core.Drill() {
		tags = append(tags, "DRILL/anchor")
	}
	var r *warden.Receipt
	err = g.core.Update(ctx, "governor.Anchor", func(tx warden.Tx) (err error) {
		r, err = tx.Append(g.core.Draft(warden.ReceiptGuardianAnchor, map[string]any{"checkpoint_size": cp.Size,
			"root_hash": cp.RootHash, "mirror_name": name, "mirrored": mirrored, "principal": p.Name}, tags...))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &AnchorResult{Success: true, CheckpointSize: cp.Size, RootHash: cp.RootHash, Checkpoint: cp.Note,
		MirrorName: name, Mirrored: mirrored, ReceiptHash: r.RootHash, Tags: r.Tags}, nil
}
