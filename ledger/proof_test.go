package ledger_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// TestInclusionProofs builds every inclusion proof of every tree up to 64
// leaves from stored nodes, checks it equals RFC 6962's PATH, and verifies it.
func TestInclusionProofs(t *testing.T) {
	const n = 64
	leaves := refLeaves(n)
	s := MustNodeStore(t, leaves)
	for size := 1; size <= n; size++ {
		for index := 0; index < size; index++ {
			p, err := ledger.InclusionProof(uint64(index), uint64(size), s.fetch)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
			}
			if want := refPath(index, leaves[:size]); !equalProofs(p, want) {
				t.Fatalf("InclusionProof(%d, %d) differs from PATH: got %d hashes, want %d", index, size, len(p), len(want))
			}
			if err := ledger.VerifyInclusion(uint64(index), uint64(size), leaves[index], p, s.roots[size]); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d): %v", index, size, err)
			}
		}
	}
}

// TestConsistencyProofs does the same for every pair of sizes up to 40.
func TestConsistencyProofs(t *testing.T) {
	const n = 40
	leaves := refLeaves(n)
	s := MustNodeStore(t, leaves)
	for size2 := 1; size2 <= n; size2++ {
		for size1 := 1; size1 <= size2; size1++ {
			p, err := ledger.ConsistencyProof(uint64(size1), uint64(size2), s.fetch)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", size1, size2, err)
			}
			if want := refProof(size1, leaves[:size2]); !equalProofs(p, want) {
				t.Fatalf("ConsistencyProof(%d, %d) differs from PROOF: got %d hashes, want %d", size1, size2, len(p), len(want))
			}
			if err := ledger.VerifyConsistency(uint64(size1), uint64(size2), p, s.roots[size1], s.roots[size2]); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", size1, size2, err)
			}
		}
	}
}

func TestProofArgumentErrors(t *testing.T) {
	s := MustNodeStore(t, refLeaves(8))
	if _, err := ledger.InclusionProof(8, 8, s.fetch); err == nil {
		t.Error("InclusionProof(index == size): want an error")
	}
	if _, err := ledger.InclusionProof(0, 0, s.fetch); err == nil {
		t.Error("InclusionProof in an empty tree: want an error")
	}
	if _, err := ledger.ConsistencyProof(5, 4, s.fetch); err == nil {
		t.Error("ConsistencyProof(size1 > size2): want an error")
	}
	boom := errors.New("boom")
	failing := func([]warden.NodeID) ([][]byte, error) { return nil, boom }
	if _, err := ledger.InclusionProof(3, 8, failing); !errors.Is(err, boom) {
		t.Errorf("InclusionProof with a failing fetch = %v, want it wrapped", err)
	}
	if _, err := ledger.ConsistencyProof(3, 8, failing); !errors.Is(err, boom) {
		t.Errorf("ConsistencyProof with a failing fetch = %v, want it wrapped", err)
	}
	short := func(ids []warden.NodeID) ([][]byte, error) {
		h, _ := s.fetch(ids)
		return h[:len(h)-1], nil
	}
	if _, err := ledger.InclusionProof(3, 8, short); err == nil {
		t.Error("InclusionProof with a fetch returning too few hashes: want an error")
	}
	if _, err := ledger.ConsistencyProof(3, 7, short); err == nil {
		t.Error("ConsistencyProof with a fetch returning too few hashes: want an error")
	}
}

func equalProofs(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

func cloneProof(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = bytes.Clone(h)
	}
	return out
}

