// Package mcp serves warden's governance tools over the Model Context
// Protocol with the official Go SDK: in-process over an engine (streamable
// HTTP at /mcp, see Handler) and as a stateless proxy to a running server's
// HTTP API (`warden mcp` on stdio, see NewRemoteServer). Both expose the
// same tools with the same names, schemas, results and errors, and one
// function (toolResult) maps every outcome to its MCP result.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
)

// ServerName is the MCP implementation name warden announces.
const ServerName = "warden"

// MaxArgumentBytes bounds a tool call's arguments, as MaxBodyBytes bounds
// an HTTP governance call.
const MaxArgumentBytes = 64 << 10

// Option configures the servers and handlers of this package.
type Option func(*config)

type config struct {
	logger   *slog.Logger
	client   *http.Client
	shutdown context.Context
	registry *prometheus.Registry

	maxSessions, maxSessionsPer int
	sessionIdle                 time.Duration
}

// WithLogger sets the logger for internal errors (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithShutdown makes Handler close every open session once ctx is done and
// refuse new requests (503), so long-lived event streams end and
// http.Server.Shutdown can complete. Servers pass the context whose
// cancellation starts their shutdown.
func WithShutdown(ctx context.Context) Option { return func(c *config) { c.shutdown = ctx } }

// WithSessionLimits caps Handler's open sessions: at most max overall and
// perPrincipal for one principal (defaults DefaultMaxSessions and
// DefaultMaxSessionsPerPrincipal; zero keeps a default). A request for a
// new session past either is refused 429 too_many with Retry-After.
func WithSessionLimits(max, perPrincipal int) Option {
	return func(c *config) { c.maxSessions, c.maxSessionsPer = max, perPrincipal }
}

// WithSessionIdle sets how long a Handler session may go without a request
// before it is closed (default DefaultSessionIdle).
func WithSessionIdle(d time.Duration) Option { return func(c *config) { c.sessionIdle = d } }

// WithRegistry registers Handler's session metrics (open sessions,
// refusals) on reg.
func WithRegistry(reg *prometheus.Registry) Option { return func(c *config) { c.registry = reg } }

// WithHTTPClient sets the client NewRemoteServer calls the server with.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.client = hc } }

func newConfig(opts []Option) *config {
	c := &config{}
	for _, o := range opts {
		o(c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.maxSessions <= 0 {
		c.maxSessions = DefaultMaxSessions
	}
	if c.maxSessionsPer <= 0 {
		c.maxSessionsPer = DefaultMaxSessionsPerPrincipal
	}
	if c.sessionIdle <= 0 {
		c.sessionIdle = DefaultSessionIdle
	}
	return c
}

// caller runs one tool call and returns the tool's result object as JSON,
// or an error: a *warden.Error is a refusal shown to the agent, anything
// else is internal.
type caller func(ctx context.Context, req *sdk.CallToolRequest, name string, args json.RawMessage) (json.RawMessage, error)

// newServer builds an MCP server with one tool per governance tool, each
// answered by call. It panics if a tool's argument type has no JSON schema:
// the types are fixed at compile time and the tests build every schema.
func newServer(tools []*governor.Tool, version string, c *config, call caller) *sdk.Server {
	s := sdk.NewServer(&sdk.Implementation{Name: ServerName, Title: "warden governance", Version: version}, &sdk.ServerOptions{
		Instructions: "Governance tools of warden, the control plane for AI agents. Every call acts as the principal of your credential, " +
			"at that principal's current profile (observer until escalated). A refusal is a tool error whose structured content is " +
			`{"success": false, "error": <sentence>, "code": <code>, ...}; every transition and every denial is receipted.`,
		Logger: sdkLogger(c.logger),
	})
	defs, err := ToolDefs(tools)
	if err != nil {
		panic(err)
	}
	for _, def := range defs {
		name := def.Name
		s.AddTool(def, func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			args := req.Params.Arguments
			if len(args) > MaxArgumentBytes {
				return toolResult(nil, warden.Errorf(warden.ETOOLARGE, "Tool arguments exceed %d bytes.", MaxArgumentBytes)), nil
			}
			if t := bytes.TrimSpace(args); len(t) == 0 || bytes.Equal(t, []byte("null")) {
				args = json.RawMessage("{}")
			}
			res, err := call(ctx, req, name, args)
			if err != nil && warden.ErrorCode(err) == warden.EINTERNAL {
				c.logger.ErrorContext(ctx, "mcp tool call failed", "tool", name, "err", err)
			}
			return toolResult(res, err), nil
		})
	}
	return s
}

// toolResult is the one table from a tool's outcome to an MCP result. A
// result object is the structured content and, as JSON, the text content.
// A refusal is a tool error (IsError) whose text is the seed's sentence and
// whose structured content is {"success": false, "error": sentence, "code":
// code, ...Data} — the body the HTTP API returns for the same refusal.
// Internal errors show only a generic sentence. An unavailable refusal
// (storage full) adds retry_after_seconds, what HTTP says in Retry-After.
func toolResult(res json.RawMessage, err error) *sdk.CallToolResult {
	if err == nil {
		if t := bytes.TrimSpace(res); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			res = json.RawMessage("{}")
		}
		return &sdk.CallToolResult{
			Content:           []sdk.Content{&sdk.TextContent{Text: string(res)}},
			StructuredContent: res,
		}
	}
	body := map[string]any{}
	var we *warden.Error
	if errors.As(err, &we) {
		for k, v := range we.Data {
			body[k] = v
		}
	}
	msg := warden.ErrorMessage(err)
	body["success"] = false
	body["error"] = msg
	body["code"] = warden.ErrorCode(err)
	if we != nil {
		if ra, err := strconv.Atoi(we.RetryAfterSeconds()); err == nil {
			body["retry_after_seconds"] = ra
		}
	}
	return &sdk.CallToolResult{
		Content:           []sdk.Content{&sdk.TextContent{Text: msg}},
		StructuredContent: body,
		IsError:           true,
	}
}

