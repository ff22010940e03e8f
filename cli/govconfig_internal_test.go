package cli

import (
	"testing"

	warden "github.com/warden-sh/warden"
)

func TestParseGovernance(t *testing.T) {
	ladder, auth, err := parseGovernance([]byte(`
ladder:
  hops:
    - {from: observer, to: operator, reversible: true, auto_deescalate: true, default_ttl_seconds: 600, max_ttl_seconds: 900, requires_reason: true}
    - {from: operator, to: guardian, reversible: true, auto_deescalate: true, default_ttl_seconds: 600, max_ttl_seconds: 600}
    - {from: guardian, to: phoenix, reversible: true, auto_deescalate: true, default_ttl_seconds: 300, max_ttl_seconds: 300, requires_approval: true, quorum: 2}
authority:
  cognitive_decide: operator
`))
	if err != nil {
		t.Fatal(err)
	}
	if h := ladder.Hop(warden.ProfileGuardian, warden.ProfilePhoenix); h == nil || h.Quorum != 2 || h.TTL(0) != 300 {
		t.Fatalf("hop %+v", h)
	}
	if ladder.Hop(warden.ProfilePhoenix, warden.ProfileSovereign) != nil {
		t.Fatalf("a hop the file leaves out must not exist")
	}
	if auth["cognitive_decide"] != warden.ProfileOperator || auth["cognitive_invoke_tem"] != warden.ProfileGuardian {
		t.Fatalf("authority %v", auth)
	}
	for name, bad := range map[string]string{
		"unknown key":     "ladder: {hops: [], extra: 1}",
		"skip hop":        "ladder: {hops: [{from: observer, to: guardian}]}",
		"unknown tool":    "authority: {rm_rf: observer}",
		"unknown profile": "authority: {escalate: root}",
		"two documents":   "authority: {}\n---\nauthority: {}",
	} {
		if _, _, err := parseGovernance([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
