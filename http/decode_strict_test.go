package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	wardenhttp "github.com/warden-sh/warden/http"
	"github.com/warden-sh/warden/wardentest"
)

// strictReply is a response to POST /api/v1/incidents/report: an incident
// or a refusal.
type strictReply struct {
	Status   int
	Code     string            `json:"code"`
	Error    string            `json:"error"`
	Evidence map[string]string `json:"evidence"`
}

// postReport sends body with the given Content-Type (none if "").
func postReport(t *testing.T, base, token, contentType, body string) strictReply {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/api/v1/incidents/report", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := strictReply{Status: resp.StatusCode}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("status %d, not JSON: %q", resp.StatusCode, data)
	}
	return r
}

// mustRefuse fails unless r is a 400 with code and a message saying want,
// and nothing was written.
func mustRefuse(t *testing.T, env *wardentest.Env, receiptsBefore int, r strictReply, code, want string) {
	t.Helper()
	if r.Status != http.StatusBadRequest || r.Code != code || !strings.Contains(r.Error, want) {
		t.Fatalf("got %d %s %q, want 400 %s saying %q", r.Status, r.Code, r.Error, code, want)
	}
	if after := len(env.MustReceipts(t, warden.ReceiptFilter{})); after != receiptsBefore {
		t.Fatalf("a refused request wrote %d receipts", after-receiptsBefore)
	}
}

const strictValid = `{"class":"tool_call_burst","source":"agent-1","description":"burst"`

// TestStrictBodies: what the decoder would otherwise repair or drop (invalid
// UTF-8, unpaired surrogate escapes, nested duplicate keys) is a 400
// invalid naming the rule, and writes nothing; near misses are stored
// exactly as sent.
func TestStrictBodies(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	refused := []struct{ name, body, want string }{
		{"invalid UTF-8", strictValid + ",\"evidence\":{\"k\":\"\xff\xfe\"}}", "The request is not valid UTF-8 (byte offset"},
		{"invalid UTF-8 in description", `{"class":"tool_call_burst","source":"agent-1","description":"` + "\xc0\xaf" + `"}`, "not valid UTF-8"},
		{"lone high surrogate", strictValid + `,"evidence":{"k":"\ud800"}}`, `String escape \ud800 at byte offset`},
		{"lone low surrogate", strictValid + `,"evidence":{"k":"\udc00"}}`, "unpaired UTF-16 surrogate"},
		{"nested duplicate key", strictValid + `,"evidence":{"a":"1","a":"2"}}`, `The request has duplicate key "a" in evidence.`},
		{"top-level duplicate key", strictValid + `,"source":"agent-2"}`, `The request has duplicate key "source".`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := len(env.MustReceipts(t, warden.ReceiptFilter{}))
			mustRefuse(t, env, before, postReport(t, base, env.Admin, "application/json", tc.body), warden.EINVALID, tc.want)
		})
	}
	if st := env.MustStats(t); st.TotalIncidents != 0 {
		t.Fatalf("refused bodies created incidents: %+v", st)
	}
	// Near misses are kept byte for byte.
	r := postReport(t, base, env.Admin, "application/json",
		strictValid+`,"evidence":{"pair":"\ud83d\ude00","raw":"é😀`+"\xef\xbf\xbd"+`","escaped":"\ufffd","a":"1","A":"2"}}`)
	want := map[string]string{"pair": "😀", "raw": "é😀\uFFFD", "escaped": "\uFFFD", "a": "1", "A": "2"}
	if r.Status != http.StatusCreated {
		t.Fatalf("near misses refused: %d %s", r.Status, r.Error)
	}
	if diff := cmp.Diff(want, r.Evidence); diff != "" {
		t.Fatalf("stored evidence (-sent +stored):\n%s", diff)
	}
}

// TestContentType: the media type must be application/json exactly (any
// case, any parameters), and a charset, if given, utf-8; no Content-Type at
// all is accepted as before.
func TestContentType(t *testing.T) {
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	body := strictValid + "}"
	cases := []struct {
		contentType string
		want        string // "" = accepted
	}{
		{"application/json", ""},
		{"", ""},
		{"application/json; charset=utf-8", ""},
		{"Application/JSON; Charset=UTF-8", ""},
		{`application/json;charset="utf-8"`, ""},
		{"application/json; foo=bar", ""},
		{"application/jsonx", `Content-Type must be application/json, not "application/jsonx".`},
		{"application/json-seq", "Content-Type must be application/json"},
		{"application/json+x; charset=utf-8", "Content-Type must be application/json"},
		{"text/plain", "Content-Type must be application/json"},
		{"application/x-www-form-urlencoded", "Content-Type must be application/json"},
		{"application/json; charset", "Content-Type must be application/json"},
		{"application/json; charset=utf-8; charset=latin1", "Content-Type must be application/json"},
		{"application/json; charset=latin1", `Content-Type charset must be utf-8, not "latin1".`},
		{"application/json; charset=utf-16", "Content-Type charset must be utf-8"},
	}
	for _, tc := range cases {
		t.Run(tc.contentType, func(t *testing.T) {
			before := len(env.MustReceipts(t, warden.ReceiptFilter{}))
			r := postReport(t, base, env.Admin, tc.contentType, body)
			if tc.want == "" {
				if r.Status != http.StatusCreated {
					t.Fatalf("refused: %d %s %q", r.Status, r.Code, r.Error)
				}
				return
			}
			mustRefuse(t, env, before, r, warden.EINVALID, tc.want)
		})
	}
}

// TestBodyLimitBoundary: a body of exactly MaxBodyBytes (64 KiB) is read
// and accepted; one byte more is too_large. The padding is whitespace
// after the object, so only the size differs.
func TestBodyLimitBoundary(t *testing.T) {
	if wardenhttp.MaxBodyBytes != 65536 {
		t.Fatalf("MaxBodyBytes = %d, the documented limit is 64 KiB", wardenhttp.MaxBodyBytes)
	}
	env := wardentest.MustEnv(t)
	base, _ := env.MustServer(t)
	pad := func(n int) string {
		return strictValid + "}" + strings.Repeat(" ", n-len(strictValid)-1)
	}
	at := pad(wardenhttp.MaxBodyBytes)
	if len(at) != 65536 {
		t.Fatalf("body is %d bytes", len(at))
	}
	if r := postReport(t, base, env.Admin, "application/json", at); r.Status != http.StatusCreated {
		t.Fatalf("65,536-byte body: %d %s %q, want 201", r.Status, r.Code, r.Error)
	}
	before := len(env.MustReceipts(t, warden.ReceiptFilter{}))
	r := postReport(t, base, env.Admin, "application/json", pad(wardenhttp.MaxBodyBytes+1))
	mustRefuse(t, env, before, r, warden.ETOOLARGE, "Request body exceeds 65536 bytes.")
}
