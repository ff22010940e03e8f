package wardentest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	wardenhttp "github.com/warden-sh/warden/http"
	"github.com/warden-sh/warden/mcp"
)

// MustMCPServer serves the HTTP API with the MCP streamable endpoint
// mounted at /mcp (as `warden serve` does) on 127.0.0.1:0 until the test
// ends, and returns the base URL; the MCP endpoint is base + "/mcp".
// Clients MUST close their sessions before the test ends (register their
// cleanup after this call): the server waits for open streams.
func (e *Env) MustMCPServer(tb testing.TB) string {
	tb.Helper()
	api := wardenhttp.NewServer(wardenhttp.Options{Core: e.Core, Recorder: e.Recorder, Governor: e.Governor, Registry: prometheus.NewRegistry(),
		Mount: map[string]http.Handler{"/mcp": mcp.Handler(e.Core, e.Governor, "test")}})
	srv := httptest.NewServer(api)
	tb.Cleanup(srv.Close)
	return srv.URL
}
