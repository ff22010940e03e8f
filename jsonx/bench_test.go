package jsonx_test

import (
	"testing"

	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/jsonx"
)

// reportBody is a typical POST /api/v1/incidents/report body, as the load
// generator (bench/http.go) sends it: about 200 bytes.
var reportBody = []byte(`{"class":"egress_anomaly","description":"bench report 123456","evidence":{"destination":"203.0.113.7:443","request":"123456"},"source":"bench","severity":"high"}`)

func BenchmarkDecodeReport(b *testing.B) {
	b.SetBytes(int64(len(reportBody)))
	b.ReportAllocs()
	for b.Loop() {
		var req recorder.ReportRequest
		if err := jsonx.Decode(reportBody, &req); err != nil {
			b.Fatal(err)
		}
	}
}
