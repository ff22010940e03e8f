package ledger

import (
	"bytes"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	warden "github.com/warden-sh/warden"
)

// HashSize is the size of every leaf and node hash (SHA-256).
const HashSize = 32

var (
	hasher  = rfc6962.DefaultHasher
	factory = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// HashChildren returns the RFC 6962 interior node hash SHA-256(0x01 ‖ l ‖ r).
func HashChildren(l, r []byte) []byte { return hasher.HashChildren(l, r) }

// EmptyRoot is the RFC 6962 root of the empty tree, SHA-256("").
func EmptyRoot() []byte { return hasher.EmptyRoot() }

// Tree is the right edge of an RFC 6962 Merkle tree: the compact range
// [0, size). It is enough to append leaves and compute the root, and it
// serialises to at most 64 hashes. The zero value is not usable; use NewTree
// or TreeFromState.
type Tree struct {
	r *compact.Range
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{r: factory.NewEmptyRange(0)} }

// TreeFromState restores a tree from Size and State as returned by a tree.
func TreeFromState(size uint64, state []byte) (*Tree, error) {
	if len(state)%HashSize != 0 {
		return nil, fmt.Errorf("ledger.TreeFromState: state length %d is not a multiple of %d", len(state), HashSize)
	}
	hashes := make([][]byte, 0, len(state)/HashSize)
	for i := 0; i < len(state); i += HashSize {
		hashes = append(hashes, bytes.Clone(state[i:i+HashSize]))
	}
	r, err := factory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("ledger.TreeFromState: %w", err)
	}
	return &Tree{r: r}, nil
}

// Size returns the number of leaves.
func (t *Tree) Size() uint64 { return t.r.End() }

// State returns the concatenated compact-range hashes that, with Size,
// restore the tree.
func (t *Tree) State() []byte {
	hs := t.r.Hashes()
	out := make([]byte, 0, len(hs)*HashSize)
	for _, h := range hs {
		out = append(out, h...)
	}
	return out
}

// Clone returns an independent copy.
func (t *Tree) Clone() *Tree {
	c, err := TreeFromState(t.Size(), t.State())
	if err != nil {
		panic(err) // a tree's own state always restores
	}
	return c
}

// Append adds a leaf hash. visit, if non-nil, is called for every interior
// node that becomes complete (level ≥ 1) so the caller can persist it for
// proofs; leaves themselves are not reported.
func (t *Tree) Append(leaf []byte, visit func(id warden.NodeID, hash []byte)) error {
	var fn compact.VisitFn
	if visit != nil {
		fn = func(id compact.NodeID, hash []byte) {
			if id.Level > 0 {
				visit(warden.NodeID{Level: id.Level, Index: id.Index}, hash)
			}
		}
	}
	if err := t.r.Append(leaf, fn); err != nil {
		return fmt.Errorf("ledger.Tree.Append: %w", err)
	}
	return nil
}

// Root returns the tree's root hash (EmptyRoot for an empty tree).
func (t *Tree) Root() []byte {
	if t.r.End() == 0 {
		return EmptyRoot()
	}
	root, err := t.r.GetRootHash(nil)
	if err != nil {
		panic(err) // a range starting at 0 always has a root
	}
	return root
}

// FetchFunc returns the hashes of the given perfect-subtree nodes.
type FetchFunc func(ids []warden.NodeID) ([][]byte, error)

func build(nodes proof.Nodes, fetch FetchFunc) ([][]byte, error) {
	ids := make([]warden.NodeID, len(nodes.IDs))
	for i, id := range nodes.IDs {
		ids[i] = warden.NodeID{Level: id.Level, Index: id.Index}
	}
	hashes, err := fetch(ids)
	if err != nil {
		return nil, err
	}
	if len(hashes) != len(ids) {
		return nil, fmt.Errorf("fetched %d hashes for %d nodes", len(hashes), len(ids))
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of the given size, fetching O(log size) stored node hashes.
func InclusionProof(index, size uint64, fetch FetchFunc) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("ledger.InclusionProof: %w", err)
	}
	p, err := build(nodes, fetch)
	if err != nil {
		return nil, fmt.Errorf("ledger.InclusionProof: %w", err)
	}
	return p, nil
}

// ConsistencyProof returns the RFC 6962 consistency proof between two sizes.
func ConsistencyProof(size1, size2 uint64, fetch FetchFunc) ([][]byte, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("ledger.ConsistencyProof: %w", err)
	}
	p, err := build(nodes, fetch)
	if err != nil {
		return nil, fmt.Errorf("ledger.ConsistencyProof: %w", err)
	}
	return p, nil
}

// VerifyInclusion checks that leafHash is at index in the tree of size with
// the given root. It returns an error for every mismatch.
func VerifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	return proof.VerifyInclusion(hasher, index, size, leafHash, p, root)
}

// RootFromInclusion returns the root that the inclusion proof p of leaf
// index in a tree of size implies; the proof holds for a tree whose root
// is that. It lets a verifier check proofs as they stream by and keep only
// the implied roots.
func RootFromInclusion(index, size uint64, leafHash []byte, p [][]byte) ([]byte, error) {
	return proof.RootFromInclusionProof(hasher, index, size, leafHash, p)
}

// VerifyConsistency checks that the tree of size2 with root2 extends the tree
// of size1 with root1.
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(hasher, size1, size2, p, root1, root2)
}

// TreeAt returns the tree of the first size leaves, restored from the
// stored perfect-subtree nodes covering [0, size) (at most 64 hashes), so
// leaves can be appended to it: a verifier that trusts a checkpoint of size
// can check the receipts after it without reading those before.
func TreeAt(size uint64, fetch FetchFunc) (*Tree, error) {
	if size == 0 {
		return NewTree(), nil
	}
	cids := compact.RangeNodes(0, size, nil)
	ids := make([]warden.NodeID, len(cids))
	for i, id := range cids {
		ids[i] = warden.NodeID{Level: id.Level, Index: id.Index}
	}
	hashes, err := fetch(ids)
	if err != nil {
		return nil, fmt.Errorf("ledger.TreeAt: %w", err)
	}
	r, err := factory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("ledger.TreeAt: %w", err)
	}
	return &Tree{r: r}, nil
}

// RootAt returns the root of the tree's first size leaves from the stored
// perfect-subtree nodes covering [0, size), fetching at most 64 hashes.
func RootAt(size uint64, fetch FetchFunc) ([]byte, error) {
	t, err := TreeAt(size, fetch)
	if err != nil {
		return nil, fmt.Errorf("ledger.RootAt: %w", err)
	}
	return t.Root(), nil
}
