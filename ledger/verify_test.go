package ledger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// The tamper log: 40 receipts over four scrolls, checkpoints at 10, 25, 40.
const (
	tamperN = 40
)

var tamperCheckpoints = []int{10, 25, 40}

func TestVerifierHappyPath(t *testing.T) {
	l := MustLog(t, tamperN, tamperCheckpoints...)
	wantScrolls := map[string]ledger.ScrollRoot{}
	for _, s := range l.bodies[tamperN].Scrolls {
		wantScrolls[s.Name] = s
	}
	for _, mode := range verifyModes {
		t.Run(mode.name, func(t *testing.T) {
			s, err := runVerifier(l.verifiers, l.checkpoints, l.receipts, mode, false)
			if err != nil {
				t.Fatal(err)
			}
			want := &ledger.Summary{Count: tamperN, Root: l.tree.Root(), CheckpointSize: tamperN, Checkpoints: len(tamperCheckpoints), Scrolls: wantScrolls}
			if diff := cmp.Diff(want, s); diff != "" {
				t.Errorf("Summary (-want +got):\n%s", diff)
			}
			if len(wantScrolls) != len(testScrolls) {
				t.Errorf("log covers %d scrolls, want %d", len(wantScrolls), len(testScrolls))
			}
		})
	}
	t.Run("checkpoints in any order", func(t *testing.T) {
		cps := slices.Clone(l.checkpoints)
		slices.Reverse(cps)
		cps = append(cps, l.checkpoints[1]) // a repeat is harmless
		if _, err := runVerifier(l.verifiers, cps, l.receipts, verifyModes[0], false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("origin from the first checkpoint", func(t *testing.T) {
		v := ledger.NewVerifier(l.verifiers, "")
		for _, c := range l.checkpoints {
			if err := v.AddCheckpoint(c); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range l.receipts {
			if err := v.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := v.Finish(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("receipts after the last checkpoint", func(t *testing.T) {
		short := MustLog(t, tamperN, 10, 25)
		if _, err := runVerifier(short.verifiers, short.checkpoints, short.receipts, verifyModes[0], false); !isVerifyError(err, 25) {
			t.Errorf("unanchored tail without AllowUnanchored: %v, want first bad seq 25", err)
		}
		s, err := runVerifier(short.verifiers, short.checkpoints, short.receipts, verifyModes[0], true)
		if err != nil {
			t.Fatal(err)
		}
		if s.Count != tamperN || s.CheckpointSize != 25 || !bytes.Equal(s.Root, short.tree.Root()) {
			t.Errorf("Summary = %+v", s)
		}
	})
	t.Run("no checkpoint at all", func(t *testing.T) {
		// Nothing signed vouches for a log without checkpoints, even an
		// empty one (it may have been stripped), unanchored or not.
		for _, allow := range []bool{false, true} {
			if _, err := runVerifier(l.verifiers, nil, nil, verifyModes[0], allow); !isVerifyError(err, 0) {
				t.Errorf("empty log, AllowUnanchored %v: %v, want first bad seq 0", allow, err)
			}
			if _, err := runVerifier(l.verifiers, nil, l.receipts, verifyModes[0], allow); !isVerifyError(err, 0) {
				t.Errorf("log without checkpoints, AllowUnanchored %v: %v, want first bad seq 0", allow, err)
			}
		}
	})
	t.Run("checkpoint of the empty log", func(t *testing.T) {
		empty := MustLog(t, 0, 0)
		s, err := runVerifier(empty.verifiers, empty.checkpoints, nil, verifyModes[0], false)
		if err != nil {
			t.Fatalf("empty log with a size-0 checkpoint: %v", err)
		}
		if s.Count != 0 || !bytes.Equal(s.Root, ledger.EmptyRoot()) || s.Checkpoints != 1 || s.CheckpointSize != 0 {
			t.Errorf("Summary = %+v", s)
		}
		grown := MustLog(t, 5, 0, 5)
		for _, mode := range verifyModes {
			if _, err := runVerifier(grown.verifiers, grown.checkpoints, grown.receipts, mode, false); err != nil {
				t.Fatalf("%s: log with checkpoints at 0 and 5: %v", mode.name, err)
			}
		}
	})
}

func isVerifyError(err error, seq uint64) bool {
	var ve *ledger.VerifyError
	return errors.As(err, &ve) && ve.Seq == seq
}

// tamperCase edits a copy of the log and names the first bad seq.
type tamperCase struct {
	name string
	// edit returns the tampered checkpoints and receipts.
	edit func(t *testing.T, l *testLog, cps [][]byte, recs []*warden.Receipt) ([][]byte, []*warden.Receipt)
	want uint64
}

func recs(f func(t *testing.T, l *testLog, recs []*warden.Receipt) []*warden.Receipt) func(*testing.T, *testLog, [][]byte, []*warden.Receipt) ([][]byte, []*warden.Receipt) {
	return func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		return cps, f(t, l, r)
	}
}

// forgedReceipt is a receipt at seq with correct hashes, as anyone with
// write access to the store can make.
func forgedReceipt(t *testing.T, seq uint64) *warden.Receipt {
	r, _, err := ledger.NewReceipt(seq, warden.Draft{Type: "credential_added", Scroll: warden.ScrollIdentity, Time: forgedTime, Body: map[string]string{"name": "mallory", "role": "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var forgedTime = time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)

var tamperCases = []tamperCase{
	{"body byte edited", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Body = bytes.Replace(r[17].Body, []byte("1700"), []byte("9700"), 1)
		return r
	}), 17},
	{"body made invalid JSON", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Body = r[17].Body[:len(r[17].Body)-1]
		return r
	}), 17},
	{"body re-serialised non-canonically, root_hash and leaf_hash recomputed", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Body = append([]byte(" "), r[17].Body...)
		reseal(t, r[17])
		return r
	}), 17},
	{"type changed", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Type = "credential_revoked"
		return r
	}), 17},
	{"tag changed", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Tags[0] = "t9"
		return r
	}), 17},
	{"tag removed", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Tags = r[17].Tags[1:]
		return r
	}), 17},
	{"timestamp changed", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Timestamp = "2025-01-02T03:04:05Z"
		return r
	}), 17},
	{"scroll moved", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Scroll = warden.ScrollIncident
		return r
	}), 17},
	{"scroll unknown", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Scroll = "ledger"
		return r
	}), 17},
	{"schema version changed", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].SchemaVersion = "2.0.1"
		return r
	}), 17},
	{"root_hash edited", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].RootHash = ledger.BodyHash([]byte("{}"))
		return r
	}), 17},
	{"leaf_hash edited", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		b := []byte(r[17].LeafHash)
		b[5] ^= 1
		r[17].LeafHash = string(b)
		return r
	}), 17},
	{"leaf_hash upper-cased", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].LeafHash = string(bytes.ToUpper([]byte(r[17].LeafHash)))
		return r
	}), 17},
	{"seq edited", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Seq = 18
		return r
	}), 17},
	{"first receipt deleted", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return r[1:]
	}), 0},
	{"receipt deleted", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return slices.Delete(r, 17, 18)
	}), 17},
	{"receipt deleted, later ones renumbered", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r = slices.Delete(r, 17, 18)
		for i := 17; i < len(r); i++ {
			r[i].Seq--
		}
		return r
	}), 17},
	{"two receipts swapped", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17], r[23] = r[23], r[17]
		return r
	}), 17},
	{"neighbours swapped", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17], r[18] = r[18], r[17]
		return r
	}), 17},
	{"contents of two receipts swapped, seqs kept", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17], r[23] = r[23], r[17]
		r[17].Seq, r[23].Seq = 17, 23
		return r
	}), 17},
	{"receipt repeated", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return slices.Insert(r, 18, cloneReceipt(r[17]))
	}), 18},
	{"receipt duplicated, later ones renumbered", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r = slices.Insert(r, 18, cloneReceipt(r[17]))
		for i := 18; i < len(r); i++ {
			r[i].Seq++
		}
		return r
	}), 18},
	{"tail truncated below the last checkpoint", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return r[:30]
	}), 30},
	{"truncated to a checkpoint size", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return r[:25]
	}), 25},
	{"truncated below every checkpoint", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return r[:5]
	}), 5},
	{"all receipts deleted", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return nil
	}), 0},
	{"forged receipt appended with correct hashes", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return append(r, forgedReceipt(t, tamperN))
	}), tamperN},
	{"forged receipt inserted, later ones renumbered", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r = slices.Insert(r, 17, forgedReceipt(t, 17))
		for i := 18; i < len(r); i++ {
			r[i].Seq++
		}
		return r
	}), 17},
	{"forged receipt inserted with a duplicate seq", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return slices.Insert(r, 17, forgedReceipt(t, 17))
	}), 17},
	{"forged receipt with a duplicate seq inserted after the genuine one", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return slices.Insert(r, 18, forgedReceipt(t, 17))
	}), 17},
	{"forged receipt with a duplicate seq inserted right after a checkpoint", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		return slices.Insert(r, 25, forgedReceipt(t, 24))
	}), 25},
	{"forged receipt inserted right after a checkpoint, later ones renumbered", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r = slices.Insert(r, 25, forgedReceipt(t, 25))
		for i := 26; i < len(r); i++ {
			r[i].Seq++
		}
		return r
	}), 25},
	{"forged receipt inserted, later ones renumbered and resealed", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r = slices.Insert(r, 17, forgedReceipt(t, 17))
		for i := 18; i < len(r); i++ {
			r[i].Seq++
			reseal(t, r[i])
		}
		return r
	}), 10},
	{"receipt rewritten with recomputed hashes", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[17].Body = json.RawMessage(`{"actor":"mallory"}`)
		reseal(t, r[17])
		return r
	}), 10},
	{"receipt rewritten with recomputed hashes before the first checkpoint", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[3].Type = "nothing_happened"
		reseal(t, r[3])
		return r
	}), 0},
	{"last receipt rewritten with recomputed hashes", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		r[39].Tags = []string{"innocent"}
		reseal(t, r[39])
		return r
	}), 25},
	{"receipt moved to another scroll with recomputed hashes", recs(func(t *testing.T, l *testLog, r []*warden.Receipt) []*warden.Receipt {
		// The global root is unchanged only if the leaf is; a move changes
		// the leaf, so the global root catches it at 25.
		r[20].Scroll = warden.ScrollIncident
		reseal(t, r[20])
		return r
	}), 10},
	{"checkpoint forged (bad signature)", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		c := *l.bodies[tamperN]
		c.Size = 30
		msg := flipSignature(t, l.sign(t, &c))
		return append(cps, msg), r
	}, 25},
	{"checkpoint forged before the valid ones", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		c := *l.bodies[tamperN]
		c.Size = 30
		msg := flipSignature(t, l.sign(t, &c))
		return append([][]byte{msg}, cps...), r
	}, 25},
	{"valid checkpoint replaced by a forged one", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		cps[1] = flipSignature(t, cps[1])
		return cps, r
	}, 10},
	{"checkpoint unreadable", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		return append([][]byte{[]byte("garbage")}, cps...), r
	}, 0},
	{"checkpoint from a different key with the same name", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		_, impostor, _ := MustKeys(t, testOrigin)
		c := *l.bodies[25]
		c.Size = 20
		msg, err := ledger.SignCheckpoint(&c, impostor)
		if err != nil {
			t.Fatal(err)
		}
		return append([][]byte{msg}, cps...), r
	}, 10},
	{"checkpoint for another origin signed by a known key", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		// The peer key is trusted, but the verifier wants testOrigin only.
		c := *l.bodies[25]
		c.Origin = l.peer.Name()
		c.Size = 12
		msg, err := ledger.SignCheckpoint(&c, l.peer)
		if err != nil {
			t.Fatal(err)
		}
		return append([][]byte{msg}, cps...), r
	}, 10},
	{"two checkpoints at the same size disagree", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		c := *l.bodies[25]
		c.Root = bytes.Clone(c.Root)
		c.Root[0] ^= 1
		return append(cps, l.sign(t, &c)), r
	}, 10},
	{"split view signed first", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		c := *l.bodies[25]
		c.Root = bytes.Clone(c.Root)
		c.Root[0] ^= 1
		return append([][]byte{l.sign(t, &c)}, cps...), r
	}, 10},
	{"checkpoint with a wrong scroll root", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		c := *l.bodies[25]
		c.Scrolls = slices.Clone(c.Scrolls)
		c.Scrolls[1].Root = l.bodies[10].Scrolls[1].Root
		cps[1] = l.sign(t, &c)
		return cps, r
	}, 10},
	{"checkpoint missing a scroll", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		c := *l.bodies[25]
		c.Scrolls = c.Scrolls[1:]
		cps[1] = l.sign(t, &c)
		return cps, r
	}, 10},
	{"checkpoint beyond the log", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		c := *l.bodies[tamperN]
		c.Size = tamperN + 5
		return append(cps, l.sign(t, &c)), r
	}, tamperN},
	{"receipt edited and a later checkpoint forged", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		r[3].Type = "x"
		return append([][]byte{flipSignature(t, cps[2])}, cps...), r
	}, 3},
	{"receipt edited and a later checkpoint split", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		r[7].Timestamp = "x"
		c := *l.bodies[25]
		c.Root = bytes.Clone(c.Root)
		c.Root[0] ^= 1
		return append(cps, l.sign(t, &c)), r
	}, 7},
	{"truncated and a later checkpoint forged", func(t *testing.T, l *testLog, cps [][]byte, r []*warden.Receipt) ([][]byte, []*warden.Receipt) {
		return append(cps, flipSignature(t, cps[2])), r[:20]
	}, 20},
}

