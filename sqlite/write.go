package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// writeTx is the Tx of one Update: one savepoint of the batch transaction.
// Its reads run on the writer connection and so see its own writes.
type writeTx struct {
	reader
	w  *writer
	st *batchState

	done  bool  // fn has returned; the tx must not be used
	fault error // first storage failure of a write method

	// Write-behind state of this op (writebehind.go): its changes to the
	// incident counters and totals, the batch counters' values before it
	// first moved them, and the incidents it has read or written.
	counts      counterDelta
	stats       map[string]int64
	counterSnap map[string]batchCounter
	incidents   map[string]incidentKey

	// Tree states before this op's first append, restored on rollback.
	treeSnap   *snapshot
	scrollSnap map[string]snapshot
}

var _ warden.Tx = (*writeTx)(nil)

func (t *writeTx) check() error {
	if t.done {
		return warden.Errorf(warden.EINTERNAL, "The transaction has already ended.")
	}
	return nil
}

// failed records a storage failure so the op is rolled back even if fn
// ignores the error, and returns it wrapped with the method name.
func (t *writeTx) failed(method string, err error) error {
	err = fmt.Errorf("sqlite.%s: %w", method, err)
	if t.fault == nil {
		t.fault = err
	}
	return err
}

// save remembers the global and scroll trees before this op changes them.
func (t *writeTx) save(scroll string, s *scrollState) {
	if t.treeSnap == nil {
		sn := snap(t.st.tree)
		t.treeSnap = &sn
	}
	if t.scrollSnap == nil {
		t.scrollSnap = make(map[string]snapshot, 1)
	}
	if _, ok := t.scrollSnap[scroll]; !ok {
		t.scrollSnap[scroll] = snap(s.tree)
	}
}

// undo restores the trees this op changed, after ROLLBACK TO.
func (t *writeTx) undo() {
	t.undoWriteBehind()
	if t.treeSnap != nil {
		t.st.tree = t.treeSnap.restore()
	}
	for name, sn := range t.scrollSnap {
		t.st.scrolls[name].tree = sn.restore()
	}
}

// Head returns the head including this transaction's appends.
func (t *writeTx) Head() (*warden.LogHead, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	h := &warden.LogHead{Size: t.st.tree.Size(), Scrolls: map[string]warden.ScrollHead{}}
	if h.Size > 0 {
		h.RootHash = t.st.tree.Root()
	}
	stored, err := t.scrollHeads()
	if err != nil {
		return nil, fmt.Errorf("sqlite.Head: %w", err)
	}
	for name, s := range t.st.scrolls {
		stored[name] = s.tree
	}
	for name, tree := range stored {
		if tree.Size() > 0 {
			h.Scrolls[name] = warden.ScrollHead{Size: tree.Size(), RootHash: tree.Root()}
		}
	}
	return h, nil
}

// Append seals d at the next seq, stores the receipt and the Merkle nodes
// it completes, and extends its scroll's tree.
func (t *writeTx) Append(d warden.Draft) (*warden.Receipt, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	st := t.st
	seq := st.tree.Size()
	r, leaf, err := ledger.NewReceipt(seq, d)
	if err != nil {
		return nil, err
	}
	sc, err := t.w.scroll(st, r.Scroll)
	if err != nil {
		return nil, t.failed("Append", err)
	}
	tags, err := json.Marshal(r.Tags)
	if err != nil {
		return nil, t.failed("Append", err)
	}
	t.save(r.Scroll, sc)
	if _, err := t.w.q.exec(sqlInsertLeaf, int64(seq), r.SchemaVersion, r.Type, r.Timestamp, r.Scroll,
		string(tags), r.RootHash, string(r.Body), leaf); err != nil {
		return nil, t.failed("Append", err)
	}
	nodes := t.w.nodes[:0]
	err = st.tree.Append(leaf, func(id warden.NodeID, h []byte) {
		nodes = append(nodes, node{level: id.Level, index: id.Index, hash: h})
	})
	t.w.nodes = nodes
	if err != nil {
		return nil, t.failed("Append", err)
	}
	for _, n := range nodes {
		if n.level == 1 {
			continue // recomputed from its two leaves on read (MerkleHashes)
		}
		if _, err := t.w.q.exec(sqlInsertNode, int64(n.level), int64(n.index), n.hash); err != nil {
			return nil, t.failed("Append", err)
		}
	}
	clear(t.w.nodes)
	if err := sc.tree.Append(leaf, nil); err != nil {
		return nil, t.failed("Append", err)
	}
	return r, nil
}

