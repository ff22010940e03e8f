package storetest

import (
	"cmp"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

// operatorCounts is what the metric counts read: open and latched
// incidents, the webhook backlog and active escalations.
type operatorCounts struct {
	Open        []warden.OpenIncidentCount
	Pending     int64
	Escalations map[warden.Profile]int64
}

func mustOperatorCounts(tb testing.TB, s warden.Store) operatorCounts {
	tb.Helper()
	var c operatorCounts
	MustView(tb, s, func(tx warden.ReadTx) (err error) {
		if c.Open, err = tx.CountOpenIncidents(); err != nil {
			return err
		}
		if c.Pending, err = tx.CountPendingDeliveries(); err != nil {
			return err
		}
		c.Escalations, err = tx.CountActiveEscalations()
		return err
	})
	// The contract does not order the counts.
	slices.SortFunc(c.Open, func(a, b warden.OpenIncidentCount) int {
		return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.Severity.Rank(), b.Severity.Rank()))
	})
	return c
}

// testOperatorCounts: CountOpenIncidents counts only open incidents, by
// class and severity, latched ones being those with an incomplete
// requirement; CountPendingDeliveries only pending deliveries;
// CountActiveEscalations only active escalations, by ToProfile; each
// follows updates.
func testOperatorCounts(t *testing.T, h Harness) {
	s := h.New(t)
	check := func(when string, want operatorCounts) {
		t.Helper()
		got := mustOperatorCounts(t, s)
		if len(got.Open) == 0 {
			got.Open = nil
		}
		if len(got.Escalations) == 0 {
			got.Escalations = nil
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("%s: counts (-want +got):\n%s", when, diff)
		}
	}
	check("empty store", operatorCounts{})

	const iv, pi, ua = warden.ClassIntegrityViolation, warden.ClassPromptInjection, warden.ClassUnauthorizedAccess
	is := []*warden.Incident{
		incident(1, iv, warden.SeverityCritical, warden.StateOpen),
		incident(2, iv, warden.SeverityCritical, warden.StateContained),
		incident(3, iv, warden.SeverityCritical, warden.StateContainmentFailed),
		incident(4, pi, warden.SeverityHigh, warden.StateResolved),
		incident(5, pi, warden.SeverityHigh, warden.StateAcknowledged),
		incident(6, pi, warden.SeverityLow, warden.StateOpen),
		incident(7, ua, warden.SeverityHigh, warden.StateContainmentFailed),
	}
	createIncidents(t, s, is...)
	pending1, done2, pending7 := requirement(1, 1, true, true), requirement(2, 2, true, true), requirement(7, 7, true, false)
	done2.AckedAt, done2.ReAttestedAt = warden.FormatTime(at(3)), warden.FormatTime(at(4))
	for _, r := range []*warden.RecoveryRequirement{pending1, done2, pending7} {
		r.Settle()
	}
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, r := range []*warden.RecoveryRequirement{pending1, done2, pending7} {
			if err := tx.PutRequirement(r); err != nil {
				return err
			}
		}
		return nil
	})
	d1, d2, d3 := delivery(incidentID(1), "https://a.example", 1), delivery(incidentID(2), "https://a.example", 2), delivery(incidentID(7), "https://b.example", 3)
	enqueue(t, s, d1, d2, d3)
	alice := escalation("esc_a1", "alice", warden.ProfileOperator, false, nil)
	alice2 := escalation("esc_a2", "alice", warden.ProfileGuardian, false, nil)
	bob := escalation("esc_b1", "bob", warden.ProfileOperator, false, nil)
	putEscalations(t, s, alice, alice2, bob)
	check("created", operatorCounts{
		Open: []warden.OpenIncidentCount{
			{Class: iv, Severity: warden.SeverityCritical, Open: 3, Latched: 1},
			{Class: pi, Severity: warden.SeverityLow, Open: 1},
			{Class: ua, Severity: warden.SeverityHigh, Open: 1, Latched: 1},
		},
		Pending:     3,
		Escalations: map[warden.Profile]int64{warden.ProfileOperator: 2, warden.ProfileGuardian: 1},
	})

	// The ceremony completes for 1, 6 is resolved, 3 is acknowledged; one
	// delivery is delivered and one fails for good; alice comes down a hop.
	pending1.AckedAt, pending1.ReAttestedAt = warden.FormatTime(at(8)), warden.FormatTime(at(9))
	pending1.Settle()
	six, three := cloneIncident(is[5]), cloneIncident(is[2])
	six.State, three.State = warden.StateResolved, warden.StateAcknowledged
	updateIncidents(t, s, six, three)
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.PutRequirement(pending1); err != nil {
			return err
		}
		d1r, d2r := *d1, *d2
		d1r.Status, d1r.DeliveredAt = warden.DeliveryDelivered, at(5)
		d2r.Status, d2r.LastError = warden.DeliveryFailed, "gone"
		for _, d := range []*warden.Delivery{&d1r, &d2r} {
			if err := tx.UpdateDelivery(d); err != nil {
				return err
			}
		}
		return tx.PutEscalation(deactivate(alice2, 10))
	})
	check("updated", operatorCounts{
		Open: []warden.OpenIncidentCount{
			{Class: iv, Severity: warden.SeverityCritical, Open: 2},
			{Class: ua, Severity: warden.SeverityHigh, Open: 1, Latched: 1},
		},
		Pending:     1,
		Escalations: map[warden.Profile]int64{warden.ProfileOperator: 2},
	})
}
