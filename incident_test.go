package warden_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// firstRecordFields are Incident's JSON members as the first release wrote
// them, always present. Receipted snapshots written then are compared with
// today's records, so no other member may appear when it is empty.
var firstRecordFields = map[string]bool{
	"id": true, "created_at": true, "class": true, "severity": true, "state": true, "source": true,
	"description": true, "evidence": true, "containment_actions": true, "containment_results": true,
	"resolved_at": true, "number": true, "reported_by": true, "auto_contained": true,
}

// TestIncidentFieldsAddedLaterAreOmitempty guards forensic verification
// across versions, and listings, which send stored records as they are: a
// member added to Incident without omitempty would make every record
// differ from its older receipted snapshot, and old records lack it.
func TestIncidentFieldsAddedLaterAreOmitempty(t *testing.T) {
	typ := reflect.TypeFor[warden.Incident]()
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if !firstRecordFields[name] && !strings.Contains(opts, "omitempty") {
			t.Errorf("Incident.%s (%q) is not omitempty", typ.Field(i).Name, name)
		}
	}
}

// TestOldSnapshotRoundTrips: a snapshot as the first release receipted it
// decodes and re-canonicalises to the same bytes.
func TestOldSnapshotRoundTrips(t *testing.T) {
	old := `{"auto_contained":false,"class":"forbidden_airlock_request","containment_actions":["log_alert"],` +
		`"containment_results":[{"action":"log_alert","attempts":1,"completed_at":"2026-11-22T03:59:07.123Z","error":"","success":true}],` +
		`"created_at":"2026-11-22T03:59:07.123Z","description":"bench report 1","escalated_from":"medium",` +
		`"evidence":{"destination":"203.0.113.7:443"},"id":"INC-20261122-035907-0001","number":1,"reported_by":"dev",` +
		`"resolved_at":"","severity":"high","source":"bench","state":"open"}`
	var inc warden.Incident
	if err := json.Unmarshal([]byte(old), &inc); err != nil {
		t.Fatal(err)
	}
	got, err := ledger.Canonical(&inc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != old {
		t.Fatalf("re-canonicalised:\n%s\nwant\n%s", got, old)
	}
}

func TestDestination(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"https://hooks.example/a", "https://hooks.example/a"},
		{"https://hooks.example/b?x=1", "https://hooks.example/b"},
		{"https://hooks.example/b#frag", "https://hooks.example/b"},
		{"HTTPS://Hooks.Example/A", "https://hooks.example/A"},
		{"http://hooks.example/a", "http://hooks.example/a"},
		{"https://hooks.example", "https://hooks.example"},
		{"http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"},
		{"http://127.0.0.1:8081/hook", "http://127.0.0.1:8081/hook"},
		{"http://user:pw@hooks.example/a", "http://hooks.example/a"},
		{"http://[::1]:9/x", "http://[::1]:9/x"},
		{"https://hooks.example/a%2Fb", "https://hooks.example/a%2Fb"},
		{"not a url", "not a url"},
		{"/relative/path", "/relative/path"},
		{"http://bad host/%zz", "http://bad host/%zz"},
		{"", ""},
	} {
		if got := warden.Destination(tt.url); got != tt.want {
			t.Errorf("Destination(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