// proofMutants returns every mutation of p this file knows: each byte of each
// element with one bit flipped, the first byte of each element with every bit
// flipped, elements truncated, lengthened, emptied or replaced, the proof
// truncated, extended, with neighbours swapped, reversed, rotated, and with
// an element duplicated.
func proofMutants(p [][]byte, other [][]byte) map[string][][]byte {
	m := map[string][][]byte{}
	add := func(name string, q [][]byte) {
		if !equalProofs(q, p) {
			m[name] = q
		}
	}
	for i := range p {
		for j := range p[i] {
			q := cloneProof(p)
			q[i][j] ^= 1 << (j % 8)
			add(fmt.Sprintf("element %d byte %d bit %d", i, j, j%8), q)
		}
		for bit := 0; bit < 8; bit++ {
			q := cloneProof(p)
			q[i][0] ^= 1 << bit
			add(fmt.Sprintf("element %d byte 0 bit %d", i, bit), q)
		}
		q := cloneProof(p)
		q[i] = q[i][:len(q[i])-1]
		add(fmt.Sprintf("element %d truncated", i), q)
		q = cloneProof(p)
		q[i] = append(q[i], 0)
		add(fmt.Sprintf("element %d lengthened", i), q)
		q = cloneProof(p)
		q[i] = nil
		add(fmt.Sprintf("element %d nil", i), q)
		for k, o := range other {
			q = cloneProof(p)
			q[i] = bytes.Clone(o)
			add(fmt.Sprintf("element %d replaced by foreign hash %d", i, k), q)
		}
		q = slices.Insert(cloneProof(p), i, bytes.Clone(p[i]))
		add(fmt.Sprintf("element %d duplicated", i), q)
		q = slices.Delete(cloneProof(p), i, i+1)
		add(fmt.Sprintf("element %d removed", i), q)
	}
	if len(p) > 0 {
		add("truncated by one", cloneProof(p[:len(p)-1]))
		add("first element dropped", cloneProof(p[1:]))
		add("rotated", append(cloneProof(p[1:]), bytes.Clone(p[0])))
	}
	for k, o := range other {
		add(fmt.Sprintf("extended by foreign hash %d", k), append(cloneProof(p), bytes.Clone(o)))
		add(fmt.Sprintf("prefixed by foreign hash %d", k), append([][]byte{bytes.Clone(o)}, cloneProof(p)...))
	}
	add("extended by zero hash", append(cloneProof(p), make([]byte, ledger.HashSize)))
	for i := 0; i+1 < len(p); i++ {
		q := cloneProof(p)
		q[i], q[i+1] = q[i+1], q[i]
		add(fmt.Sprintf("elements %d and %d swapped", i, i+1), q)
	}
	if len(p) > 2 {
		q := cloneProof(p)
		q[0], q[len(q)-1] = q[len(q)-1], q[0]
		add("first and last swapped", q)
	}
	q := cloneProof(p)
	slices.Reverse(q)
	add("reversed", q)
	return m
}

func flips(h []byte) map[string][]byte {
	m := map[string][]byte{}
	for j := range h {
		c := bytes.Clone(h)
		c[j] ^= 1 << (j % 8)
		m[fmt.Sprintf("byte %d bit %d", j, j%8)] = c
	}
	for bit := 1; bit < 8; bit++ {
		c := bytes.Clone(h)
		c[len(c)-1] ^= 1 << bit
		m[fmt.Sprintf("last byte bit %d", bit)] = c
	}
	m["truncated"] = bytes.Clone(h[:len(h)-1])
	m["lengthened"] = append(bytes.Clone(h), 0)
	m["empty"] = nil
	return m
}

// TestInclusionCorruption mutates valid inclusion proofs every way and
// requires every mutant to fail.
func TestInclusionCorruption(t *testing.T) {
	const n = 64
	leaves := refLeaves(n)
	s := MustNodeStore(t, leaves)
	foreign := MustNodeStore(t, refLeaves(n + 1)[1:]) // a different log of the same size
	other := [][]byte{foreign.roots[13], ledger.LeafHash([]byte("stranger")), leaves[0]}
	cases := [][2]uint64{{0, 1}, {0, 2}, {1, 2}, {2, 3}, {5, 13}, {12, 13}, {8, 13}, {20, 37}, {0, 64}, {31, 64}, {63, 64}, {40, 63}}
	mutants := 0
	for _, c := range cases {
		index, size := c[0], c[1]
		t.Run(fmt.Sprintf("%d of %d", index, size), func(t *testing.T) {
			leaf, root := leaves[index], s.roots[size]
			p, err := ledger.InclusionProof(index, size, s.fetch)
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.VerifyInclusion(index, size, leaf, p, root); err != nil {
				t.Fatalf("valid proof: %v", err)
			}
			mustFail := func(name string, index, size uint64, leaf []byte, p [][]byte, root []byte) {
				t.Helper()
				mutants++
				if err := ledger.VerifyInclusion(index, size, leaf, p, root); err == nil {
					t.Errorf("mutant %q (index %d, size %d) verifies", name, index, size)
				}
			}
			for name, q := range proofMutants(p, other) {
				mustFail("proof "+name, index, size, leaf, q, root)
			}
			// Index and size moved by one. A size change is paired with
			// that tree's own root: a checkpoint signs size and root
			// together, so (size±1, root of size) is not a tree head anyone
			// can present.
			mustFail("index+1", index+1, size, leaf, p, root)
			mustFail("index-1", index-1, size, leaf, p, root) // wraps at 0
			mustFail("index max", math.MaxUint64, size, leaf, p, root)
			if size < n {
				mustFail("size+1", index, size+1, leaf, p, s.roots[size+1])
			}
			mustFail("size-1", index, size-1, leaf, p, s.roots[size-1])
			mustFail("size 0", index, 0, leaf, p, ledger.EmptyRoot())
			mustFail("size max", index, math.MaxUint64, leaf, p, root)
			mustFail("index = size", size, size, leaf, p, root)
			for name, l := range flips(leaf) {
				mustFail("leaf "+name, index, size, l, p, root)
			}
			for k, l := range other {
				if !bytes.Equal(l, leaf) {
					mustFail(fmt.Sprintf("foreign leaf %d", k), index, size, l, p, root)
				}
			}
			if index+1 < size {
				mustFail("neighbour's leaf", index, size, leaves[index+1], p, root)
			}
			for name, r := range flips(root) {
				mustFail("root "+name, index, size, leaf, p, r)
			}
			mustFail("root of another log", index, size, leaf, p, foreign.roots[size])
			mustFail("empty root", index, size, leaf, p, ledger.EmptyRoot())
			if size < n {
				mustFail("root of the next tree", index, size, leaf, p, s.roots[size+1])
			}
			mustFail("root of the previous tree", index, size, leaf, p, s.roots[size-1])
		})
	}
	t.Logf("%d inclusion mutants tried", mutants)
}

