package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
)

// Keys of auth.TokenInfo.Extra set by Handler for the tool handlers.
const (
	principalKey   = "warden.principal"
	remoteKey      = "warden.remote"
	reservationKey = "warden.session-reservation" // a new session's place under the caps
)

// maxRequestBytes bounds an MCP HTTP body: one call's arguments plus the
// JSON-RPC envelope.
const maxRequestBytes = 4 * MaxArgumentBytes

type tokenInfoKey struct{}

// Handler serves the tools of gov over MCP streamable HTTP, for mounting at
// /mcp on the API listener (http.Options.Mount). Every request — not just
// a session's first — MUST carry a valid bearer credential (in --dev mode
// none is the dev principal): a missing, unknown or revoked one is answered
// 401 with WWW-Authenticate and receipted as an auth_failure. Tool calls
// act as the principal of the request that carries them, and a session is
// bound to the principal that opened it: another principal's request on it
// is refused 403 and receipted. In --dev mode, a loopback listener also
// refuses foreign Host headers (DNS rebinding) with 403.
//
// Sessions are bounded (WithSessionLimits): a request for a new one past
// the principal's or the server's cap is refused 429 too_many with
// Retry-After, before the SDK allocates anything. A session idle for
// WithSessionIdle is closed, and so, at once, is every session of a
// principal whose credential is revoked (engine.Core.OnRevoke: through
// this process, or noticed from another by NoticeRevocations).
func Handler(core *engine.Core, gov *governor.Governor, version string, opts ...Option) http.Handler {
	c := newConfig(opts)
	srv := NewServer(core, gov, version, opts...)
	limits := newSessionLimits(core, c)
	srv.AddReceivingMiddleware(limits.middleware)
	stream := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{
		Logger:              sdkLogger(c.logger),
		SessionTimeout:      c.sessionIdle,
		MaxRequestBodyBytes: maxRequestBytes,
		// DNS-rebinding protection (a loopback listener refuses foreign Host
		// headers) guards --dev, where no token is needed. With bearer auth
		// a rebinding page has no credential, and the check would refuse a
		// reverse proxy on loopback that the HTTP API serves fine.
		DisableLocalhostProtection: !core.Dev(),
	})
	// The SDK reads token info (the principal, and the session owner it
	// checks) only from what its bearer middleware stores; ours has already
	// authenticated, so its verifier just hands over the result.
	carry := auth.RequireBearerToken(func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		if ti, ok := r.Context().Value(tokenInfoKey{}).(*auth.TokenInfo); ok {
			return ti, nil
		}
		return nil, auth.ErrInvalidToken
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(stream)
	h := &authHandler{core: core, next: carry, cfg: c, sessions: limits}
	if c.shutdown != nil {
		go func() {
			<-c.shutdown.Done()
			for ss := range srv.Sessions() {
				ss.Close()
			}
		}()
	}
	return h
}

type authHandler struct {
	core     *engine.Core
	next     http.Handler
	cfg      *config
	sessions *sessionLimits
}

func (h *authHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h.cfg.shutdown != nil && h.cfg.shutdown.Err() != nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "warden is shutting down", http.StatusServiceUnavailable)
		return
	}
	token, err := engine.BearerToken(r.Header.Values("Authorization"))
	var p *warden.Principal
	if err == nil {
		p, err = h.core.Authenticate(r.Context(), token)
	}
	if err != nil {
		if warden.ErrorCode(err) == warden.EINTERNAL {
			h.cfg.logger.ErrorContext(r.Context(), "mcp authentication failed", "err", err)
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		status := http.StatusUnauthorized
		if warden.ErrorCode(err) == warden.EINVALID {
			status = http.StatusBadRequest // several Authorization headers
		}
		h.refuse(r, nil, status, err)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="warden"`)
		}
		writeError(w, status, err)
		return
	}
	ti := &auth.TokenInfo{UserID: p.Name, Extra: map[string]any{principalKey: p, remoteKey: remoteHost(r)}}
	opens, err := initializes(r, maxRequestBytes)
	if err != nil {
		status := http.StatusBadRequest
		if warden.ErrorCode(err) == warden.ETOOLARGE {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, err)
		return
	}
	if opens {
		res, err := h.sessions.reserve(p.Name)
		if err != nil {
			writeError(w, http.StatusTooManyRequests, err)
			return
		}
		defer h.sessions.release(res)
		ti.Extra[reservationKey] = res
	}
	r2 := r.WithContext(context.WithValue(r.Context(), tokenInfoKey{}, ti))
	// The credential is verified; downstream (tool handlers included) sees
	// a marker instead of the secret.
	r2.Header = r.Header.Clone()
	r2.Header.Set("Authorization", "Bearer verified-by-warden")
	sw := &statusWriter{ResponseWriter: w}
	h.next.ServeHTTP(sw, r2)
	if sw.status == http.StatusForbidden {
		h.refuse(r, p, http.StatusForbidden, warden.Errorf(warden.EFORBIDDEN,
			"MCP request refused: the session belongs to another principal, or the Host header failed the localhost check."))
	}
}

// refuse receipts a refused request, even if the client has gone away.
func (h *authHandler) refuse(r *http.Request, p *warden.Principal, status int, err error) {
	f := engine.AuthFailure{Status: status, Code: warden.ErrorCode(err), Reason: warden.ErrorMessage(err),
		Method: r.Method, Path: r.URL.Path, Remote: remoteHost(r)}
	if p != nil {
		f.Principal = p.Name
	}
	h.core.RecordAuthFailure(context.WithoutCancel(r.Context()), f)
}

func writeError(w http.ResponseWriter, status int, err error) {
	var we *warden.Error
	if errors.As(err, &we) && we.RetryAfterSeconds() != "" {
		w.Header().Set("Retry-After", we.RetryAfterSeconds())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": warden.ErrorMessage(err), "code": warden.ErrorCode(err)})
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// statusWriter records the status; Unwrap keeps http.ResponseController
// (the SDK's SSE flushes) working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
