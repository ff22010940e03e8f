package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	wardenhttp "github.com/warden-sh/warden/http"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/wardentest"
	"golang.org/x/mod/sumdb/note"
)

func getJSON(t *testing.T, url, token string, wantStatus int, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d: %s", url, resp.StatusCode, wantStatus, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, data)
		}
	}
}

// TestReceiptProofsVerifyOffline fetches receipts, their inclusion proofs,
// the checkpoint and a consistency proof over HTTP, and checks all of it
// with nothing but the public key, as an outside verifier would.
func TestReceiptProofsVerifyOffline(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	reader := env.MustCredential(t, engine.CredentialSpec{Name: "auditor", Roles: []warden.Role{warden.RoleRead}})
	for i := 0; i < 20; i++ {
		env.MustCredential(t, engine.CredentialSpec{Name: "c" + string(rune('a'+i)), Roles: []warden.Role{warden.RoleRead}})
		if i == 6 {
			if _, err := env.Core.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := env.Core.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}

	var pub struct{ Pubkey string }
	getJSON(t, base+"/api/v1/pubkey", reader, 200, &pub)
	v, err := note.NewVerifier(pub.Pubkey)
	if err != nil {
		t.Fatal(err)
	}
	known := note.VerifierList(v)

	var cp struct {
		Size uint64
		Note string
	}
	getJSON(t, base+"/api/v1/checkpoint", reader, 200, &cp)
	body, err := ledger.OpenCheckpoint([]byte(cp.Note), known)
	if err != nil {
		t.Fatal(err)
	}
	if body.Size != cp.Size || cp.Size < 22 {
		t.Fatalf("checkpoint size %d / %d", body.Size, cp.Size)
	}

	for seq := uint64(0); seq < cp.Size; seq++ {
		var rp engine.ReceiptProof
		getJSON(t, base+"/api/v1/receipts/"+itoa(seq), reader, 200, &rp)
		if !rp.Anchored || rp.Proof == nil {
			t.Fatalf("receipt %d not anchored", seq)
		}
		leaf, err := ledger.CheckReceipt(rp.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := ledger.OpenCheckpoint([]byte(rp.Proof.Checkpoint), known)
		if err != nil {
			t.Fatal(err)
		}
		if err := ledger.VerifyInclusion(seq, pb.Size, leaf, rp.Proof.Hashes, pb.Root); err != nil {
			t.Fatalf("receipt %d: %v", seq, err)
		}
	}

	var cons engine.ConsistencyProof
	getJSON(t, base+"/api/v1/checkpoint/consistency?from=5&to="+itoa(cp.Size), reader, 200, &cons)
	if err := ledger.VerifyConsistency(5, cp.Size, cons.Hashes, cons.FromRoot, body.Root); err != nil {
		t.Fatal(err)
	}
	getJSON(t, base+"/api/v1/checkpoint/consistency?from=9&to=5", reader, 400, nil)
	getJSON(t, base+"/api/v1/checkpoint/consistency?from=1&to=100000", reader, 400, nil)
	getJSON(t, base+"/api/v1/checkpoint/consistency?from=1", reader, 400, nil)
	getJSON(t, base+"/api/v1/receipts/99999", reader, 404, nil)
	getJSON(t, base+"/api/v1/receipts/abc", reader, 400, nil)
}

func itoa(n uint64) string { return jsonNum(n) }

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestReceiptListFilters(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	for i := 0; i < 5; i++ {
		env.MustCredential(t, engine.CredentialSpec{Name: "r" + itoa(uint64(i)), Roles: []warden.Role{warden.RoleRead}})
	}
	type list struct {
		Receipts  []*warden.Receipt `json:"receipts"`
		Count     int               `json:"count"`
		NextAfter *uint64           `json:"next_after"`
	}
	var all list
	getJSON(t, base+"/api/v1/receipts", env.Admin, 200, &all)
	if all.Count != 6 || len(all.Receipts) != 6 {
		t.Fatalf("want 6 receipts (bootstrap + 5), got %d", all.Count)
	}
	var page list
	getJSON(t, base+"/api/v1/receipts?limit=2&after=1", env.Admin, 200, &page)
	if page.Count != 2 || page.Receipts[0].Seq != 2 || page.NextAfter == nil || *page.NextAfter != 3 {
		t.Fatalf("page: %+v", page)
	}
	var none list
	getJSON(t, base+"/api/v1/receipts?scroll=treasury", env.Admin, 200, &none)
	if none.Receipts == nil || none.Count != 0 {
		t.Fatalf("empty list must be [], got %+v", none)
	}
	var tagged list
	getJSON(t, base+"/api/v1/receipts?tag=bootstrap", env.Admin, 200, &tagged)
	if tagged.Count != 1 {
		t.Fatalf("tag filter: %d", tagged.Count)
	}
	var desc list
	getJSON(t, base+"/api/v1/receipts?order=desc&limit=1", env.Admin, 200, &desc)
	if desc.Receipts[0].Seq != 5 {
		t.Fatalf("desc: %d", desc.Receipts[0].Seq)
	}
	for _, bad := range []string{"?scroll=nope", "?limit=0", "?limit=5000", "?after=-1", "?order=sideways", "?bogus=1", "?limit=1&limit=2"} {
		getJSON(t, base+"/api/v1/receipts"+bad, env.Admin, 400, nil)
	}
}

// TestStrictJSON: unknown fields, trailing data, wrong types, empty and
// oversized bodies are 400/413 with a JSON error, and change nothing.
func TestStrictJSON(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	cases := map[string]struct {
		body   string
		status int
	}{
		"unknown field": {`{"name":"x","roles":["read"],"extra":1}`, 400},
		"trailing data": {`{"name":"x","roles":["read"]} {}`, 400},
		"trailing junk": {`{"name":"x","roles":["read"]}x`, 400},
		"wrong type":    {`{"name":5,"roles":["read"]}`, 400},
		"empty":         {``, 400},
		"not json":      {`name=x`, 400},
		"bad role":      {`{"name":"x","roles":["root"]}`, 400},
		"too large":     {`{"name":"` + strings.Repeat("a", 70<<10) + `","roles":["read"]}`, 400},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := len(env.MustReceipts(t, warden.ReceiptFilter{}))
			req, _ := http.NewRequest("POST", base+"/api/v1/credentials", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+env.Admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error, Code string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || e.Error == "" || e.Code == "" {
				t.Fatalf("status %d error %+v, want %d with a message", resp.StatusCode, e, tc.status)
			}
			if after := len(env.MustReceipts(t, warden.ReceiptFilter{})); after != before {
				t.Fatalf("a rejected request wrote %d receipts", after-before)
			}
		})
	}
}

func TestMethodNotAllowedAndNotFoundAreJSON(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	req, _ := http.NewRequest("DELETE", base+"/api/v1/receipts", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error, Code string }
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" || e.Code != "method_not_allowed" {
		t.Fatalf("405: %d %q %+v", resp.StatusCode, resp.Header.Get("Allow"), e)
	}
	getJSON(t, base+"/api/v1/nothing", env.Admin, 404, &e)
	if e.Code != warden.ENOTFOUND {
		t.Fatalf("404 code %q", e.Code)
	}
}

func TestStrictJSONKeys(t *testing.T) {
	for name, body := range map[string]string{
		"duplicate key":  `{"name":"x","name":"y","roles":["read"]}`,
		"case-folded":    `{"NAME":"x","roles":["read"]}`,
		"null":           `null`,
		"array":          `[]`,
		"nested unknown": `{"name":"x","roles":["read"],"classes":null,"source":"","zzz":0}`,
	} {
		var spec engine.CredentialSpec
		if err := wardenhttp.DecodeJSON([]byte(body), &spec); warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
	var spec engine.CredentialSpec
	if err := wardenhttp.DecodeJSON([]byte(` {"name":"x","roles":["read"]} `+"\n"), &spec); err != nil || spec.Name != "x" {
		t.Fatalf("valid body refused: %v", err)
	}
}
