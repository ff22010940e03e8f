package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

// Defaults of the session limits (WithSessionLimits, WithSessionIdle).
// A session costs tens of KiB (goroutines, buffers, the SDK's state), so
// the default cap holds the endpoint's memory to tens of MiB however many
// sessions are asked for.
const (
	DefaultMaxSessions             = 1024
	DefaultMaxSessionsPerPrincipal = 16
	DefaultSessionIdle             = 5 * time.Minute
)

// SessionRetryAfter is the Retry-After of a session refused for a limit:
// sessions end when their clients close them or after the idle time.
const SessionRetryAfter = 30 * time.Second

// sessionLimits counts the open MCP sessions per principal and overall,
// refuses a new one past either cap, and closes a principal's sessions
// when its credential is revoked.
type sessionLimits struct {
	max, per int
	core     *engine.Core
	open     prometheus.Gauge
	refused  prometheus.Counter

	mu    sync.Mutex
	total int                           // open sessions plus reservations
	by    map[string]*principalSessions // no entry without sessions or reservations
}

type principalSessions struct {
	open    map[*sdk.ServerSession]struct{}
	pending int // requests that may open a session, not yet answered
}

func newSessionLimits(core *engine.Core, c *config) *sessionLimits {
	l := &sessionLimits{max: c.maxSessions, per: c.maxSessionsPer, core: core, by: map[string]*principalSessions{},
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "warden_mcp_sessions_open", Help: "Open MCP sessions on /mcp."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_mcp_sessions_refused_total",
			Help: "Requests for a new MCP session refused for a session limit (429)."}),
	}
	if c.registry != nil {
		c.registry.MustRegister(l.open, l.refused)
	}
	core.OnRevoke(l.revoke)
	return l
}

func (l *sessionLimits) entry(principal string) *principalSessions {
	e := l.by[principal]
	if e == nil {
		e = &principalSessions{open: map[*sdk.ServerSession]struct{}{}}
		l.by[principal] = e
	}
	return e
}

// drop forgets principal's entry once it holds nothing. Callers hold mu.
func (l *sessionLimits) drop(principal string, e *principalSessions) {
	if len(e.open) == 0 && e.pending == 0 && l.by[principal] == e {
		delete(l.by, principal)
	}
}

// reservation is the place a session-opening request holds until its
// session is registered or the request is answered.
type reservation struct {
	principal string
	e         *principalSessions
	settled   bool // registered or released
}

// reserve holds a place for the session principal's initialize request is
// about to open, or returns ETOOMANY naming the cap it would break.
func (l *sessionLimits) reserve(principal string) (*reservation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(principal)
	if n := len(e.open) + e.pending; n >= l.per {
		l.drop(principal, e)
		l.refused.Inc()
		return nil, tooManySessions("principal %q already has %d open, the most one principal may have", principal, n)
	}
	if l.total >= l.max {
		l.drop(principal, e)
		l.refused.Inc()
		return nil, tooManySessions("the server already has %d open, the most it keeps", l.total)
	}
	e.pending++
	l.total++
	return &reservation{principal: principal, e: e}, nil
}

// release gives the place back unless a session took it.
func (l *sessionLimits) release(r *reservation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.settled {
		return
	}
	r.settled = true
	r.e.pending--
	l.total--
	l.drop(r.principal, r.e)
}

func tooManySessions(format string, args ...any) *warden.Error {
	e := warden.Errorf(warden.ETOOMANY, "Too many MCP sessions: "+format+
		". Close sessions you no longer use (DELETE /mcp with their Mcp-Session-Id), or retry once idle ones have expired.", args...)
	e.RetryAfter = SessionRetryAfter
	return e
}

// register turns r into the session ss initialized, counted until it
// closes. It runs inside the request that holds r.
func (l *sessionLimits) register(r *reservation, ss *sdk.ServerSession) {
	l.mu.Lock()
	if r.settled {
		l.mu.Unlock()
		return
	}
	r.settled = true
	e, principal := r.e, r.principal
	e.pending--
	e.open[ss] = struct{}{}
	l.open.Inc()
	l.mu.Unlock()
	go func() {
		_ = ss.Wait()
		l.mu.Lock()
		delete(e.open, ss)
		l.total--
		l.open.Dec()
		l.drop(principal, e)
		l.mu.Unlock()
	}()
	// A revocation that raced this session's authentication may have
	// looked for it before it was counted: look again now that it is.
	if l.core.RevocationNoticed(principal) {
		go ss.Close()
	}
}

// revoke closes every session of principal (an engine.OnRevoke listener:
// it returns at once, the sessions close in the background).
func (l *sessionLimits) revoke(principal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.by[principal]; e != nil {
		for ss := range e.open {
			go ss.Close()
		}
	}
}

// middleware registers each session when it is initialized, on the
// reservation Handler took for that request.
func (l *sessionLimits) middleware(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		if method == "initialize" {
			// Every session is counted: one that would start without the
			// reservation Handler takes (a request shape initializes did
			// not foresee) is refused, never left uncounted.
			var r *reservation
			if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
				r, _ = extra.TokenInfo.Extra[reservationKey].(*reservation)
			}
			ss, ok := req.GetSession().(*sdk.ServerSession)
			if r == nil || !ok || ss == nil {
				return nil, warden.Errorf(warden.ETOOMANY, "MCP session refused: it was not admitted under the session limits.")
			}
			l.register(r, ss)
		}
		return next(ctx, method, req)
	}
}

// initializes reports whether r asks for a new session: a POST without a
// session ID whose JSON-RPC message is "initialize" (the SDK keeps a
// session only for that; for anything else it opens one for the request
// and closes it with the answer). It reads r's body, bounded by limit,
// and puts it back for the SDK.
func initializes(r *http.Request, limit int64) (bool, error) {
	if r.Method != http.MethodPost || r.Header.Get("Mcp-Session-Id") != "" || r.Body == nil {
		return false, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body.Close()
	if err != nil {
		return false, warden.Errorf(warden.EINVALID, "The request body could not be read.")
	}
	if int64(len(data)) > limit {
		return false, warden.Errorf(warden.ETOOLARGE, "MCP request body exceeds %d bytes.", limit)
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	type message struct {
		Method string `json:"method"`
	}
	var msg message
	if json.Unmarshal(data, &msg) == nil {
		return msg.Method == "initialize", nil
	}
	// A batch initializes if any of its messages does (the SDK accepts
	// batches from clients of older protocol versions).
	var batch []message
	if json.Unmarshal(data, &batch) == nil {
		for _, m := range batch {
			if m.Method == "initialize" {
				return true, nil
			}
		}
	}
	return false, nil // garbage is the SDK's to refuse
}
