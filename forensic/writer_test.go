package forensic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/forensic"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// testKeys are a ledger key pair and a forensic key.
type testKeys struct {
	origin    string
	signer    note.Signer
	verifier  string // the signed-note verifier key
	verifiers note.Verifiers
	hmac      []byte
}

func mustKeys(tb testing.TB, origin string) testKeys {
	tb.Helper()
	k, err := ledger.GenerateKeys(origin)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(k.Signer)
	if err != nil {
		tb.Fatal(err)
	}
	known, _, err := ledger.ParseVerifiers([]byte(k.Verifier))
	if err != nil {
		tb.Fatal(err)
	}
	return testKeys{origin: origin, signer: signer, verifier: k.Verifier, verifiers: known, hmac: []byte("forensic key beside " + k.Verifier)}
}

func (k testKeys) keys() forensic.Keys { return forensic.Keys{HMAC: k.hmac, Signer: k.signer} }

func (k testKeys) opts() forensic.Options {
	return forensic.Options{HMACKey: k.hmac, Verifiers: k.verifiers}
}

// memSource is a Source over a log built in memory with ledger's own
// sealing and Merkle code: every receipt of every scroll, the global
// tree's nodes (leaves included), and the incidents in listing order.
type memSource struct {
	receipts  []*warden.Receipt
	incidents []*warden.Incident
	nodes     map[warden.NodeID][]byte
}

