package storetest

import (
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// appendLeaves appends n receipts spread over two scrolls, in batches of
// uneven size, and returns their leaf hashes.
func appendLeaves(t *testing.T, s warden.Store, n int) [][]byte {
	t.Helper()
	var leaves [][]byte
	for i := 0; i < n; {
		k := min(1+i%7, n-i)
		ds := make([]warden.Draft, k)
		for j := range ds {
			ds[j] = draft(i + j)
			if (i+j)%3 == 0 {
				ds[j].Scroll = warden.ScrollCognitive
			}
		}
		for _, r := range MustAppend(t, s, ds...) {
			leaves = append(leaves, leafHash(t, r))
		}
		i += k
	}
	return leaves
}

func testInclusionProofs(t *testing.T, h Harness) {
	const n = 70
	s := h.New(t)
	leaves := appendLeaves(t, s, n)
	if got, want := MustHead(t, s).RootHash, rootOf(t, leaves); !bytesEqual(got, want) {
		t.Fatalf("head root = %x, want %x", got, want)
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for size := uint64(1); size <= n; size++ {
			root := rootOf(t, leaves[:size])
			for i := range size {
				p, err := ledger.InclusionProof(i, size, tx.MerkleHashes)
				if err != nil {
					t.Fatalf("InclusionProof(%d, %d): %v", i, size, err)
				}
				if err := ledger.VerifyInclusion(i, size, leaves[i], p, root); err != nil {
					t.Fatalf("inclusion proof of %d in %d does not verify: %v", i, size, err)
				}
			}
		}
		return nil
	})
}

func testConsistencyProofs(t *testing.T, h Harness) {
	const n = 40
	s := h.New(t)
	leaves := appendLeaves(t, s, n)
	roots := make([][]byte, n+1)
	for size := range roots {
		roots[size] = rootOf(t, leaves[:size])
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for s1 := uint64(1); s1 <= n; s1++ {
			for s2 := s1; s2 <= n; s2++ {
				p, err := ledger.ConsistencyProof(s1, s2, tx.MerkleHashes)
				if err != nil {
					t.Fatalf("ConsistencyProof(%d, %d): %v", s1, s2, err)
				}
				if err := ledger.VerifyConsistency(s1, s2, p, roots[s1], roots[s2]); err != nil {
					t.Fatalf("consistency proof %d→%d does not verify: %v", s1, s2, err)
				}
			}
		}
		return nil
	})
}

func testMerkleHashesMissing(t *testing.T, h Harness) {
	s := h.New(t)
	leaves := appendLeaves(t, s, 70)
	MustView(t, s, func(tx warden.ReadTx) error {
		// Present: a leaf, a complete subtree, the largest complete subtree.
		hs, err := tx.MerkleHashes([]warden.NodeID{{Level: 0, Index: 69}, {Level: 1, Index: 34}, {Level: 6, Index: 0}})
		if err != nil {
			t.Fatalf("MerkleHashes of present nodes: %v", err)
		}
		if !bytesEqual(hs[0], leaves[69]) ||
			!bytesEqual(hs[1], ledger.HashChildren(leaves[68], leaves[69])) ||
			!bytesEqual(hs[2], rootOf(t, leaves[:64])) {
			t.Errorf("MerkleHashes of present nodes returned wrong hashes")
		}
		empty, err := tx.MerkleHashes(nil)
		if err != nil || len(empty) != 0 {
			t.Errorf("MerkleHashes(nil) = %v, %v; want no hashes and no error", empty, err)
		}
		for _, id := range []warden.NodeID{
			{Level: 0, Index: 70},      // the next leaf
			{Level: 1, Index: 35},      // over leaves 70 and 71
			{Level: 3, Index: 8},       // over 64..71: incomplete
			{Level: 7, Index: 0},       // over 0..127: incomplete
			{Level: 0, Index: 1 << 62}, // far beyond
			{Level: 70, Index: 0},      // no such level
		} {
			_, err := tx.MerkleHashes([]warden.NodeID{{Level: 0, Index: 0}, id})
			if warden.ErrorCode(err) != warden.ENOTFOUND {
				t.Errorf("MerkleHashes(%+v) outside the log returned %v, want ENOTFOUND", id, err)
			}
		}
		return nil
	})
}
