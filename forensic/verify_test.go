package forensic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
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
	for i := 0; i < 4; i++ {
		inc, err := env.Engine.ReportIncident(ctx, admin, engine.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Source: "airlock", Description: "blocked egress " + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, inc.ID)
		env.Clock.Advance(61e9)
	}
	if _, err := env.Engine.ResolveIncident(ctx, admin, ids[0]); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sum, err := env.Engine.ExportForensic(ctx, admin, &buf, "test")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Incidents != 4 || sum.AuditEntries < 5 || sum.Proofs != sum.AuditEntries {
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

func TestBundleVerifies(t *testing.T) {
	env, b := bundle(t)
	rep, err := forensic.Verify(bytes.NewReader(b), opts(t, env))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.HMACChecked || rep.EmbeddedKey || rep.Incidents != 4 || rep.Proofs != rep.AuditEntries {
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
	// Without keys it still verifies, with the embedded key, and says so.
	rep, err = forensic.Verify(bytes.NewReader(b), forensic.Options{})
	if err != nil || !rep.EmbeddedKey || rep.HMACChecked {
		t.Fatalf("no keys: %+v %v", rep, err)
	}
	// Pretty-printed (jq .) still verifies: only canonical content counts.
	var pretty bytes.Buffer
	json.Indent(&pretty, b, "", "  ")
	if _, err := forensic.Verify(&pretty, opts(t, env)); err != nil {
		t.Fatalf("pretty-printed bundle: %v", err)
	}
}

func TestBundleTamperIsNamed(t *testing.T) {
	env, b := bundle(t)
	other := wardentest.MustEnv(t)
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		opts   func() forensic.Options
		want   []string
	}{
		{"incident description edited", func(b []byte) []byte {
			return inIncidents(b, `"description":"blocked egress b"`, `"description":"blocked egress X"`)
		}, nil, []string{"bundle_hash does not match", "differs from its latest receipted state"}},
		{"incident state edited and hash recomputed", func(b []byte) []byte {
			return rehash(t, inIncidents(b, `"state":"resolved"`, `"state":"open"`))
		}, nil, []string{"HMAC signature does not match", "bundle_note signs a different bundle hash", "differs from its latest receipted state"}},
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