func (s *memSource) AuditEntries(fn func(*warden.Receipt) error) error {
	for _, r := range s.receipts {
		if r.Scroll != warden.ScrollIncident {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSource) Incidents(fn func(*warden.Incident) error) error {
	for _, i := range s.incidents {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSource) MerkleHashes(ids []warden.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil // as a store may: Write MUST NOT write null hashes
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := s.nodes[id]
		if !ok {
			return nil, fmt.Errorf("no node %+v", id)
		}
		out[i] = h
	}
	return out, nil
}

// logBuilder appends sealed receipts to a memSource, keeping the global
// tree's nodes and every scroll's tree, as a store does.
type logBuilder struct {
	tb      testing.TB
	k       testKeys
	now     time.Time
	src     *memSource
	global  *ledger.Tree
	scrolls map[string]*ledger.Tree
}

func newLog(tb testing.TB, k testKeys) *logBuilder {
	return &logBuilder{tb: tb, k: k, now: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC),
		src: &memSource{nodes: map[warden.NodeID][]byte{}}, global: ledger.NewTree(), scrolls: map[string]*ledger.Tree{}}
}

// add appends a receipt, a minute after the one before.
func (l *logBuilder) add(scroll, typ string, body any) {
	l.tb.Helper()
	seq := uint64(len(l.src.receipts))
	r, leaf, err := ledger.NewReceipt(seq, warden.Draft{Type: typ, Scroll: scroll, Time: l.now, Body: body})
	if err != nil {
		l.tb.Fatal(err)
	}
	l.src.receipts = append(l.src.receipts, r)
	l.src.nodes[warden.NodeID{Level: 0, Index: seq}] = leaf
	if err := l.global.Append(leaf, func(id warden.NodeID, h []byte) { l.src.nodes[id] = h }); err != nil {
		l.tb.Fatal(err)
	}
	if l.scrolls[scroll] == nil {
		l.scrolls[scroll] = ledger.NewTree()
	}
	if err := l.scrolls[scroll].Append(leaf, nil); err != nil {
		l.tb.Fatal(err)
	}
	l.now = l.now.Add(time.Minute)
}

// checkpoint signs a checkpoint of the log so far.
func (l *logBuilder) checkpoint() *warden.Checkpoint {
	l.tb.Helper()
	body := &ledger.CheckpointBody{Origin: l.k.origin, Size: l.global.Size(), Root: l.global.Root()}
	for _, name := range slices.Sorted(maps.Keys(l.scrolls)) {
		body.Scrolls = append(body.Scrolls, ledger.ScrollRoot{Name: name, Size: l.scrolls[name].Size(), Root: l.scrolls[name].Root()})
	}
	msg, err := ledger.SignCheckpoint(body, l.k.signer)
	if err != nil {
		l.tb.Fatal(err)
	}
	return &warden.Checkpoint{Size: body.Size, Note: string(msg)}
}

// incident returns a new open incident numbered n.
func (l *logBuilder) incident(n uint64, sev warden.Severity) *warden.Incident {
	return &warden.Incident{
		ID: fmt.Sprintf("INC-%s-%04d", l.now.Format("20060102-150405"), n), CreatedAt: warden.FormatTime(l.now),
		Class: warden.ClassForbiddenAirlockRequest, Severity: sev, State: warden.StateOpen, Source: "airlock",
		Description: fmt.Sprintf("blocked egress %d", n), Evidence: map[string]string{"host": "example.com"},
		ContainmentActions: []string{}, ContainmentResults: []warden.ContainmentResult{}, Number: n, ReportedBy: "airlock",
	}
}

// snapshot is the body of a receipt that records an incident's state.
func snapshot(i *warden.Incident) map[string]any {
	return map[string]any{"incident": i, "principal": "airlock"}
}

// header is the header of a bundle exported from the log with cp, whose
// incidents are src's: system_state's counters are recomputed from them.
func (l *logBuilder) header(cp *warden.Checkpoint) forensic.Header {
	counters := map[string]int64{}
	for _, i := range l.src.incidents {
		for key, d := range warden.StatsDelta(nil, i) {
			counters[key] += d
		}
	}
	stats := warden.StatsFromCounters(counters)
	return forensic.Header{
		ExportedAt:   l.now,
		PolicyDigest: "sha256:" + strings.Repeat("ab", 32),
		SystemState: forensic.SystemState{
			TotalIncidents: stats.TotalIncidents, OpenIncidents: stats.OpenIncidents, ContainedCount: stats.ContainedCount,
			ResolvedCount: stats.ResolvedCount, ByClass: stats.ByClass, OpenBySeverity: stats.OpenBySeverity,
			AttestationState: "verified", IntegrityState: "ok",
			LogSize: l.global.Size(), CheckpointSize: cp.Size, Origin: l.k.origin, WardenVersion: "test",
		},
		PublicKey:  l.k.verifier,
		Checkpoint: cp,
	}
}

// mustLog builds a small log the way the server would and the header of a
// bundle exported from it: two incidents reported (one then resolved),
// receipts of other scrolls between them, a checkpoint, and a third
// incident reported after the checkpoint (unanchored). edit, if non-nil,
// adjusts the first incident before it is receipted.
func mustLog(tb testing.TB, k testKeys, edit func(*warden.Incident)) (*memSource, forensic.Header) {
	tb.Helper()
	l := newLog(tb, k)
	l.add(warden.ScrollSystem, "server_start", map[string]any{"version": "test"})
	a := l.incident(1, warden.SeverityHigh)
	if edit != nil {
		edit(a)
	}
	l.add(warden.ScrollIncident, "incident_reported", snapshot(a))
	b := l.incident(2, warden.SeverityMedium)
	l.add(warden.ScrollIncident, "incident_reported", snapshot(b))
	l.add(warden.ScrollPolicy, "policy_loaded", map[string]any{"digest": "sha256:00"})
	b.State, b.ResolvedAt, b.ResolvedBy = warden.StateResolved, warden.FormatTime(l.now), "t"
	l.add(warden.ScrollIncident, "incident_resolved", snapshot(b))
	// An incident receipt without a snapshot.
	l.add(warden.ScrollIncident, "containment_recorded", map[string]any{"incident_id": a.ID, "results": []string{}})
	cp := l.checkpoint()
	c := l.incident(3, warden.SeverityLow)
	l.add(warden.ScrollIncident, "incident_reported", snapshot(c))
	l.src.incidents = []*warden.Incident{a, b, c} // listing order: most severe first
	return l.src, l.header(cp)
}

// TestWrite_TreeOfOne: the inclusion proof in a tree of one leaf has no
// hashes, written [] (as the engine always wrote it), not null.
func TestWrite_TreeOfOne(t *testing.T) {
	k := mustKeys(t, "warden.test/one")
	l := newLog(t, k)
	i := l.incident(1, warden.SeverityLow)
	l.add(warden.ScrollIncident, "incident_reported", snapshot(i))
	l.src.incidents = []*warden.Incident{i}
	b, _ := mustWrite(t, l.src, l.header(l.checkpoint()), k.keys())
	if diff := cmp.Diff(`[{"seq":0,"tree_size":1,"hashes":[]}]`, string(member[json.RawMessage](t, b, "inclusion_proofs"))); diff != "" {
		t.Errorf("inclusion_proofs (-want +got):\n%s", diff)
	}
	if rep, err := forensic.Verify(bytes.NewReader(b), k.opts()); err != nil || rep.Proofs != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
}

// mustWrite writes a bundle and returns it with its summary.
func mustWrite(tb testing.TB, src forensic.Source, h forensic.Header, k forensic.Keys) ([]byte, *forensic.Summary) {
	tb.Helper()
	var buf bytes.Buffer
	sum, err := forensic.Write(&buf, src, h, k)
	if err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), sum
}

