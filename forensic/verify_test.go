package forensic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/forensic"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/wardentest"
)

var admin = &warden.Principal{Name: "t", Roles: []warden.Role{warden.RoleAdmin}}

// bundle reports a few incidents (alert-only classes: no targets needed),
// resolves one, and exports a forensic bundle.
func bundle(t testing.TB) (*wardentest.Env, []byte) {
	t.Helper()
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	var ids []string
	for i, sev := range []string{"medium", "low", "high", "medium"} {
		inc, err := env.Recorder.ReportIncident(ctx, admin, recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Severity: sev, SeverityReason: "test", Source: "airlock", Description: "blocked egress " + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, inc.ID)
		env.Clock.Advance(61e9)
	}
	if _, err := env.Recorder.ResolveIncident(ctx, admin, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Recorder.AcknowledgeIncident(ctx, admin, ids[3]); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sum, err := env.Recorder.ExportForensic(ctx, admin, &buf, "test")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Incidents != 4 || sum.AuditEntries < 6 || sum.Proofs != sum.AuditEntries {
		t.Fatalf("summary %+v", sum)
	}
	return env, buf.Bytes()
}

func opts(t testing.TB, env *wardentest.Env) forensic.Options {
	known, _, err := ledger.ParseVerifiers([]byte(env.Dir.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return forensic.Options{HMACKey: env.Dir.HMACKey, Verifiers: known}
}

// TestForensicBundle_ExportAndVerify is the runbook's verification flow:
// export a bundle, recompute its hash independently, verify it with the
// keys. Without any key verification is refused; with the embedded key only
// when asked for, and the report says so.
func TestForensicBundle_ExportAndVerify(t *testing.T) {
	env, b := bundle(t)
	rep, err := forensic.Verify(bytes.NewReader(b), opts(t, env))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.HMACChecked || !rep.SignaturesChecked || rep.EmbeddedKey || rep.Incidents != 4 || rep.Proofs != rep.AuditEntries {
		t.Fatalf("report %+v", rep)
	}
	// The bundle hash is SHA-256 over the canonical five members: an
	// independent recomputation from the parsed bundle agrees.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	content := map[string]json.RawMessage{}
	for _, k := range []string{"exported_at", "incidents", "audit_entries", "system_state", "policy_digest"} {
		content[k] = m[k]
	}
	c, err := ledger.Canonical(content)
	if err != nil {
		t.Fatal(err)
	}
	var hash string
	json.Unmarshal(m["bundle_hash"], &hash)
	if got := sha256hex(c); got != hash {
		t.Fatalf("independent bundle hash %s != %s", got, hash)
	}
	// The system_state the checks recompute is the server's own.
	var state forensic.SystemState
	json.Unmarshal(m["system_state"], &state)
	want := forensic.SystemState{TotalIncidents: 4, OpenIncidents: 2, ResolvedCount: 1,
		ByClass: map[string]int64{warden.ClassForbiddenAirlockRequest: 4}, OpenBySeverity: map[string]int64{"low": 1, "high": 1}}
	if state.TotalIncidents != want.TotalIncidents || state.OpenIncidents != want.OpenIncidents || state.ResolvedCount != want.ResolvedCount ||
		!maps.Equal(state.ByClass, want.ByClass) || !maps.Equal(state.OpenBySeverity, want.OpenBySeverity) || state.CheckpointSize == 0 {
		t.Fatalf("system_state %+v, want counters %+v", state, want)
	}
	// No key at all: refused, not "verified".
	if _, err := forensic.Verify(bytes.NewReader(b), forensic.Options{}); !errors.Is(err, forensic.ErrNoKey) {
		t.Fatalf("no keys: %v", err)
	}
	// The embedded key only when asked, and the report says so.
	rep, err = forensic.Verify(bytes.NewReader(b), forensic.Options{TrustEmbeddedKey: true})
	if err != nil || !rep.EmbeddedKey || !rep.SignaturesChecked || rep.HMACChecked || rep.Proofs != rep.AuditEntries {
		t.Fatalf("embedded key: %+v %v", rep, err)
	}
	// The HMAC key alone: the signatures are not checked with the embedded
	// key behind the caller's back.
	rep, err = forensic.Verify(bytes.NewReader(b), forensic.Options{HMACKey: env.Dir.HMACKey})
	if err != nil || rep.EmbeddedKey || rep.SignaturesChecked || !rep.HMACChecked || rep.Proofs != 0 {
		t.Fatalf("HMAC only: %+v %v", rep, err)
	}
	// Pretty-printed (jq .) still verifies: only canonical content counts.
	var pretty bytes.Buffer
	json.Indent(&pretty, b, "", "  ")
	if _, err := forensic.Verify(&pretty, opts(t, env)); err != nil {
		t.Fatalf("pretty-printed bundle: %v", err)
	}
}

// TestForensicBundle_TamperDetection: every modification of the bundle
// (changing an incident id, dropping an incident, editing system_state…)
// fails verification, and the problems name what was changed.
func TestForensicBundle_TamperDetection(t *testing.T) {
	env, b := bundle(t)
	other := wardentest.MustEnv(t)
	incs := incidents(t, b)
	state := systemState(t, b)
	// incs is in listing order: high, medium (acknowledged), medium
	// (resolved), low. Each incident's last snapshot receipt:
	last := lastSnapshotSeq(t, b)
	dropped := incs[1].ID
	hmacOnly := func() forensic.Options { return forensic.Options{HMACKey: env.Dir.HMACKey} }
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		opts   func() forensic.Options
		want   []string
	}{
		{"incident id changed", func(b []byte) []byte {
			return inIncidents(b, `"id":"`+incs[0].ID+`"`, `"id":"INC-20990101-000000-9999"`)
		}, nil, []string{
			"bundle_hash does not match",
			"incident INC-20990101-000000-9999 has no receipt among the audit entries",
			fmt.Sprintf("incident %s has receipts up to seq %d but is missing from the bundle", incs[0].ID, last[incs[0].ID]),
		}},
		{"incident description edited", func(b []byte) []byte {
			return inIncidents(b, `"description":"blocked egress b"`, `"description":"blocked egress X"`)
		}, nil, []string{"bundle_hash does not match", "differs from its latest receipted state"}},
		{"incident state edited and hash recomputed", func(b []byte) []byte {
			return rehash(t, inIncidents(b, `"state":"resolved"`, `"state":"open"`))
		}, nil, []string{"HMAC signature does not match", "bundle_note signs a different bundle hash", "differs from its latest receipted state",
			"system_state.open_incidents is 2; recomputed from the bundle's incidents: 3",
			"system_state.resolved_count is 1; recomputed from the bundle's incidents: 0",
			"system_state.open_by_severity.medium is 0; recomputed from the bundle's incidents: 1"}},
		{"incident dropped", func(b []byte) []byte { return dropIncident(t, b, dropped) }, nil, []string{
			"bundle_hash does not match",
			fmt.Sprintf("incident %s has receipts up to seq %d but is missing from the bundle", dropped, last[dropped]),
			"system_state.total_incidents is 4; recomputed from the bundle's incidents: 3",
			"system_state.by_class.forbidden_airlock_request is 4; recomputed from the bundle's incidents: 3",
		}},
		{"incident dropped, counters adjusted, hash recomputed, HMAC key only", func(b []byte) []byte {
			b = dropIncident(t, b, dropped)
			b = editState(t, b, func(s map[string]any) {
				s["total_incidents"] = 3
				s["by_class"] = map[string]int{warden.ClassForbiddenAirlockRequest: 3}
			})
			return rehash(t, b)
		}, hmacOnly, []string{
			"HMAC signature does not match",
			fmt.Sprintf("incident %s has receipts up to seq %d but is missing from the bundle", dropped, last[dropped]),
		}},
		{"incident not an incident record", func(b []byte) []byte {
			return inIncidents(b, `"number":`, `"number":"x","was":`)
		}, nil, []string{"incident 0 is not an incident record"}},
		{"system_state total_incidents edited", stateEdit(t, "total_incidents", 5), nil,
			[]string{"system_state.total_incidents is 5; recomputed from the bundle's incidents: 4"}},
		{"system_state open_incidents edited", stateEdit(t, "open_incidents", 0), nil,
			[]string{"system_state.open_incidents is 0; recomputed from the bundle's incidents: 2"}},
		{"system_state contained_count edited", stateEdit(t, "contained_count", 7), nil,
			[]string{"system_state.contained_count is 7; recomputed from the bundle's incidents: 0"}},
		{"system_state resolved_count edited", stateEdit(t, "resolved_count", 0), nil,
			[]string{"system_state.resolved_count is 0; recomputed from the bundle's incidents: 1"}},
		{"system_state by_class edited", stateEdit(t, "by_class", map[string]int{warden.ClassForbiddenAirlockRequest: 4, warden.ClassPromptInjection: 2}), nil,
			[]string{"system_state.by_class.prompt_injection is 2; recomputed from the bundle's incidents: 0"}},
		{"system_state open_by_severity edited", stateEdit(t, "open_by_severity", map[string]int{"low": 1}), nil,
			[]string{"system_state.open_by_severity.high is 0; recomputed from the bundle's incidents: 1"}},
		{"system_state checkpoint_size edited", stateEdit(t, "checkpoint_size", state.CheckpointSize+5), nil,
			[]string{fmt.Sprintf("system_state.checkpoint_size is %d; recomputed from the checkpoint: %d", state.CheckpointSize+5, state.CheckpointSize)}},
		{"system_state origin edited", stateEdit(t, "origin", "elsewhere"), nil,
			[]string{fmt.Sprintf("system_state.origin is elsewhere; recomputed from the checkpoint: %s", state.Origin)}},
		{"system_state log_size below the checkpoint", stateEdit(t, "log_size", state.CheckpointSize-1), nil,
			[]string{fmt.Sprintf("system_state.log_size is %d, but the checkpoint covers %d entries", state.CheckpointSize-1, state.CheckpointSize)}},
		{"system_state log_size below the last audit entry, HMAC key only", stateEdit(t, "log_size", 1), hmacOnly,
			[]string{"HMAC signature does not match", "system_state.log_size is 1, but audit entry seq"}},
		{"inclusion proof hash flipped", withProofs(t, func(ps []forensic.Proof) []forensic.Proof {
			ps[1].Hashes[0][0] ^= 1
			return ps
		}), nil, []string{fmt.Sprintf("audit entry seq %d: inclusion proof fails", proofSeq(t, b, 1))}},
		{"inclusion proof removed", withProofs(t, func(ps []forensic.Proof) []forensic.Proof { return append(ps[:1], ps[2:]...) }), nil,
			[]string{fmt.Sprintf("audit entry seq %d has no valid inclusion proof", proofSeq(t, b, 1))}},
		{"inclusion proof for another tree size", withProofs(t, func(ps []forensic.Proof) []forensic.Proof {
			ps[0].TreeSize++
			return ps
		}), nil, []string{fmt.Sprintf("inclusion proof for seq %d is for tree size", proofSeq(t, b, 0))}},
		{"audit entry removed", func(b []byte) []byte { return dropAudit(t, b, 2) }, nil,
			[]string{"do not rebuild the checkpoint's incident scroll root"}},
		{"audit entry body edited", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`blocked egress c`), []byte(`blocked egress Z`), 1)
		}, nil, []string{"body does not match root_hash"}},
		{"wrong HMAC key", func(b []byte) []byte { return b }, func() forensic.Options {
			o := opts(t, env)
			o.HMACKey = other.Dir.HMACKey
			return o
		}, []string{"HMAC signature does not match"}},
		{"wrong public key", func(b []byte) []byte { return b }, func() forensic.Options { return opts(t, other) },
			[]string{"bundle_note signature does not verify", "checkpoint does not verify"}},
		{"signature replaced", func(b []byte) []byte {
			var m map[string]json.RawMessage
			json.Unmarshal(b, &m)
			return bytes.Replace(b, m["signature"], []byte(`"`+strings.Repeat("0", 64)+`"`), 1)
		}, nil, []string{"HMAC signature does not match"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(t, env)
			if tc.opts != nil {
				o = tc.opts()
			}
			rep, err := forensic.Verify(bytes.NewReader(tc.mutate(bytes.Clone(b))), o)
			if !errors.Is(err, forensic.ErrTampered) {
				t.Fatalf("tampered bundle verified: %v %+v", err, rep)
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

func incidents(t *testing.T, b []byte) []warden.Incident {
	t.Helper()
	var m struct{ Incidents []warden.Incident }
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Incidents
}

func systemState(t *testing.T, b []byte) forensic.SystemState {
	t.Helper()
	var m struct {
		State forensic.SystemState `json:"system_state"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.State
}

// lastSnapshotSeq maps each incident id to the seq of its last receipt
// carrying its snapshot.
func lastSnapshotSeq(t *testing.T, b []byte) map[string]uint64 {
	t.Helper()
	var m struct {
		Entries []warden.Receipt `json:"audit_entries"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{}
	for _, r := range m.Entries {
		var body struct{ Incident *warden.Incident }
		if json.Unmarshal(r.Body, &body) == nil && body.Incident != nil {
			last[body.Incident.ID] = r.Seq
		}
	}
	return last
}

// dropIncident removes the incident with id from the incidents member.
func dropIncident(t *testing.T, b []byte, id string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var incs []json.RawMessage
	json.Unmarshal(m["incidents"], &incs)
	n := len(incs)
	incs = slices.DeleteFunc(incs, func(raw json.RawMessage) bool {
		var i struct{ ID string }
		json.Unmarshal(raw, &i)
		return i.ID == id
	})
	if len(incs) != n-1 {
		t.Fatalf("incident %s not in the bundle once", id)
	}
	m["incidents"], _ = json.Marshal(incs)
	out, _ := json.Marshal(m)
	return out
}

// editState rewrites the system_state member with fn.
func editState(t *testing.T, b []byte, fn func(map[string]any)) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(m["system_state"], &s); err != nil {
		t.Fatal(err)
	}
	fn(s)
	m["system_state"], _ = json.Marshal(s)
	out, _ := json.Marshal(m)
	return out
}

// stateEdit sets one system_state field and recomputes bundle_hash, as an
// attacker without the keys would.
func stateEdit(t *testing.T, field string, v any) func([]byte) []byte {
	return func(b []byte) []byte {
		return rehash(t, editState(t, b, func(s map[string]any) { s[field] = v }))
	}
}

// rehash recomputes bundle_hash as an attacker without the keys would.
func rehash(t *testing.T, b []byte) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	content := map[string]json.RawMessage{}
	for _, k := range []string{"exported_at", "incidents", "audit_entries", "system_state", "policy_digest"} {
		content[k] = m[k]
	}
	c, _ := ledger.Canonical(content)
	return bytes.Replace(b, m["bundle_hash"], []byte(`"`+sha256hex(c)+`"`), 1)
}

func dropAudit(t *testing.T, b []byte, i int) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var entries []json.RawMessage
	json.Unmarshal(m["audit_entries"], &entries)
	entries = append(entries[:i], entries[i+1:]...)
	m["audit_entries"], _ = json.Marshal(entries)
	out, _ := json.Marshal(m)
	return out
}

func FuzzVerify(f *testing.F) {
	env, b := bundle(f)
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"audit_entries":[{}],"exported_at":1}`))
	o := opts(f, env)
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := forensic.Verify(bytes.NewReader(data), o)
		if err == nil && rep.BundleHash == "" {
			t.Fatalf("verified without a bundle hash")
		}
		if err == nil && !bytes.Equal(data, b) {
			// Only re-serialisations of the real bundle may verify.
			var a, c any
			if json.Unmarshal(data, &a) != nil || json.Unmarshal(b, &c) != nil {
				t.Fatalf("accepted non-JSON")
			}
			ca, _ := ledger.Canonical(a)
			cb, _ := ledger.Canonical(c)
			if !bytes.Equal(ca, cb) {
				t.Fatalf("accepted a different bundle")
			}
		}
	})
}

// inIncidents replaces old with new inside the incidents member only.
func inIncidents(b []byte, old, new string) []byte {
	i := bytes.Index(b, []byte(`"incidents":[`))
	return append(bytes.Clone(b[:i]), bytes.Replace(b[i:], []byte(old), []byte(new), 1)...)
}

// withProofs returns a mutation that rewrites the bundle's trailing
// inclusion_proofs member (outside the hashed content) with mutate.
func withProofs(t *testing.T, mutate func([]forensic.Proof) []forensic.Proof) func([]byte) []byte {
	return func(b []byte) []byte {
		t.Helper()
		const key = `,"inclusion_proofs":`
		i := bytes.LastIndex(b, []byte(key))
		if i < 0 || !bytes.HasSuffix(bytes.TrimSpace(b), []byte("}")) {
			t.Fatal("bundle has no trailing inclusion_proofs")
		}
		end := bytes.LastIndexByte(b, '}')
		var ps []forensic.Proof
		if err := json.Unmarshal(b[i+len(key):end], &ps); err != nil {
			t.Fatal(err)
		}
		if len(ps) < 3 {
			t.Fatalf("only %d inclusion proofs", len(ps))
		}
		out, err := json.Marshal(mutate(ps))
		if err != nil {
			t.Fatal(err)
		}
		return append(append(append(b[:i:i], key...), out...), '}')
	}
}

// proofSeq returns the seq of the bundle's i-th inclusion proof.
func proofSeq(t *testing.T, b []byte, i int) uint64 {
	t.Helper()
	var m struct {
		Proofs []forensic.Proof `json:"inclusion_proofs"`
	}
	if err := json.Unmarshal(b, &m); err != nil || len(m.Proofs) <= i {
		t.Fatalf("inclusion proofs: %v", err)
	}
	return m.Proofs[i].Seq
}
