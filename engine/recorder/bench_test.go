package recorder_test

import (
	"context"
	"fmt"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
)

// BenchmarkReportIncident measures a durable report (alert-only class, no
// targets) with 16 concurrent reporters.
func BenchmarkReportIncident(b *testing.B) {
	env := wardentest.MustEnv(b)
	ctx := context.Background()
	req := recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Source: "bench", Description: "blocked egress",
		Evidence: map[string]string{"destination": "203.0.113.7:443"}}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := env.Recorder.ReportIncident(ctx, wardentest.AdminPrincipal, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkReportContaining measures the path a user's reports take: a
// tool_call_burst report whose containment calls a live target (a real
// HTTP server on loopback answering 200), durable before the call and
// recorded after it, with 16 concurrent reporters.
func BenchmarkReportContaining(b *testing.B) {
	tg := wardentest.MustTarget(b)
	env := wardentest.MustEnv(b, wardentest.Containment(wardentest.TargetPolicy(tg.URL)))
	ctx := context.Background()
	req := recorder.ReportRequest{Class: warden.ClassToolCallBurst, Source: "bench", Description: "burst",
		Evidence: map[string]string{"calls": "500"}}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			inc, err := env.Recorder.ReportIncident(ctx, wardentest.AdminPrincipal, req)
			if err != nil {
				b.Error(err)
				return
			}
			if inc.State != warden.StateContained {
				b.Errorf("incident %s is %s, want contained", inc.ID, inc.State)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkListIncidents100 measures the first page of the incident
// listing (100 incidents, with its total) over 50,000 stored.
func BenchmarkListIncidents100(b *testing.B) {
	env := wardentest.MustEnv(b)
	ctx := context.Background()
	const stored = 50_000
	for n := 0; n < stored; n += 1000 {
		err := env.Store.Update(ctx, func(tx warden.Tx) error {
			for k := n + 1; k <= n+1000; k++ {
				sev := []warden.Severity{warden.SeverityLow, warden.SeverityMedium, warden.SeverityHigh, warden.SeverityCritical}[k%4]
				if err := tx.CreateIncident(&warden.Incident{
					ID: fmt.Sprintf("INC-20260314-120000-%06d", k), Number: uint64(k), CreatedAt: warden.FormatTime(env.Clock.Now()),
					Class: warden.ClassForbiddenAirlockRequest, Severity: sev, State: warden.StateOpen, Source: "bench",
					Description: "blocked egress to an unknown destination", Evidence: map[string]string{"destination": "203.0.113.7:443"},
					ContainmentActions: []string{warden.ActionLogAlert}, ContainmentResults: []warden.ContainmentResult{}, ReportedBy: "bench",
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		page, err := env.Recorder.ListIncidents(ctx, warden.IncidentFilter{}, 100)
		if err != nil || len(page.Items) != 100 {
			b.Fatalf("page of %d: %v", len(page.Items), err)
		}
	}
}