// TestConsistencyCorruption does the same for consistency proofs.
func TestConsistencyCorruption(t *testing.T) {
	const n = 40
	leaves := refLeaves(n)
	s := MustNodeStore(t, leaves)
	foreign := MustNodeStore(t, refLeaves(n + 1)[1:])
	other := [][]byte{foreign.roots[17], ledger.LeafHash([]byte("stranger")), s.roots[3]}
	cases := [][2]uint64{{1, 1}, {1, 2}, {1, 8}, {2, 3}, {3, 7}, {4, 4}, {4, 8}, {6, 8}, {7, 13}, {8, 13}, {13, 40}, {16, 40}, {33, 39}}
	mutants := 0
	for _, c := range cases {
		size1, size2 := c[0], c[1]
		t.Run(fmt.Sprintf("%d to %d", size1, size2), func(t *testing.T) {
			root1, root2 := s.roots[size1], s.roots[size2]
			p, err := ledger.ConsistencyProof(size1, size2, s.fetch)
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.VerifyConsistency(size1, size2, p, root1, root2); err != nil {
				t.Fatalf("valid proof: %v", err)
			}
			mustFail := func(name string, size1, size2 uint64, p [][]byte, root1, root2 []byte) {
				t.Helper()
				mutants++
				if err := ledger.VerifyConsistency(size1, size2, p, root1, root2); err == nil {
					t.Errorf("mutant %q (sizes %d, %d) verifies", name, size1, size2)
				}
			}
			for name, q := range proofMutants(p, other) {
				mustFail("proof "+name, size1, size2, q, root1, root2)
			}
			// Sizes moved by one, each with its own tree's root (see
			// TestInclusionCorruption).
			if size1+1 <= size2 {
				mustFail("size1+1", size1+1, size2, p, s.roots[size1+1], root2)
			}
			if size1 > 1 {
				mustFail("size1-1", size1-1, size2, p, s.roots[size1-1], root2)
			}
			if size2 < n {
				mustFail("size2+1", size1, size2+1, p, root1, s.roots[size2+1])
			}
			if size2-1 >= size1 {
				mustFail("size2-1", size1, size2-1, p, root1, s.roots[size2-1])
			}
			if size1 != size2 { // equal trees are trivially consistent with themselves
				mustFail("sizes swapped", size2, size1, p, root2, root1)
				mustFail("roots swapped", size1, size2, p, root2, root1)
				mustFail("both roots of another log", size1, size2, p, foreign.roots[size1], foreign.roots[size2])
			}
			mustFail("size2 max", size1, math.MaxUint64, p, root1, root2)
			for name, r := range flips(root1) {
				mustFail("root1 "+name, size1, size2, p, r, root2)
			}
			for name, r := range flips(root2) {
				mustFail("root2 "+name, size1, size2, p, root1, r)
			}
			mustFail("root1 of another log", size1, size2, p, foreign.roots[size1], root2)
			mustFail("root2 of another log", size1, size2, p, root1, foreign.roots[size2])
		})
	}
	t.Logf("%d consistency mutants tried", mutants)
}