// marshal encodes a result object as the HTTP API does (no HTML escaping).
func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// NewServer returns an MCP server exposing every governance tool of gov. Each call acts
// as the principal the transport authenticated (Handler puts it in the
// request's token info); a call without one is what an empty bearer token
// is: the dev principal in --dev mode, else refused as unauthorized. Calls
// go through gov.CallTool, so the authority matrix, the ladder and every
// receipt apply exactly as over HTTP. A refusal for a missing role
// (forbidden, unauthorized) is receipted as an auth_failure, as the HTTP
// API does.
func NewServer(core *engine.Core, gov *governor.Governor, version string, opts ...Option) *sdk.Server {
	c := newConfig(opts)
	return newServer(governor.Tools(), version, c, func(ctx context.Context, req *sdk.CallToolRequest, name string, args json.RawMessage) (json.RawMessage, error) {
		p, err := principalOf(ctx, core, req)
		if err != nil {
			recordToolRefusal(ctx, core, req, name, nil, err)
			return nil, err
		}
		res, err := gov.CallTool(ctx, p, name, args)
		if err != nil {
			recordToolRefusal(ctx, core, req, name, p, err)
			return nil, err
		}
		return marshal(res)
	})
}

// principalOf returns the principal Handler authenticated for this very
// request, or, on a transport without authentication, what an empty token
// is (dev principal or EUNAUTHORIZED).
func principalOf(ctx context.Context, core *engine.Core, req *sdk.CallToolRequest) (*warden.Principal, error) {
	if req.Extra != nil && req.Extra.TokenInfo != nil {
		if p, ok := req.Extra.TokenInfo.Extra[principalKey].(*warden.Principal); ok && p != nil {
			return p, nil
		}
	}
	return core.Authenticate(ctx, "")
}

// recordToolRefusal receipts a refusal for a missing credential or role
// as an auth_failure. Governance denials (EDENIED and the rest) are
// receipted by the governor itself.
func recordToolRefusal(ctx context.Context, core *engine.Core, req *sdk.CallToolRequest, tool string, p *warden.Principal, err error) {
	status := 0
	switch warden.ErrorCode(err) {
	case warden.EUNAUTHORIZED:
		status = http.StatusUnauthorized
	case warden.EFORBIDDEN:
		status = http.StatusForbidden
	default:
		return
	}
	f := engine.AuthFailure{Status: status, Code: warden.ErrorCode(err), Reason: warden.ErrorMessage(err),
		Method: "MCP", Path: "tools/call/" + tool, Remote: "mcp"}
	if p != nil {
		f.Principal = p.Name
	}
	if req.Extra != nil && req.Extra.TokenInfo != nil {
		if r, ok := req.Extra.TokenInfo.Extra[remoteKey].(string); ok {
			f.Remote = r
		}
	}
	core.RecordAuthFailure(context.WithoutCancel(ctx), f)
}

// sdkLogger passes on the SDK's warnings and errors only: its info lines
// (every session connecting) would drown the server's log.
func sdkLogger(l *slog.Logger) *slog.Logger {
	return slog.New(minLevel{l.Handler(), slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}
func (h minLevel) WithGroup(g string) slog.Handler { return minLevel{h.Handler.WithGroup(g), h.min} }
