package ledger_test

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"pgregory.net/rapid"
)

// fixedReceipt is a sealed receipt whose entry and hashes are hard-coded
// below. Its body hash was computed with an independent BLAKE3 (see
// TestBodyHash) and its leaf hash with
//
//	(printf '\x00'; printf '%s' "$ENTRY") | sha256sum
func fixedReceipt() *warden.Receipt {
	return &warden.Receipt{
		Seq:           7,
		SchemaVersion: "2.0.0",
		Type:          "credential_added",
		Timestamp:     "2026-01-02T03:04:05.5Z",
		Scroll:        "identity",
		Tags:          []string{"ops", `a"b`},
		RootHash:      "blake3:99bafc3e2e13b53215b9982f1049c52e5fda1bbff2b04708a3534fceb7db5693",
		Body:          json.RawMessage(`{"actor":"alice","amount":42,"note":"café ☕\n"}`),
		LeafHash:      "443ccfadb4080f598aaf4ce36edc1e066f4c78a1952e57a7b9c0d4a9b3cba9b3",
	}
}

const fixedEntry = `{"body":{"actor":"alice","amount":42,"note":"café ☕\n"},"root_hash":"blake3:99bafc3e2e13b53215b9982f1049c52e5fda1bbff2b04708a3534fceb7db5693","schema_version":"2.0.0","scroll":"identity","seq":7,"tags":["ops","a\"b"],"timestamp":"2026-01-02T03:04:05.5Z","type":"credential_added"}`

