package warden

import (
	"context"
	"time"
)

// Store is warden's storage. The one backend today is SQLite (package
// sqlite); every backend MUST pass the conformance suite in package
// storetest unchanged.
//
// Guarantees every implementation MUST give:
//   - Update runs fn in ONE transaction: either every state change and every
//     receipt fn made is committed, or none is. If fn returns an error,
//     nothing it did is kept.
//   - Update MUST NOT return nil until the transaction is durable (fsync'd).
//     Concurrent Updates MAY share one commit (group commit) but MUST NOT
//     skip the sync, and one Update's failure MUST NOT undo another's.
//   - Receipts are append-only: the database itself rejects UPDATE and
//     DELETE of receipts, Merkle nodes and checkpoints.
//   - Receipt sequence numbers are dense (0, 1, 2, …) in commit order, and
//     the Merkle tree and every scroll root cover exactly the committed log.
type Store interface {
	// Update runs fn in a read-write transaction. It returns fn's error
	// unchanged, EUNAVAILABLE if storage is full (nothing was kept), or an
	// EINTERNAL error if the commit failed otherwise.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only snapshot. fn SHOULD be short: a read
	// held open while a client downloads its result belongs in Stream.
	View(ctx context.Context, fn func(tx ReadTx) error) error
	// Stream runs fn in a read-only snapshot that may stay open for as long
	// as a client takes to read what fn writes (a forensic bundle, a
	// listing). Stream MUST NOT take what View and Update need: however
	// many Streams are open or waiting, View and Update proceed. A Stream
	// MAY wait for capacity of its own; it then returns ctx's error if ctx
	// ends first.
	Stream(ctx context.Context, fn func(tx ReadTx) error) error
	// Totals returns the log's size and the incident counters without
	// reading a table on every call: a store keeps them in memory, moved
	// on by its own commits. Once an Update has returned, Totals includes
	// its writes; another process's commits on the same data are included
	// at this store's next commit, or within TotalsMaxAge when it makes
	// none (then one read refreshes them, whichever call comes first).
	Totals(ctx context.Context) (Totals, error)
	// Close stops accepting work, waits for pending Updates, and releases
	// the database.
	Close() error
}

// Totals are the numbers /health shows, as of one commit.
type Totals struct {
	Receipts       uint64 // the log's size
	TotalIncidents int64
	OpenIncidents  int64
}

// TotalsMaxAge bounds how long Store.Totals may leave out commits made by
// another process on the same data while this one commits nothing.
const TotalsMaxAge = time.Second

// ReadTx is a consistent read-only view of the store.
type ReadTx interface {
	// Head returns the committed log's size, root and scroll roots.
	Head() (*LogHead, error)
	// Receipt returns the receipt with seq, or ENOTFOUND.
	Receipt(seq uint64) (*Receipt, error)
	// Receipts lists receipts matching f, in seq order (or reverse).
	Receipts(f ReceiptFilter) ([]*Receipt, error)
	// ScanReceipts calls fn for every receipt with seq ≥ from, in seq
	// order, without holding them all in memory. It stops at fn's first error.
	ScanReceipts(from uint64, fn func(*Receipt) error) error
	// MerkleHashes returns the hashes of the given perfect-subtree nodes of
	// the global tree; every node MUST lie inside the committed log.
	MerkleHashes(ids []NodeID) ([][]byte, error)
	// LatestCheckpoint returns the newest checkpoint, or ENOTFOUND.
	LatestCheckpoint() (*Checkpoint, error)
	// Checkpoints calls fn for every checkpoint in size order.
	Checkpoints(fn func(*Checkpoint) error) error
	// CredentialByTokenHash returns the credential whose token hashes to h,
	// revoked or not, or ENOTFOUND.
	CredentialByTokenHash(h string) (*Credential, error)
	// Credential returns the credential named name, or ENOTFOUND.
	Credential(name string) (*Credential, error)
	// Credentials lists every credential by name.
	Credentials() ([]*Credential, error)
	// Meta returns the value stored under key, or ENOTFOUND.
	Meta(key string) (string, error)
	// CheckColumns reports every row whose columns kept beside its record
	// (for indexes and lookups: an escalation's subject and activity, an
	// incident's state, a requirement's completeness, the keys approvals
	// and operations are found by) disagree with the record. The rules act
	// on those columns and the state replay compares the records, so a
	// store that keeps such columns MUST report every disagreement; one
	// that keeps none reports nothing.
	CheckColumns(report func(table, key, reason string)) error

	IncidentReader
	GovernanceReader
}

// Tx is a read-write transaction.
type Tx interface {
	ReadTx
	// Append adds a receipt to the log and returns it with its Seq,
	// RootHash and LeafHash set. EINVALID if the draft is malformed.
	Append(d Draft) (*Receipt, error)
	// PutCheckpoint stores a signed checkpoint. ECONFLICT if one with the
	// same size exists; EINVALID if its size exceeds the log.
	PutCheckpoint(c *Checkpoint) error
	// CreateCredential stores c. ECONFLICT if the name is taken.
	CreateCredential(c *Credential) error
	// RevokeCredential marks the named credential revoked at time at.
	// ENOTFOUND if unknown, ECONFLICT if already revoked.
	RevokeCredential(name string, at time.Time) error
	// SetCredentialHuman sets the named credential's human attribute.
	// ENOTFOUND if unknown.
	SetCredentialHuman(name string, human bool) error
	// SetMeta stores value under key.
	SetMeta(key, value string) error

	IncidentWriter
	GovernanceWriter
}

// NodeID names a node of the global Merkle tree: Level 0 are leaves, Index
// counts from 0 within a level (the RFC 6962 / compact-range addressing).
type NodeID struct {
	Level uint
	Index uint64
}

// LogHead is the state of the committed log.
type LogHead struct {
	Size     uint64
	RootHash []byte // nil when Size is 0
	// Scrolls maps each scroll with at least one receipt to its head.
	Scrolls map[string]ScrollHead
}

// ScrollHead is the size and Merkle root of one scroll's receipts.
type ScrollHead struct {
	Size     uint64 `json:"size"`
	RootHash []byte `json:"root_hash"`
}

// Ledger check states (LedgerCheck.State).
const (
	LedgerUnchecked = "unchecked" // no check ran (offline tools)
	LedgerVerifying = "verifying" // the startup check is running
	LedgerVerified  = "verified"  // the log and the state tables hold
	LedgerTampered  = "tampered"  // the check failed: writes are refused
	LedgerAccepted  = "accepted"  // it failed, and an operator accepted it (receipted)
)

// LedgerCheck is what a server knows of its own log and state tables: the
// startup verification's progress and outcome.
type LedgerCheck struct {
	State   string `json:"state"`
	Checked uint64 `json:"checked"` // receipts checked so far
	Total   uint64 `json:"total"`   // receipts to check
	// FirstBadSeq names the first bad receipt, when the failure has one.
	FirstBadSeq *uint64 `json:"first_bad_seq,omitempty"`
	// Reason says what failed (or what was accepted).
	Reason string `json:"reason,omitempty"`
	// Failure names the failure for an operator to accept it: the first
	// bad sequence number, or "state-" and a digest of the state
	// mismatches found, so accepting one never accepts another.
	Failure string `json:"failure,omitempty"`
}

// Refuses reports whether writes are refused in this state.
func (c LedgerCheck) Refuses() bool { return c.State == LedgerTampered }
