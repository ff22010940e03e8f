package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/bits"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// The RFC 6962 test vector used by certificate-transparency and
// transparency-dev/merkle: eight leaf inputs and the root of every prefix.
var rfc6962Leaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}

var rfc6962Roots = []string{
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // empty tree
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

// rfc6962Nodes are the complete interior nodes of the 8-leaf tree, by level.
var rfc6962Nodes = map[warden.NodeID]string{
	{Level: 1, Index: 0}: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	{Level: 1, Index: 1}: "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	{Level: 1, Index: 2}: "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	{Level: 1, Index: 3}: "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	{Level: 2, Index: 0}: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	{Level: 2, Index: 1}: "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	{Level: 3, Index: 0}: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

func TestRFC6962Vectors(t *testing.T) {
	if diff := cmp.Diff(rfc6962Roots[0], hex.EncodeToString(ledger.EmptyRoot())); diff != "" {
		t.Errorf("EmptyRoot (-want +got):\n%s", diff)
	}
	tree := ledger.NewTree()
	if diff := cmp.Diff(rfc6962Roots[0], hex.EncodeToString(tree.Root())); diff != "" {
		t.Errorf("empty tree root (-want +got):\n%s", diff)
	}
	visited := map[warden.NodeID]string{}
	for i, in := range rfc6962Leaves {
		leaf := ledger.LeafHash(MustHex(t, in))
		err := tree.Append(leaf, func(id warden.NodeID, hash []byte) {
			if _, dup := visited[id]; dup {
				t.Errorf("node %+v visited twice", id)
			}
			visited[id] = hex.EncodeToString(hash)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := tree.Size(); got != uint64(i+1) {
			t.Errorf("Size = %d, want %d", got, i+1)
		}
		if diff := cmp.Diff(rfc6962Roots[i+1], hex.EncodeToString(tree.Root())); diff != "" {
			t.Errorf("root of size %d (-want +got):\n%s", i+1, diff)
		}
	}
	if diff := cmp.Diff(rfc6962Nodes, visited); diff != "" {
		t.Errorf("visited interior nodes (-want +got):\n%s", diff)
	}
	l0 := ledger.LeafHash(nil)
	l1 := ledger.LeafHash([]byte{0})
	if diff := cmp.Diff(rfc6962Nodes[warden.NodeID{Level: 1, Index: 0}], hex.EncodeToString(ledger.HashChildren(l0, l1))); diff != "" {
		t.Errorf("HashChildren (-want +got):\n%s", diff)
	}
}

// refLeaves returns n distinct leaf hashes.
func refLeaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = ledger.LeafHash([]byte(fmt.Sprintf("leaf %d", i)))
	}
	return out
}

// refHashChildren is RFC 6962's SHA-256(0x01 || l || r), written out here so
// the reference tree below does not depend on the code under test.
func refHashChildren(l, r []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

// split returns the largest power of two smaller than n (n > 1).
func split(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }

// refRoot is MTH(D[n]) of RFC 6962 section 2.1, straight from the definition.
func refRoot(d [][]byte) []byte {
	switch len(d) {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		return d[0]
	}
	k := split(len(d))
	return refHashChildren(refRoot(d[:k]), refRoot(d[k:]))
}

// refPath is PATH(m, D[n]) of RFC 6962 section 2.1.1.
func refPath(m int, d [][]byte) [][]byte {
	if len(d) == 1 {
		return [][]byte{}
	}
	k := split(len(d))
	if m < k {
		return append(refPath(m, d[:k]), refRoot(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refRoot(d[:k]))
}

// refProof is PROOF(m, D[n]) of RFC 6962 section 2.1.2.
func refProof(m int, d [][]byte) [][]byte { return refSubproof(m, d, true) }

func refSubproof(m int, d [][]byte, b bool) [][]byte {
	n := len(d)
	if m == n {
		if b {
			return [][]byte{}
		}
		return [][]byte{refRoot(d)}
	}
	k := split(n)
	if m <= k {
		return append(refSubproof(m, d[:k], b), refRoot(d[k:]))
	}
	return append(refSubproof(m-k, d[k:], false), refRoot(d[:k]))
}

// nodeStore is an in-memory table of every node a store would persist: the
// leaves and every interior node reported by Tree.Append.
type nodeStore struct {
	nodes  map[warden.NodeID][]byte
	tree   *ledger.Tree
	leaves [][]byte
	roots  [][]byte // roots[n] is the root of the first n leaves
}

// MustNodeStore appends leaves to a tree, recording every node.
func MustNodeStore(tb testing.TB, leaves [][]byte) *nodeStore {
	tb.Helper()
	s := &nodeStore{nodes: map[warden.NodeID][]byte{}, tree: ledger.NewTree(), leaves: leaves, roots: [][]byte{ledger.EmptyRoot()}}
	for i, leaf := range leaves {
		s.nodes[warden.NodeID{Level: 0, Index: uint64(i)}] = leaf
		err := s.tree.Append(leaf, func(id warden.NodeID, hash []byte) {
			if id.Level == 0 {
				tb.Errorf("visitor reported leaf %+v", id)
			}
			if _, dup := s.nodes[id]; dup {
				tb.Errorf("node %+v reported twice", id)
			}
			s.nodes[id] = bytes.Clone(hash)
		})
		if err != nil {
			tb.Fatal(err)
		}
		s.roots = append(s.roots, s.tree.Root())
	}
	return s
}

// fetch is a FetchFunc that fails on any node the store does not have, so a
// proof that needs an incomplete node is caught.
func (s *nodeStore) fetch(ids []warden.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := s.nodes[id]
		if !ok {
			return nil, fmt.Errorf("node %+v not stored", id)
		}
		out[i] = h
	}
	return out, nil
}

// TestTreeAgainstReference checks roots, the nodes the visitor reports, and
// the serialised state against the RFC 6962 definitions for sizes 0..70.
func TestTreeAgainstReference(t *testing.T) {
	const n = 70
	leaves := refLeaves(n)
	s := MustNodeStore(t, leaves)
	for size := 0; size <= n; size++ {
		if !bytes.Equal(s.roots[size], refRoot(leaves[:size])) {
			t.Fatalf("root of size %d differs from MTH", size)
		}
	}
	// Every complete subtree of [0, n) is stored exactly once with its MTH.
	want := 0
	for level := uint(0); 1<<level <= n; level++ {
		for index := 0; (index+1)<<level <= n; index++ {
			want++
			id := warden.NodeID{Level: level, Index: uint64(index)}
			got, ok := s.nodes[id]
			if !ok {
				t.Fatalf("node %+v not reported", id)
			}
			if !bytes.Equal(got, refRoot(leaves[index<<level:(index+1)<<level])) {
				t.Fatalf("node %+v hash differs from MTH", id)
			}
		}
	}
	if len(s.nodes) != want {
		t.Errorf("store has %d nodes, want %d complete subtrees", len(s.nodes), want)
	}
}

// TestTreeState checks that Size and State restore a tree at every size: the
// state is one hash per set bit of the size, and the restored tree has the
// same root and keeps growing identically to the original.
func TestTreeState(t *testing.T) {
	const n = 40
	leaves := refLeaves(n + 8)
	tree := ledger.NewTree()
	for size := 0; size <= n; size++ {
		state := tree.State()
		if got, want := len(state), bits.OnesCount(uint(size))*ledger.HashSize; got != want {
			t.Fatalf("size %d: state is %d bytes, want %d", size, got, want)
		}
		restored, err := ledger.TreeFromState(tree.Size(), state)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		clone := tree.Clone()
		for _, c := range []*ledger.Tree{restored, clone} {
			if c.Size() != uint64(size) || !bytes.Equal(c.Root(), tree.Root()) {
				t.Fatalf("size %d: restored tree has size %d root %x, want %x", size, c.Size(), c.Root(), tree.Root())
			}
			// Growing the copy must not touch the original, and must match
			// the reference.
			for _, leaf := range leaves[size : size+8] {
				if err := c.Append(leaf, nil); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(c.Root(), refRoot(leaves[:size+8])) {
				t.Fatalf("size %d: restored tree grows to a wrong root", size)
			}
		}
		if tree.Size() != uint64(size) || !bytes.Equal(tree.Root(), refRoot(leaves[:size])) {
			t.Fatalf("size %d: growing a copy changed the original", size)
		}
		if err := tree.Append(leaves[size], nil); err != nil {
			t.Fatal(err)
		}
	}
	// State returns a copy: scribbling on it does not change the tree.
	st := tree.State()
	root := tree.Root()
	for i := range st {
		st[i] ^= 0xff
	}
	if !bytes.Equal(tree.Root(), root) {
		t.Error("State aliases the tree's hashes")
	}
}

func TestTreeFromStateRejects(t *testing.T) {
	h := bytes.Repeat([]byte{7}, ledger.HashSize)
	tests := []struct {
		name  string
		size  uint64
		state []byte
	}{
		{"length not a multiple of 32", 1, h[:31]},
		{"too few hashes for the size", 3, h},
		{"too many hashes for the size", 1, append(bytes.Clone(h), h...)},
		{"hashes for an empty tree", 0, h},
		{"no hashes for a non-empty tree", 4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tr, err := ledger.TreeFromState(tt.size, tt.state); err == nil {
				t.Errorf("TreeFromState = size %d, want an error", tr.Size())
			}
		})
	}
}

// TestRootAt checks RootAt, which rebuilds a historical root from stored
// nodes, against the reference for every size.
func TestRootAt(t *testing.T) {
	const n = 70
	leaves := refLeaves(n)
	s := MustNodeStore(t, leaves)
	for size := 0; size <= n; size++ {
		got, err := ledger.RootAt(uint64(size), s.fetch)
		if err != nil {
			t.Fatalf("RootAt(%d): %v", size, err)
		}
		if !bytes.Equal(got, refRoot(leaves[:size])) {
			t.Fatalf("RootAt(%d) differs from MTH", size)
		}
	}
	if _, err := ledger.RootAt(n+1, s.fetch); err == nil {
		t.Error("RootAt beyond the stored tree: want an error")
	}
}