func TestEntryBytesFixed(t *testing.T) {
	r := fixedReceipt()
	entry, err := ledger.EntryBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fixedEntry, string(entry)); diff != "" {
		t.Fatalf("EntryBytes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fixedEntry, string(MustCanonicalEntry(t, r))); diff != "" {
		t.Errorf("Canonical of the entry as a map (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(r.LeafHash, hex.EncodeToString(ledger.LeafHash(entry))); diff != "" {
		t.Errorf("LeafHash (-want +got):\n%s", diff)
	}
	leaf, err := ledger.CheckReceipt(r)
	if err != nil {
		t.Fatalf("CheckReceipt of the fixed receipt: %v", err)
	}
	if diff := cmp.Diff(r.LeafHash, hex.EncodeToString(leaf)); diff != "" {
		t.Errorf("CheckReceipt leaf (-want +got):\n%s", diff)
	}
}

func TestLeafHashKnownAnswers(t *testing.T) {
	// Cross-checked with: (printf '\x00'; printf '%s' "$IN") | sha256sum
	tests := []struct{ in, want string }{
		{"", "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"}, // RFC 6962 empty leaf
		{"hello", "8a2a5c9b768827de5a9552c38a044c66959c68f6d2f21b5260af54d2f87db827"},
		{fixedEntry, "443ccfadb4080f598aaf4ce36edc1e066f4c78a1952e57a7b9c0d4a9b3cba9b3"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, hex.EncodeToString(ledger.LeafHash([]byte(tt.in)))); diff != "" {
			t.Errorf("LeafHash(%.20q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// TestNewReceiptFixed builds the fixed receipt from a draft: NewReceipt
// canonicalises the body, formats the time, seals, and yields the same
// hashes as the hard-coded ones.
func TestNewReceiptFixed(t *testing.T) {
	r, leaf, err := ledger.NewReceipt(7, warden.Draft{
		Type:   "credential_added",
		Scroll: "identity",
		Tags:   []string{"ops", `a"b`, "ops"},
		Time:   time.Date(2026, 1, 2, 4, 4, 5, 500_000_000, time.FixedZone("CET", 3600)),
		Body:   json.RawMessage("{ \"note\": \"caf\\u00e9 \\u2615\\n\", \"amount\": 42.0, \"actor\": \"alice\" }"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fixedReceipt(), r); diff != "" {
		t.Errorf("receipt (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(r.LeafHash, hex.EncodeToString(leaf)); diff != "" {
		t.Errorf("returned leaf (-want +got):\n%s", diff)
	}
}

func TestNewReceiptRejects(t *testing.T) {
	ok := warden.Draft{Type: "t", Scroll: warden.ScrollSystem, Time: time.Unix(1, 0), Body: map[string]int{"a": 1}}
	tests := []struct {
		name string
		edit func(*warden.Draft)
	}{
		{"unknown scroll", func(d *warden.Draft) { d.Scroll = "ledger" }},
		{"empty scroll", func(d *warden.Draft) { d.Scroll = "" }},
		{"empty type", func(d *warden.Draft) { d.Type = "" }},
		{"zero time", func(d *warden.Draft) { d.Time = time.Time{} }},
		{"body not JSON", func(d *warden.Draft) { d.Body = json.RawMessage("{") }},
		{"body with duplicate keys", func(d *warden.Draft) { d.Body = json.RawMessage(`{"a":1,"a":2}`) }},
		{"body NaN", func(d *warden.Draft) { d.Body = math.NaN() }},
		{"tag not UTF-8", func(d *warden.Draft) { d.Tags = []string{"\xff"} }},
		{"type not UTF-8", func(d *warden.Draft) { d.Type = "\xfe" }},
	}
	if _, _, err := ledger.NewReceipt(0, ok); err != nil {
		t.Fatalf("baseline draft: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ok
			tt.edit(&d)
			r, _, err := ledger.NewReceipt(0, d)
			if got := warden.ErrorCode(err); got != warden.EINVALID {
				t.Errorf("NewReceipt = %+v, %v; want code %s", r, err, warden.EINVALID)
			}
		})
	}
	t.Run("seq beyond 2^53", func(t *testing.T) {
		if _, _, err := ledger.NewReceipt(ledger.MaxSeq+1, ok); err == nil {
			t.Error("want an error")
		}
		if _, _, err := ledger.NewReceipt(ledger.MaxSeq, ok); err != nil {
			t.Errorf("MaxSeq: %v", err)
		}
	})
}

func TestSealNilTags(t *testing.T) {
	r := &warden.Receipt{Seq: 3, Type: "x", Timestamp: "t", Scroll: warden.ScrollDrill, Body: json.RawMessage(`{"b":1, "a":[true]}`)}
	if _, err := ledger.Seal(r); err != nil {
		t.Fatal(err)
	}
	if r.Tags == nil || len(r.Tags) != 0 {
		t.Errorf("Tags = %#v, want empty non-nil", r.Tags)
	}
	if got, want := string(r.Body), `{"a":[true],"b":1}`; got != want {
		t.Errorf("Body = %s, want %s", got, want)
	}
	if _, err := ledger.CheckReceipt(r); err != nil {
		t.Errorf("sealed receipt does not check: %v", err)
	}
}

func TestEntryBytesRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(*warden.Receipt)
	}{
		{"seq beyond 2^53", func(r *warden.Receipt) { r.Seq = ledger.MaxSeq + 1 }},
		{"seq max uint64", func(r *warden.Receipt) { r.Seq = math.MaxUint64 }},
		{"root_hash not UTF-8", func(r *warden.Receipt) { r.RootHash = "\xff" }},
		{"schema_version not UTF-8", func(r *warden.Receipt) { r.SchemaVersion = "\xff" }},
		{"scroll not UTF-8", func(r *warden.Receipt) { r.Scroll = "\xff" }},
		{"tag not UTF-8", func(r *warden.Receipt) { r.Tags = []string{"ok", "\xed\xa0\x80"} }},
		{"timestamp not UTF-8", func(r *warden.Receipt) { r.Timestamp = "\x80" }},
		{"type not UTF-8", func(r *warden.Receipt) { r.Type = "a\xc3" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fixedReceipt()
			tt.edit(r)
			if got, err := ledger.EntryBytes(r); err == nil {
				t.Errorf("EntryBytes = %s, want an error", got)
			}
		})
	}
}

// MustCanonicalEntry returns Canonical of r's entry built as a generic map:
// the definition EntryBytes must agree with.
func MustCanonicalEntry(tb rapid.TB, r *warden.Receipt) []byte {
	tb.Helper()
	tags := r.Tags
	if tags == nil {
		tags = []string{}
	}
	b, err := ledger.Canonical(map[string]any{
		"body":           r.Body,
		"root_hash":      r.RootHash,
		"schema_version": r.SchemaVersion,
		"scroll":         r.Scroll,
		"seq":            r.Seq,
		"tags":           tags,
		"timestamp":      r.Timestamp,
		"type":           r.Type,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// jsonString draws strings that stress JSON escaping: ASCII, controls, the
// escaped characters, U+2028, non-BMP runes, and arbitrary valid UTF-8.
func jsonString() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.String(),
		rapid.StringOf(rapid.RuneFrom([]rune{0, 1, '\b', '\t', '\n', '\f', '\r', 0x1f, '"', '\\', '/', 0x7f, 0x80, 0x2028, 0x2029, 0xfeff, 0xffff, 0x10000, 0x1f600, 'a', '<', '&'})),
		rapid.StringMatching(`[a-z_/]{0,12}`),
	)
}

// jsonValue draws a Go value that json.Marshal accepts, nested up to depth.
func jsonValue(depth int) *rapid.Generator[any] {
	scalars := []*rapid.Generator[any]{
		rapid.Just[any](nil),
		rapid.Bool().AsAny(),
		jsonString().AsAny(),
		rapid.Int64().AsAny(),
		rapid.Float64().Filter(func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }).AsAny(),
	}
	if depth == 0 {
		return rapid.OneOf(scalars...)
	}
	return rapid.OneOf(append(scalars,
		rapid.SliceOfN(jsonValue(depth-1), 0, 4).AsAny(),
		rapid.MapOfN(jsonString(), jsonValue(depth-1), 0, 4).AsAny(),
	)...)
}

// receiptGen draws a receipt with a canonical body and arbitrary valid UTF-8
// fields (not necessarily a valid scroll: EntryBytes does not care).
func receiptGen() *rapid.Generator[*warden.Receipt] {
	return rapid.Custom(func(t *rapid.T) *warden.Receipt {
		body, err := ledger.Canonical(jsonValue(3).Draw(t, "body"))
		if err != nil {
			t.Fatalf("Canonical: %v", err)
		}
		return &warden.Receipt{
			Seq:           rapid.OneOf(rapid.Uint64Range(0, 1000), rapid.Uint64Range(0, ledger.MaxSeq)).Draw(t, "seq"),
			SchemaVersion: rapid.OneOf(rapid.Just(warden.SchemaVersion), jsonString()).Draw(t, "schema"),
			Type:          jsonString().Draw(t, "type"),
			Timestamp:     jsonString().Draw(t, "timestamp"),
			Scroll:        rapid.OneOf(rapid.SampledFrom(warden.Scrolls[:]), jsonString()).Draw(t, "scroll"),
			Tags:          rapid.OneOf(rapid.Just[[]string](nil), rapid.SliceOfN(jsonString(), 0, 5)).Draw(t, "tags"),
			RootHash:      ledger.BodyHash(body),
			Body:          body,
		}
	})
}

// TestEntryBytesIsCanonical: EntryBytes, written by hand for speed, equals
// the RFC 8785 canonical JSON of the same entry built as a map.
func TestEntryBytesIsCanonical(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := receiptGen().Draw(t, "receipt")
		got, err := ledger.EntryBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := MustCanonicalEntry(t, r); string(want) != string(got) {
			t.Fatalf("EntryBytes differs from Canonical:\nwant %q\ngot  %q", want, got)
		}
	})
}

// TestSealCheckReceiptProperty: a sealed receipt always checks, its leaf is
// the one Seal returned, and any change to a hashed field is detected.
func TestSealCheckReceiptProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := receiptGen().Draw(t, "receipt")
		r.Scroll = rapid.SampledFrom(warden.Scrolls[:]).Draw(t, "valid scroll")
		leaf, err := ledger.Seal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ledger.CheckReceipt(r)
		if err != nil {
			t.Fatalf("CheckReceipt of a sealed receipt: %v", err)
		}
		if hex.EncodeToString(got) != hex.EncodeToString(leaf) {
			t.Fatalf("CheckReceipt leaf %x, Seal leaf %x", got, leaf)
		}
		c := cloneReceipt(r)
		switch rapid.IntRange(0, 4).Draw(t, "field") {
		case 0:
			c.Seq ^= 1 << rapid.IntRange(0, 52).Draw(t, "bit")
		case 1:
			c.Type += "x"
		case 2:
			c.Timestamp += "0"
		case 3:
			c.Tags = append(c.Tags, "extra")
		case 4:
			if c.Scroll == warden.ScrollDrill {
				c.Scroll = warden.ScrollSystem
			} else {
				c.Scroll = warden.ScrollDrill
			}
		}
		if _, err := ledger.CheckReceipt(c); err == nil {
			t.Fatalf("edited receipt %+v still checks", c)
		}
	})
}
