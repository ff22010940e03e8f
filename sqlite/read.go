package sqlite

import (
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// scanPage is how many rows ScanReceipts and Checkpoints read per query:
// memory stays bounded and no statement stays open while fn runs.
const scanPage = 1000

// reader implements every ReadTx method except Head over a querier; the
// View and Update transactions embed it.
type reader struct {
	q querier
}

// viewTx is the ReadTx of View.
type viewTx struct {
	reader
}

// Head returns the committed head as stored by the writer.
func (v *viewTx) Head() (*warden.LogHead, error) {
	var size uint64
	var state []byte
	if err := v.q.queryRow("SELECT size, state FROM ledger_head WHERE id = 1").Scan(&size, &state); err != nil {
		return nil, fmt.Errorf("sqlite.Head: %w", err)
	}
	tree, err := ledger.TreeFromState(size, state)
	if err != nil {
		return nil, fmt.Errorf("sqlite.Head: %w", err)
	}
	h := &warden.LogHead{Size: size, Scrolls: map[string]warden.ScrollHead{}}
	if size > 0 {
		h.RootHash = tree.Root()
	}
	heads, err := v.scrollHeads()
	if err != nil {
		return nil, fmt.Errorf("sqlite.Head: %w", err)
	}
	for name, t := range heads {
		if t.Size() > 0 {
			h.Scrolls[name] = warden.ScrollHead{Size: t.Size(), RootHash: t.Root()}
		}
	}
	return h, nil
}

// scrollHeads loads every stored scroll tree.
func (r *reader) scrollHeads() (map[string]*ledger.Tree, error) {
	rows, err := r.q.query("SELECT scroll, size, state FROM scroll_heads")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*ledger.Tree{}
	for rows.Next() {
		var name string
		var size uint64
		var state []byte
		if err := rows.Scan(&name, &size, &state); err != nil {
			return nil, err
		}
		t, err := ledger.TreeFromState(size, state)
		if err != nil {
			return nil, fmt.Errorf("scroll %s: %w", name, err)
		}
		out[name] = t
	}
	return out, rows.Err()
}

const receiptColumns = "seq, schema_version, type, timestamp, scroll, tags, root_hash, body, leaf_hash"

func scanReceipt(rows *sql.Rows) (*warden.Receipt, error) {
	var r warden.Receipt
	var tags string
	var body, leaf []byte
	if err := rows.Scan(&r.Seq, &r.SchemaVersion, &r.Type, &r.Timestamp, &r.Scroll, &tags, &r.RootHash, &body, &leaf); err != nil {
		return nil, err
	}
	var ok bool
	if r.Tags, ok = fastTags(tags); !ok {
		if err := json.Unmarshal([]byte(tags), &r.Tags); err != nil {
			return nil, fmt.Errorf("receipt %d tags: %w", r.Seq, err)
		}
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	r.Body = body
	r.LeafHash = hex.EncodeToString(leaf)
	return &r, nil
}

// Receipt returns the receipt with seq, or ENOTFOUND.
func (r *reader) Receipt(seq uint64) (*warden.Receipt, error) {
	if seq > math.MaxInt64 {
		return nil, warden.Errorf(warden.ENOTFOUND, "Receipt %d does not exist.", seq)
	}
	rows, err := r.q.query("SELECT "+receiptColumns+" FROM receipts WHERE seq = ?", int64(seq))
	if err != nil {
		return nil, fmt.Errorf("sqlite.Receipt: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlite.Receipt: %w", err)
		}
		return nil, warden.Errorf(warden.ENOTFOUND, "Receipt %d does not exist.", seq)
	}
	rec, err := scanReceipt(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite.Receipt: %w", err)
	}
	return rec, rows.Close()
}

// Receipts lists receipts matching f. EINVALID if f.Limit is negative.
func (r *reader) Receipts(f warden.ReceiptFilter) ([]*warden.Receipt, error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, warden.Errorf(warden.EINVALID, "A receipt page limit must not be negative.")
	case limit == 0:
		limit = warden.DefaultPageSize
	case limit > warden.MaxPageSize:
		limit = warden.MaxPageSize
	}
	where, args := receiptWhere(f)
	if f.After != nil {
		if *f.After >= math.MaxInt64 {
			return []*warden.Receipt{}, nil
		}
		where = append(where, "seq > ?")
		args = append(args, int64(*f.After))
	}
	if f.Before != nil && *f.Before <= math.MaxInt64 { // beyond: every seq is below it
		if *f.Before == 0 {
			return []*warden.Receipt{}, nil
		}
		where = append(where, "seq < ?")
		args = append(args, int64(*f.Before))
	}
	var q strings.Builder
	q.WriteString("SELECT " + receiptColumns + " FROM receipts")
	if len(where) > 0 {
		q.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	if f.Descending {
		q.WriteString(" ORDER BY seq DESC")
	} else {
		q.WriteString(" ORDER BY seq ASC")
	}
	q.WriteString(" LIMIT ?")
	args = append(args, limit)
	out, err := r.receipts(q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite.Receipts: %w", err)
	}
	return out, nil
}

// receiptWhere returns the conditions and arguments of f's Scroll, Type
// and Tag.
func receiptWhere(f warden.ReceiptFilter) ([]string, []any) {
	var where []string
	var args []any
	if f.Scroll != "" {
		where = append(where, "scroll = ?")
		args = append(args, f.Scroll)
	}
	if f.Type != "" {
		where = append(where, "type = ?")
		args = append(args, f.Type)
	}
	if f.Tag != "" {
		where = append(where, "EXISTS (SELECT 1 FROM json_each(receipts.tags) WHERE json_each.value = ?)")
		args = append(args, f.Tag)
	}
	return where, args
}

// CountReceipts counts the receipts matching f's Scroll, Type and Tag.
func (r *reader) CountReceipts(f warden.ReceiptFilter) (uint64, error) {
	where, args := receiptWhere(f)
	q := "SELECT count(*) FROM receipts"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	var n int64
	if err := r.q.queryRow(q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite.CountReceipts: %w", err)
	}
	return uint64(n), nil
}

func (r *reader) receipts(q string, args ...any) ([]*warden.Receipt, error) {
	rows, err := r.q.query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*warden.Receipt{}
	for rows.Next() {
		rec, err := scanReceipt(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// ScanReceipts calls fn for every receipt with seq ≥ from in seq order,
// reading scanPage rows at a time.
func (r *reader) ScanReceipts(from uint64, fn func(*warden.Receipt) error) error {
	for from <= math.MaxInt64 {
		page, err := r.receipts("SELECT "+receiptColumns+" FROM receipts WHERE seq >= ? ORDER BY seq LIMIT ?", int64(from), scanPage)
		if err != nil {
			return fmt.Errorf("sqlite.ScanReceipts: %w", err)
		}
		for _, rec := range page {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		from = page[len(page)-1].Seq + 1
	}
	return nil
}

// merkleQuery fetches nodes named by a JSON array of keys level<<56 | index,
// one row per key in order (hash NULL when missing): one statement, one
// primary-key lookup per node.
const merkleQuery = `SELECT j.key,
	CASE WHEN j.value >> 56 = 0
		THEN (SELECT leaf_hash FROM receipts WHERE seq = j.value)
		ELSE (SELECT hash FROM merkle_nodes WHERE level = j.value >> 56 AND idx = j.value & 72057594037927935)
	END
FROM json_each(?) AS j`

// MerkleHashes returns the hashes of the given nodes of the global tree.
// ENOTFOUND if any of them is not in the log.
func (r *reader) MerkleHashes(ids []warden.NodeID) ([][]byte, error) {
	// Level-1 nodes are not stored (they would cost an insert per two
	// receipts on the hot path): they are the hash of their two leaves.
	expanded := make([]warden.NodeID, 0, len(ids)+4)
	for _, id := range ids {
		if id.Level == 1 {
			expanded = append(expanded, warden.NodeID{Level: 0, Index: 2 * id.Index}, warden.NodeID{Level: 0, Index: 2*id.Index + 1})
		} else {
			expanded = append(expanded, id)
		}
	}
	if len(expanded) == len(ids) {
		return r.storedHashes(ids)
	}
	hs, err := r.storedHashes(expanded)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ids))
	j := 0
	for i, id := range ids {
		if id.Level == 1 {
			out[i] = ledger.HashChildren(hs[j], hs[j+1])
			j += 2
		} else {
			out[i] = hs[j]
			j++
		}
	}
	return out, nil
}

// storedHashes fetches leaf and stored interior node hashes in one query.
func (r *reader) storedHashes(ids []warden.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	b := make([]byte, 0, 2+len(ids)*20)
	b = append(b, '[')
	for i, id := range ids {
		// Levels above 63 and indexes from 2^53 on cannot be in a log of
		// at most 2^53 leaves.
		if id.Level > 63 || id.Index > ledger.MaxSeq {
			return nil, warden.Errorf(warden.ENOTFOUND, "Merkle node at level %d index %d is not in the log.", id.Level, id.Index)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(id.Level)<<56|id.Index, 10)
	}
	b = append(b, ']')
	rows, err := r.q.query(merkleQuery, string(b))
	if err != nil {
		return nil, fmt.Errorf("sqlite.MerkleHashes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		var h []byte
		if err := rows.Scan(&i, &h); err != nil {
			return nil, fmt.Errorf("sqlite.MerkleHashes: %w", err)
		}
		if i < 0 || i >= len(out) {
			return nil, fmt.Errorf("sqlite.MerkleHashes: row %d out of range", i)
		}
		out[i] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.MerkleHashes: %w", err)
	}
	for i, h := range out {
		if len(h) != ledger.HashSize {
			return nil, warden.Errorf(warden.ENOTFOUND, "Merkle node at level %d index %d is not in the log.", ids[i].Level, ids[i].Index)
		}
	}
	return out, nil
}

const checkpointColumns = "size, root, note, created_at"

func scanCheckpoint(rows *sql.Rows) (*warden.Checkpoint, error) {
	var c warden.Checkpoint
	var created string
	if err := rows.Scan(&c.Size, &c.RootHash, &c.Note, &created); err != nil {
		return nil, err
	}
	t, err := parseTime(created)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d created_at: %w", c.Size, err)
	}
	c.CreatedAt = t
	return &c, nil
}

func (r *reader) checkpoints(q string, args ...any) ([]*warden.Checkpoint, error) {
	rows, err := r.q.query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*warden.Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// LatestCheckpoint returns the checkpoint of the largest size, or ENOTFOUND.
func (r *reader) LatestCheckpoint() (*warden.Checkpoint, error) {
	cs, err := r.checkpoints("SELECT " + checkpointColumns + " FROM checkpoints ORDER BY size DESC LIMIT 1")
	if err != nil {
		return nil, fmt.Errorf("sqlite.LatestCheckpoint: %w", err)
	}
	if len(cs) == 0 {
		return nil, warden.Errorf(warden.ENOTFOUND, "No checkpoint has been written yet.")
	}
	return cs[0], nil
}

// Checkpoints calls fn for every checkpoint in size order.
func (r *reader) Checkpoints(fn func(*warden.Checkpoint) error) error {
	next := int64(0)
	for {
		page, err := r.checkpoints("SELECT "+checkpointColumns+" FROM checkpoints WHERE size >= ? ORDER BY size LIMIT ?", next, scanPage)
		if err != nil {
			return fmt.Errorf("sqlite.Checkpoints: %w", err)
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		next = int64(page[len(page)-1].Size) + 1
	}
}

const credentialColumns = "name, token_hash, roles, source, classes, created_at, revoked_at, human"

func scanCredential(rows *sql.Rows) (*warden.Credential, error) {
	var c warden.Credential
	var roles, classes, created string
	var revoked sql.NullString
	if err := rows.Scan(&c.Name, &c.TokenHash, &roles, &c.Source, &classes, &created, &revoked, &c.Human); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(roles), &c.Roles); err != nil {
		return nil, fmt.Errorf("credential %s roles: %w", c.Name, err)
	}
	if err := json.Unmarshal([]byte(classes), &c.Classes); err != nil {
		return nil, fmt.Errorf("credential %s classes: %w", c.Name, err)
	}
	if len(c.Classes) == 0 {
		c.Classes = nil
	}
	var err error
	if c.CreatedAt, err = parseTime(created); err != nil {
		return nil, fmt.Errorf("credential %s created_at: %w", c.Name, err)
	}
	if revoked.Valid {
		t, err := parseTime(revoked.String)
		if err != nil {
			return nil, fmt.Errorf("credential %s revoked_at: %w", c.Name, err)
		}
		c.RevokedAt = &t
	}
	return &c, nil
}

func (r *reader) credentials(q string, args ...any) ([]*warden.Credential, error) {
	rows, err := r.q.query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*warden.Credential{}
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CredentialByTokenHash returns the credential whose token hashes to h.
func (r *reader) CredentialByTokenHash(h string) (*warden.Credential, error) {
	cs, err := r.credentials("SELECT "+credentialColumns+" FROM credentials WHERE token_hash = ?", h)
	if err != nil {
		return nil, fmt.Errorf("sqlite.CredentialByTokenHash: %w", err)
	}
	if len(cs) == 0 {
		return nil, warden.Errorf(warden.ENOTFOUND, "No credential has this token.")
	}
	return cs[0], nil
}

// Credential returns the credential named name.
func (r *reader) Credential(name string) (*warden.Credential, error) {
	cs, err := r.credentials("SELECT "+credentialColumns+" FROM credentials WHERE name = ?", name)
	if err != nil {
		return nil, fmt.Errorf("sqlite.Credential: %w", err)
	}
	if len(cs) == 0 {
		return nil, warden.Errorf(warden.ENOTFOUND, "Credential %q does not exist.", name)
	}
	return cs[0], nil
}

// Credentials lists every credential by name.
func (r *reader) Credentials() ([]*warden.Credential, error) {
	cs, err := r.credentials("SELECT " + credentialColumns + " FROM credentials ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("sqlite.Credentials: %w", err)
	}
	return cs, nil
}

// CredentialsAfter lists a page of credentials by name.
func (r *reader) CredentialsAfter(after string, limit int) ([]*warden.Credential, error) {
	cs, err := r.credentials("SELECT "+credentialColumns+" FROM credentials WHERE name > ? ORDER BY name LIMIT ?", after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite.CredentialsAfter: %w", err)
	}
	return cs, nil
}

// CountCredentials counts the credentials.
func (r *reader) CountCredentials() (int64, error) {
	var n int64
	if err := r.q.queryRow("SELECT count(*) FROM credentials").Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite.CountCredentials: %w", err)
	}
	return n, nil
}

// Meta returns the value stored under key.
func (r *reader) Meta(key string) (string, error) {
	var v string
	err := r.q.queryRow("SELECT value FROM meta WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", warden.Errorf(warden.ENOTFOUND, "No setting is stored under %q.", key)
	} else if err != nil {
		return "", fmt.Errorf("sqlite.Meta: %w", err)
	}
	return v, nil
}

// parseTime parses a stored timestamp (warden.TimeFormat, UTC).
func parseTime(s string) (time.Time, error) {
	return time.Parse(warden.TimeFormat, s)
}

// fastTags decodes a tags column without escapes (the common case:
// ["a","b"]) without encoding/json, which dominates a full-log scan. It
// reports false for anything else, which the caller decodes in full.
func fastTags(s string) ([]string, bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' || strings.IndexByte(s, '\\') >= 0 {
		return nil, false
	}
	inner := s[1 : len(s)-1]
	if inner == "" {
		return []string{}, true
	}
	out := make([]string, 0, 4)
	for inner != "" {
		if inner[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(inner[1:], '"')
		if end < 0 {
			return nil, false
		}
		out = append(out, inner[1:1+end])
		inner = inner[2+end:]
		if inner == "" {
			break
		}
		if inner[0] != ',' {
			return nil, false
		}
		inner = inner[1:]
		if inner == "" {
			return nil, false
		}
	}
	return out, true
}