// topLevelKeys returns a bundle's member names in the order they appear.
func topLevelKeys(tb testing.TB, b []byte) []string {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		tb.Fatal(err)
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			tb.Fatal(err)
		}
	}
	return keys
}

// TestWrite_RoundTrip: a bundle Write makes from a real log verifies with
// no problem, and its report and Write's summary agree. The layout is the
// one package forensic documents: the five hashed members first, their
// bytes closed with "}" hashing to bundle_hash, then the signatures, the
// key, the checkpoint, the format and the inclusion proofs.
func TestWrite_RoundTrip(t *testing.T) {
	k := mustKeys(t, "warden.test/roundtrip")
	src, h := mustLog(t, k, nil)
	b, sum := mustWrite(t, src, h, k.keys())

	rep, err := forensic.Verify(bytes.NewReader(b), k.opts())
	if err != nil {
		t.Fatal(err)
	}
	want := &forensic.Report{OK: true, BundleHash: sum.BundleHash, Incidents: 3, AuditEntries: 5, Proofs: 4, Unanchored: 1,
		HMACChecked: true, SignaturesChecked: true, Problems: []string{}}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&forensic.Summary{BundleHash: rep.BundleHash, Incidents: 3, AuditEntries: 5, Proofs: 4}, sum); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}

	wantKeys := []string{"audit_entries", "exported_at", "incidents", "policy_digest", "system_state",
		"bundle_hash", "signature", "bundle_note", "pubkey", "checkpoint", "format", "inclusion_proofs"}
	if diff := cmp.Diff(wantKeys, topLevelKeys(t, b)); diff != "" {
		t.Errorf("member order (-want +got):\n%s", diff)
	}
	if !bytes.HasSuffix(b, []byte("]}\n")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("bundle is not one line ending in \"]}\\n\": ...%q", b[max(0, len(b)-20):])
	}
	content, _, ok := bytes.Cut(b, []byte(`,"bundle_hash":`))
	if !ok {
		t.Fatal("no bundle_hash")
	}
	if got := sha256hex(append(bytes.Clone(content), '}')); got != sum.BundleHash {
		t.Errorf("hash of the content bytes %s, bundle_hash %s", got, sum.BundleHash)
	}
	if diff := cmp.Diff(h.ExportedAt.UTC().Format(warden.TimeFormat), member[string](t, b, "exported_at")); diff != "" {
		t.Errorf("exported_at (-want +got):\n%s", diff)
	}

	// The embedded key checks it too, and the HMAC key alone.
	for name, o := range map[string]forensic.Options{
		"embedded key": {TrustEmbeddedKey: true},
		"HMAC key":     {HMACKey: k.hmac},
	} {
		if rep, err := forensic.Verify(bytes.NewReader(b), o); err != nil {
			t.Errorf("%s: %v %+v", name, err, rep)
		}
	}
}