func flipSignature(t *testing.T, msg []byte) []byte {
	t.Helper()
	i := bytes.LastIndex(msg, []byte(" "))
	m := bytes.Clone(msg)
	// Change the first character of the signature proper (past the 4-byte
	// key hash, which spans the first 5 base64 characters plus 2 bits).
	if m[i+8] == 'A' {
		m[i+8] = 'B'
	} else {
		m[i+8] = 'A'
	}
	return m
}

// TestVerifierTamper edits the log every way the design names and requires
// the verifier to name exactly the first bad sequence number, in every mode
// of driving it.
func TestVerifierTamper(t *testing.T) {
	l := MustLog(t, tamperN, tamperCheckpoints...)
	known, _, err := ledger.ParseVerifiers([]byte(l.keys.Verifier + "\n" + l.peerKeys.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tamperCases {
		t.Run(tc.name, func(t *testing.T) {
			cps, recs := tc.edit(t, l, slices.Clone(l.checkpoints), l.cloneReceipts())
			for _, mode := range verifyModes {
				s, err := runVerifier(known, cps, recs, mode, false)
				var ve *ledger.VerifyError
				if !errors.As(err, &ve) {
					t.Fatalf("%s: verifier returned %v, %v; want a VerifyError at seq %d", mode.name, s, err, tc.want)
				}
				if ve.Seq != tc.want {
					t.Errorf("%s: first bad seq %d, want %d (%s)", mode.name, ve.Seq, tc.want, ve.Reason)
				}
			}
		})
	}
}