// PutCheckpoint stores c. EINVALID if c is malformed or its size exceeds
// the log; ECONFLICT if a checkpoint of that size exists.
func (t *writeTx) PutCheckpoint(c *warden.Checkpoint) error {
	if err := t.check(); err != nil {
		return err
	}
	switch {
	case c == nil:
		return warden.Errorf(warden.EINVALID, "A checkpoint is required.")
	case len(c.RootHash) != ledger.HashSize:
		return warden.Errorf(warden.EINVALID, "A checkpoint root must be %d bytes, not %d.", ledger.HashSize, len(c.RootHash))
	case c.Note == "":
		return warden.Errorf(warden.EINVALID, "A checkpoint needs its signed note.")
	case c.CreatedAt.IsZero():
		return warden.Errorf(warden.EINVALID, "A checkpoint needs a creation time.")
	case c.Size > t.st.tree.Size():
		return warden.Errorf(warden.EINVALID, "Checkpoint size %d exceeds the log size %d.", c.Size, t.st.tree.Size())
	}
	var one int
	err := t.q.queryRow("SELECT 1 FROM checkpoints WHERE size = ?", int64(c.Size)).Scan(&one)
	if err == nil {
		return warden.Errorf(warden.ECONFLICT, "A checkpoint of size %d already exists.", c.Size)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return t.failed("PutCheckpoint", err)
	}
	if _, err := t.q.exec("INSERT INTO checkpoints ("+checkpointColumns+") VALUES (?, ?, ?, ?)",
		int64(c.Size), c.RootHash, c.Note, warden.FormatTime(c.CreatedAt)); err != nil {
		return t.failed("PutCheckpoint", err)
	}
	return nil
}

// CreateCredential stores c. EINVALID if c does not validate or lacks a
// token hash or creation time; ECONFLICT if its name or token is taken.
func (t *writeTx) CreateCredential(c *warden.Credential) error {
	if err := t.check(); err != nil {
		return err
	}
	if c == nil {
		return warden.Errorf(warden.EINVALID, "A credential is required.")
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if c.TokenHash == "" {
		return warden.Errorf(warden.EINVALID, "A credential needs a token hash.")
	}
	if c.CreatedAt.IsZero() {
		return warden.Errorf(warden.EINVALID, "A credential needs a creation time.")
	}
	var name string
	err := t.q.queryRow("SELECT name FROM credentials WHERE name = ? OR token_hash = ? ORDER BY name = ? DESC LIMIT 1",
		c.Name, c.TokenHash, c.Name).Scan(&name)
	switch {
	case err == nil && name == c.Name:
		return warden.Errorf(warden.ECONFLICT, "Credential %q already exists.", c.Name)
	case err == nil:
		return warden.Errorf(warden.ECONFLICT, "Another credential already uses this token.")
	case !errors.Is(err, sql.ErrNoRows):
		return t.failed("CreateCredential", err)
	}
	roles, err := json.Marshal(c.Roles)
	if err != nil {
		return t.failed("CreateCredential", err)
	}
	classes := []byte("[]")
	if len(c.Classes) > 0 {
		if classes, err = json.Marshal(c.Classes); err != nil {
			return t.failed("CreateCredential", err)
		}
	}
	var revoked any
	if c.RevokedAt != nil {
		revoked = warden.FormatTime(*c.RevokedAt)
	}
	if _, err := t.q.exec("INSERT INTO credentials ("+credentialColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		c.Name, c.TokenHash, string(roles), c.Source, string(classes), warden.FormatTime(c.CreatedAt), revoked, c.Human); err != nil {
		return t.failed("CreateCredential", err)
	}
	return nil
}

// SetCredentialHuman sets the named credential's human attribute.
// ENOTFOUND if unknown.
func (t *writeTx) SetCredentialHuman(name string, human bool) error {
	if err := t.check(); err != nil {
		return err
	}
	res, err := t.q.exec("UPDATE credentials SET human = ? WHERE name = ?", human, name)
	if err != nil {
		return t.failed("SetCredentialHuman", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.failed("SetCredentialHuman", err)
	} else if n == 0 {
		return warden.Errorf(warden.ENOTFOUND, "Credential %q does not exist.", name)
	}
	return nil
}

// RevokeCredential marks the named credential revoked at at. ENOTFOUND if
// unknown, ECONFLICT if already revoked, EINVALID if at is zero.
func (t *writeTx) RevokeCredential(name string, at time.Time) error {
	if err := t.check(); err != nil {
		return err
	}
	if at.IsZero() {
		return warden.Errorf(warden.EINVALID, "A revocation needs a time.")
	}
	res, err := t.q.exec("UPDATE credentials SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", warden.FormatTime(at), name)
	if err != nil {
		return t.failed("RevokeCredential", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.failed("RevokeCredential", err)
	} else if n == 1 {
		return nil
	}
	var one int
	err = t.q.queryRow("SELECT 1 FROM credentials WHERE name = ?", name).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return warden.Errorf(warden.ENOTFOUND, "Credential %q does not exist.", name)
	case err != nil:
		return t.failed("RevokeCredential", err)
	}
	return warden.Errorf(warden.ECONFLICT, "Credential %q is already revoked.", name)
}

// SetMeta stores value under key. EINVALID if key is empty.
func (t *writeTx) SetMeta(key, value string) error {
	if err := t.check(); err != nil {
		return err
	}
	if key == "" {
		return warden.Errorf(warden.EINVALID, "A setting needs a key.")
	}
	if _, err := t.q.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value); err != nil {
		return t.failed("SetMeta", err)
	}
	return nil
}
