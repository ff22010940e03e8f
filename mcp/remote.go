package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/governor"
)

// maxResponseBytes bounds a governance answer read by the proxy.
const maxResponseBytes = 64 << 20

// NewRemoteServer returns an MCP server whose tools (tools: the governor's
// list, for names and schemas) are answered by the warden server at
// baseURL: each call is POST {baseURL}/api/v1/governance/{tool} with the
// arguments as body and token as bearer credential. It holds no state —
// the server is the single source of truth, and authenticates, authorizes
// and receipts every call. A refusal body {"success": false, "error",
// "code", ...} becomes the same tool error NewServer returns.
func NewRemoteServer(tools []*governor.Tool, baseURL, token, version string, opts ...Option) *sdk.Server {
	c := newConfig(opts)
	hc := c.client
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	base := strings.TrimRight(baseURL, "/")
	return newServer(tools, version, c, func(ctx context.Context, _ *sdk.CallToolRequest, name string, args json.RawMessage) (json.RawMessage, error) {
		endpoint := base + "/api/v1/governance/" + url.PathEscape(name)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(args))
		if err != nil {
			return nil, fmt.Errorf("mcp.NewRemoteServer: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			c.logger.ErrorContext(ctx, "warden server unreachable", "tool", name, "url", base, "err", err)
			return nil, warden.Errorf(warden.EINTERNAL, "The warden server at %s could not be reached.", base)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		if err != nil {
			return nil, fmt.Errorf("mcp.NewRemoteServer: POST %s: %w", endpoint, err)
		}
		if resp.StatusCode < 300 {
			if !json.Valid(body) {
				return nil, fmt.Errorf("mcp.NewRemoteServer: POST %s: HTTP %d answer is not JSON", endpoint, resp.StatusCode)
			}
			return bytes.TrimSpace(body), nil
		}
		return nil, refusal(endpoint, resp.StatusCode, body)
	})
}

// refusal turns an HTTP error body {"error", "code", ...data} back into the
// *warden.Error the server refused with.
func refusal(endpoint string, status int, body []byte) error {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("mcp.NewRemoteServer: POST %s: HTTP %d: %.200s", endpoint, status, bytes.TrimSpace(body))
	}
	msg, _ := m["error"].(string)
	code, _ := m["code"].(string)
	if msg == "" || code == "" {
		return fmt.Errorf("mcp.NewRemoteServer: POST %s: HTTP %d without error and code: %.200s", endpoint, status, bytes.TrimSpace(body))
	}
	delete(m, "error")
	delete(m, "code")
	delete(m, "success")
	we := &warden.Error{Code: code, Message: msg}
	if len(m) > 0 {
		we.Data = m
	}
	return we
}
