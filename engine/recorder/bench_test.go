package recorder_test

import (
	"context"
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
