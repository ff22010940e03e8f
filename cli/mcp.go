package cli

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	wardenmcp "github.com/warden-sh/warden/mcp"
)

func (e *env) mcpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mcp",
		Short: "Serve the governance tools over MCP on stdin/stdout, proxied to a running server",
		Long: `Serve warden's governance tools as an MCP server on stdin/stdout, for agent
runtimes that spawn a process. Each tool call is forwarded to the server at
WARDEN_URL (or --url; default ` + DefaultURL + `) as
POST /api/v1/governance/{tool} with the bearer token WARDEN_TOKEN (or --token):
the server authenticates, authorizes and receipts every call, and this process
keeps no state. stdout carries only the protocol; logs go to stderr.

Agents that speak streamable HTTP can use the server's /mcp endpoint directly
instead (docs/MCP.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			url := e.url
			if url == "" {
				url = DefaultURL
			}
			logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			if e.bearer() == "" {
				// Said once here, in flags: the agent only sees each refusal.
				logger.Warn("no token (--token or WARDEN_TOKEN): a server not in --dev mode refuses every tool call", "url", url)
			}
			tools := governor.Tools()
			hc, err := e.httpClient(60 * time.Second)
			if err != nil {
				return err
			}
			srv := wardenmcp.NewRemoteServer(tools, url, e.bearer(), Version, wardenmcp.WithLogger(logger), wardenmcp.WithHTTPClient(hc))
			return wardenmcp.ServeIO(e.ctx, srv, e.stdin, e.stdout)
		},
	}
}

// mcpMount is the streamable MCP endpoint for `warden serve`'s listener:
// wardenhttp.Options{…, Mount: e.mcpMount(core, gov, logger, opts…)}. Its
// sessions close when the command's context ends (SIGTERM), before the
// HTTP server shuts down, so open event streams do not hold the shutdown
// up.
func (e *env) mcpMount(core *engine.Core, gov *governor.Governor, logger *slog.Logger, opts ...wardenmcp.Option) map[string]http.Handler {
	opts = append([]wardenmcp.Option{wardenmcp.WithLogger(logger), wardenmcp.WithShutdown(e.ctx)}, opts...)
	return map[string]http.Handler{"/mcp": wardenmcp.Handler(core, gov, Version, opts...)}
}