func member[T any](tb testing.TB, b []byte, name string) T {
	tb.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(m[name], &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestWrite_Mutations: a bundle written from a source that breaks its
// contract (a snapshot that is not complete), signed with the wrong key,
// or edited after it was written fails verification, and the problems
// name what is wrong.
func TestWrite_Mutations(t *testing.T) {
	k := mustKeys(t, "warden.test/mutations")
	other := mustKeys(t, "warden.test/mutations")
	cases := []struct {
		name   string
		before func(*memSource, *forensic.Header, *forensic.Keys) // before Write
		after  func([]byte) []byte                                // on the written bundle
		want   []string
	}{
		{name: "source leaves out an incident",
			before: func(s *memSource, _ *forensic.Header, _ *forensic.Keys) { s.incidents = s.incidents[1:] },
			want: []string{
				"but is missing from the bundle",
				"system_state.total_incidents is 3; recomputed from the bundle's incidents: 2",
			}},
		{name: "source leaves out an anchored audit entry",
			before: func(s *memSource, _ *forensic.Header, _ *forensic.Keys) {
				s.receipts = slices.DeleteFunc(s.receipts, func(r *warden.Receipt) bool { return r.Type == "containment_recorded" })
			},
			want: []string{"audit entries do not rebuild the checkpoint's incident scroll root (3 entries, checkpoint says 4)"}},
		{name: "source yields an incident as it was before its last receipt",
			before: func(s *memSource, _ *forensic.Header, _ *forensic.Keys) {
				b := *s.incidents[1]
				b.State = warden.StateOpen
				s.incidents[1] = &b
			},
			want: []string{"differs from its latest receipted state", "system_state.resolved_count is 1; recomputed from the bundle's incidents: 0"}},
		{name: "bundle note signed with another ledger key",
			before: func(_ *memSource, _ *forensic.Header, kk *forensic.Keys) { kk.Signer = other.signer },
			want:   []string{"bundle_note signature does not verify"}},
		{name: "signed with another forensic key",
			before: func(_ *memSource, _ *forensic.Header, kk *forensic.Keys) { kk.HMAC = other.hmac },
			want:   []string{"HMAC signature does not match bundle_hash"}},
		{name: "incident edited after writing",
			after: func(b []byte) []byte {
				i := bytes.Index(b, []byte(`"incidents":[`))
				return append(b[:i:i], bytes.Replace(b[i:], []byte("blocked egress 2"), []byte("blocked egress X"), 1)...)
			},
			want: []string{"bundle_hash does not match the content", "differs from its latest receipted state"}},
		{name: "policy digest edited after writing",
			after: func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"sha256:abab`), []byte(`"sha256:0bab`), 1)
			},
			want: []string{"bundle_hash does not match the content"}},
		{name: "inclusion proofs emptied after writing",
			after: func(b []byte) []byte {
				i := bytes.Index(b, []byte(`,"inclusion_proofs":[`))
				return append(b[:i:i], `,"inclusion_proofs":[]}`...)
			},
			want: []string{"audit entry seq 1 has no valid inclusion proof", "audit entry seq 5 has no valid inclusion proof"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, h := mustLog(t, k, nil)
			kk := k.keys()
			if tc.before != nil {
				tc.before(src, &h, &kk)
			}
			b, _ := mustWrite(t, src, h, kk)
			if tc.after != nil {
				b = tc.after(b)
			}
			rep, err := forensic.Verify(bytes.NewReader(b), k.opts())
			if !errors.Is(err, forensic.ErrTampered) {
				t.Fatalf("mutated bundle verified: %v %+v", err, rep)
			}
			all := strings.Join(rep.Problems, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems lack %q:\n%s", w, all)
				}
			}
		})
	}
}

var errSource = errors.New("source failed")

// failingSource fails the n-th call of any of its methods.
type failingSource struct {
	*memSource
	n, calls int
}

func (s *failingSource) fail() bool { s.calls++; return s.calls == s.n }

func (s *failingSource) AuditEntries(fn func(*warden.Receipt) error) error {
	if s.fail() {
		return errSource
	}
	return s.memSource.AuditEntries(fn)
}

func (s *failingSource) Incidents(fn func(*warden.Incident) error) error {
	if s.fail() {
		return errSource
	}
	return s.memSource.Incidents(fn)
}

func (s *failingSource) MerkleHashes(ids []warden.NodeID) ([][]byte, error) {
	if s.fail() {
		return nil, errSource
	}
	return s.memSource.MerkleHashes(ids)
}

// failingWriter accepts n bytes, then fails.
type failingWriter struct{ n int }

var errWriter = errors.New("writer failed")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errWriter
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWrite_Errors: Write refuses, writing nothing, a bundle it cannot
// sign or whose checkpoint disagrees with system_state, and passes on the
// first error of its source or its writer, wrapped, whether the writer
// fails while the content streams or at the final flush.
func TestWrite_Errors(t *testing.T) {
	k := mustKeys(t, "warden.test/errors")
	// A first incident larger than the 64 KiB buffer, so the content
	// reaches the writer before the flush.
	src, h := mustLog(t, k, func(i *warden.Incident) { i.Description = strings.Repeat("x", 70_000) })
	good, _ := mustWrite(t, src, h, k.keys())
	cases := []struct {
		name string
		w    io.Writer
		src  forensic.Source
		edit func(*forensic.Header, *forensic.Keys)
		is   error  // errors.Is
		text string // the error contains it, and nothing was written
	}{
		{name: "no HMAC key", edit: func(_ *forensic.Header, kk *forensic.Keys) { kk.HMAC = nil }, text: "signing keys not configured"},
		{name: "no signer", edit: func(_ *forensic.Header, kk *forensic.Keys) { kk.Signer = nil }, text: "signing keys not configured"},
		{name: "no checkpoint", edit: func(hh *forensic.Header, _ *forensic.Keys) { hh.Checkpoint = nil }, text: "no checkpoint"},
		{name: "checkpoint_size is not the checkpoint's", edit: func(hh *forensic.Header, _ *forensic.Keys) { hh.SystemState.CheckpointSize++ },
			text: "system_state.checkpoint_size is 7, the checkpoint's size 6"},
		{name: "audit entries fail", src: &failingSource{memSource: src, n: 1}, is: errSource},
		{name: "incidents fail", src: &failingSource{memSource: src, n: 2}, is: errSource},
		{name: "second pass over the audit entries fails", src: &failingSource{memSource: src, n: 3}, is: errSource},
		{name: "Merkle hashes fail", src: &failingSource{memSource: src, n: 4}, is: errSource},
		{name: "writer fails in the content", w: &failingWriter{n: 0}, is: errWriter},
		{name: "writer fails at the flush", w: &failingWriter{n: len(good) - 1}, is: errWriter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hh, kk := h, k.keys()
			if tc.edit != nil {
				tc.edit(&hh, &kk)
			}
			s := forensic.Source(src)
			if tc.src != nil {
				s = tc.src
			}
			var buf bytes.Buffer
			w := io.Writer(&buf)
			if tc.w != nil {
				w = tc.w
			}
			sum, err := forensic.Write(w, s, hh, kk)
			switch {
			case err == nil:
				t.Fatalf("wrote a bundle: %+v", sum)
			case sum != nil:
				t.Errorf("summary with an error: %+v", sum)
			case !strings.HasPrefix(err.Error(), "forensic.Write: "):
				t.Errorf("error %q does not name forensic.Write", err)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Errorf("error %v is not %v", err, tc.is)
			case tc.text != "" && !strings.Contains(err.Error(), tc.text):
				t.Errorf("error %q lacks %q", err, tc.text)
			}
			if tc.text != "" && buf.Len() > 0 {
				t.Errorf("wrote %d bytes before refusing", buf.Len())
			}
		})
	}
}

// TestWrite_MatchesEngineExport: the recorder's export, whose Source pages
// through the incident scroll, writes exactly the bytes Write writes from a
// Source that scans the whole log for incident receipts: the recorder's
// Source leaves nothing out and adds nothing. (Before the recorder used
// Write, this compared Write with the engine's own hand-written export.)
func TestWrite_MatchesEngineExport(t *testing.T) {
	env, want := bundle(t)
	var got bytes.Buffer
	err := env.Store.View(context.Background(), func(tx warden.ReadTx) error {
		cp, err := tx.LatestCheckpoint()
		if err != nil {
			return err
		}
		at, err := time.Parse(warden.TimeFormat, member[string](t, want, "exported_at"))
		if err != nil {
			return err
		}
		h := forensic.Header{
			ExportedAt:   at,
			PolicyDigest: member[string](t, want, "policy_digest"),
			SystemState:  member[forensic.SystemState](t, want, "system_state"),
			PublicKey:    env.Core.PublicKey(),
			Checkpoint:   cp,
		}
		_, err = forensic.Write(&got, txSource{tx}, h, forensic.Keys{HMAC: env.Dir.HMACKey, Signer: env.Dir.Signer})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got.Bytes()) {
		i := 0
		for i < min(len(want), got.Len()) && want[i] == got.Bytes()[i] {
			i++
		}
		t.Fatalf("bundles differ at byte %d of %d/%d:\nengine: %q\nWrite:  %q", i, len(want), got.Len(),
			want[max(0, i-40):min(len(want), i+40)], got.Bytes()[max(0, i-40):min(got.Len(), i+40)])
	}
}

// txSource reads a bundle from a store snapshot, as the engine does.
type txSource struct{ warden.ReadTx }

func (s txSource) AuditEntries(fn func(*warden.Receipt) error) error {
	return s.ScanReceipts(0, func(r *warden.Receipt) error {
		if r.Scroll != warden.ScrollIncident {
			return nil
		}
		return fn(r)
	})
}

func (s txSource) Incidents(fn func(*warden.Incident) error) error {
	return s.ReadTx.Incidents(warden.IncidentFilter{}, fn)
}

// FuzzWrite: whatever an incident, the policy digest and the export time
// hold, the bundle Write makes of them verifies: Write's encoding and
// Verify's hashing agree on every string.
func FuzzWrite(f *testing.F) {
	k := mustKeys(f, "warden.test/fuzz")
	f.Add("blocked egress", "example.com", "sha256:00", int64(1773489600))
	f.Add("\u2028<>&\"\\\x00é𝄞", "\xff\xfe", "", int64(-62135596800))
	f.Add(strings.Repeat("x", 1000), "\t\n", "sha256:\u00e9", int64(253402300800))
	f.Fuzz(func(t *testing.T, desc, evidence, digest string, at int64) {
		src, h := mustLog(t, k, func(i *warden.Incident) {
			i.Description = desc
			i.Evidence = map[string]string{evidence: evidence}
		})
		h.PolicyDigest = digest
		h.ExportedAt = time.Unix(at, 0)
		var buf bytes.Buffer
		sum, err := forensic.Write(&buf, src, h, k.keys())
		if err != nil {
			t.Skip(err) // not representable in a receipt at all
		}
		rep, err := forensic.Verify(bytes.NewReader(buf.Bytes()), k.opts())
		if err != nil {
			t.Fatalf("written bundle does not verify: %v", err)
		}
		if rep.BundleHash != sum.BundleHash {
			t.Fatalf("report hash %s, summary %s", rep.BundleHash, sum.BundleHash)
		}
	})
}
