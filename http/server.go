// Package http is warden's HTTP JSON API: the reference incident recorder's
// paths verbatim, the ledger API and the governance API. Handlers decode
// strictly, authenticate, check the route's roles, call the engine and map
// its errors through one table. Every refused request is receipted by the
// engine as an auth_failure.
package http

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/http/openapi"
)

// Server serves the API over the engine core and its two domains.
type Server struct {
	core     *engine.Core
	rec      *recorder.Recorder
	gov      *governor.Governor
	version  string
	log      *slog.Logger
	idle     time.Duration
	minRate  float64 // bytes per second
	registry *prometheus.Registry
	mux      *http.ServeMux
	routes   map[string]map[string]*route // pattern → method → route

	streams *streamLimits

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// handlerFunc is an API handler: it gets the authenticated principal (nil
// on public routes) and returns an error for the error table to map.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *warden.Principal) error

type route struct {
	pattern string
	method  string
	roles   []warden.Role // nil: public, no authentication
	action  string        // "read receipts": used in 403 sentences
	stream  bool          // a streamed response: counts against the stream limits
	h       handlerFunc
}

// Options configure a Server.
type Options struct {
	// Core, Recorder and Governor are the rules the API exposes; all three
	// are required.
	Core     *engine.Core
	Recorder *recorder.Recorder
	Governor *governor.Governor
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// Version is reported in forensic bundles.
	Version string
	// Mount adds handlers of other transports (e.g. "/mcp") to the same
	// listener; they authenticate for themselves.
	Mount map[string]http.Handler
	// WriteIdle bounds how long one write of an API response may wait for
	// the client to read (default DefaultWriteIdle). A client that stops
	// reading a streamed listing or export is cut off after it, so it
	// cannot hold the stream's read snapshot, and with it the store's
	// checkpointing, open forever. Mounted handlers are not bounded.
	WriteIdle time.Duration
	// MinWriteRate (bytes per second, default DefaultMinWriteRate) bounds
	// a response's total time spent waiting for the client: WriteIdle plus
	// one second per MinWriteRate bytes sent. A client that reads just
	// often enough to beat WriteIdle, but slower than this, is cut off too.
	// Time the server spends producing the response does not count.
	MinWriteRate int
	// MaxStreams bounds the streamed responses (forensic exports, incident
	// and receipt listings) sent at once, MaxStreamsPerPrincipal those of
	// one principal (defaults DefaultMaxStreams and
	// DefaultMaxStreamsPerPrincipal); past either a stream is refused 429
	// too_many with Retry-After. A server sizes its store's stream pool
	// to MaxStreams, so an admitted stream never waits for a connection.
	// A principal's streams are cut off when its credential is revoked.
	MaxStreams             int
	MaxStreamsPerPrincipal int
}

// Defaults of Options.WriteIdle and Options.MinWriteRate.
const (
	DefaultWriteIdle    = 30 * time.Second
	DefaultMinWriteRate = 16 << 10
)

// NewServer builds the API's routes.
func NewServer(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.WriteIdle <= 0 {
		o.WriteIdle = DefaultWriteIdle
	}
	if o.MinWriteRate <= 0 {
		o.MinWriteRate = DefaultMinWriteRate
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.MaxStreamsPerPrincipal <= 0 {
		o.MaxStreamsPerPrincipal = DefaultMaxStreamsPerPrincipal
	}
	s := &Server{
		core:     o.Core,
		rec:      o.Recorder,
		gov:      o.Governor,
		version:  o.Version,
		log:      o.Logger,
		idle:     o.WriteIdle,
		minRate:  float64(o.MinWriteRate),
		registry: o.Registry,
		mux:      http.NewServeMux(),
		routes:   map[string]map[string]*route{},
		streams:  newStreamLimits(o.MaxStreams, o.MaxStreamsPerPrincipal),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "warden_http_request_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"route"}),
	}
	o.Registry.MustRegister(s.requests, s.latency, s.streams.open)
	o.Core.OnRevoke(s.streams.revoke)
	s.registerRoutes()
	for pattern, h := range o.Mount {
		s.mux.Handle(pattern, h)
	}
	s.mux.HandleFunc("GET /api/v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openapi.Document)
	})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.log, warden.Errorf(warden.ENOTFOUND, "No such endpoint: %s %s.", r.Method, r.URL.Path))
	})
	return s
}

// Roles by kind of access. Admin holds every role implicitly.
var (
	public     []warden.Role
	readers    = []warden.Role{warden.RoleRead, warden.RoleOperator, warden.RoleRecoveryAdmin, warden.RoleApprover, warden.RoleForensic}
	adminsOnly = []warden.Role{warden.RoleAdmin}
)

func (s *Server) registerRoutes() {
	s.handle("GET", "/health", public, "", s.handleHealth)
	s.handle("GET", "/api/v1/pubkey", readers, "read the ledger public key", s.handlePubkey)
	s.stream("GET", "/api/v1/receipts", readers, "read receipts", s.handleReceipts)
	s.handle("GET", "/api/v1/receipts/{seq}", readers, "read receipts", s.handleReceipt)
	s.handle("GET", "/api/v1/checkpoint", readers, "read checkpoints", s.handleCheckpoint)
	s.handle("GET", "/api/v1/checkpoint/consistency", readers, "read checkpoints", s.handleConsistency)
	s.handle("GET", "/api/v1/credentials", adminsOnly, "manage credentials", s.handleCredentials)
	s.handle("POST", "/api/v1/credentials", adminsOnly, "manage credentials", s.handleAddCredential)
	s.handle("POST", "/api/v1/credentials/revoke", adminsOnly, "manage credentials", s.handleRevokeCredential)
	s.handle("POST", "/api/v1/credentials/human", adminsOnly, "manage credentials", s.handleCredentialHuman)
	s.registerIncidentRoutes()
	s.registerGovernanceRoutes()
}

// handle registers a route. Routes sharing a pattern share one mux entry
// that dispatches on method, so a wrong method gets a JSON 405.
func (s *Server) handle(method, pattern string, roles []warden.Role, action string, h handlerFunc) {
	s.add(&route{pattern: pattern, method: method, roles: roles, action: action, h: h})
}

// stream registers a route whose response is streamed: it needs a
// principal, and counts against the stream limits while it runs.
func (s *Server) stream(method, pattern string, roles []warden.Role, action string, h handlerFunc) {
	if roles == nil {
		panic("http: a streamed route needs a principal: " + pattern)
	}
	s.add(&route{pattern: pattern, method: method, roles: roles, action: action, stream: true, h: h})
}

func (s *Server) add(rt *route) {
	method, pattern := rt.method, rt.pattern
	byMethod, ok := s.routes[pattern]
	if !ok {
		byMethod = map[string]*route{}
		s.routes[pattern] = byMethod
		s.mux.Handle(pattern, s.dispatch(pattern, byMethod))
	}
	byMethod[method] = rt
}

// Routes lists every registered route as "METHOD PATTERN", sorted; the auth
// matrix test walks it so no route escapes testing.
func (s *Server) Routes() []RouteInfo {
	var out []RouteInfo
	for _, byMethod := range s.routes {
		for _, rt := range byMethod {
			out = append(out, RouteInfo{Method: rt.method, Pattern: rt.pattern, Public: rt.roles == nil, Roles: rt.roles})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pattern != out[j].Pattern {
			return out[i].Pattern < out[j].Pattern
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// RouteInfo describes a route for tests and documentation.
type RouteInfo struct {
	Method  string
	Pattern string
	Public  bool
	Roles   []warden.Role
}

func (s *Server) dispatch(pattern string, byMethod map[string]*route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK, rc: http.NewResponseController(w), idle: s.idle, minRate: s.minRate}
		acc, _ := r.Context().Value(accessKey{}).(*access)
		if acc != nil {
			acc.route = routeName(pattern, r)
		}
		var principal string
		defer func() {
			d := time.Since(start)
			s.requests.WithLabelValues(pattern, r.Method, strconv.Itoa(sw.status)).Inc()
			s.latency.WithLabelValues(pattern).Observe(d.Seconds())
			if acc != nil {
				acc.principal = principal
			}
		}()
		rt, ok := byMethod[r.Method]
		if !ok && r.Method == http.MethodHead {
			rt, ok = byMethod[http.MethodGet]
		}
		if !ok {
			methods := make([]string, 0, len(byMethod))
			for m := range byMethod {
				methods = append(methods, m)
			}
			sort.Strings(methods)
			sw.Header().Set("Allow", strings.Join(methods, ", "))
			writeJSON(sw, http.StatusMethodNotAllowed, map[string]string{
				"error": "Method " + r.Method + " is not allowed on " + pattern + "; use " + strings.Join(methods, " or ") + ".",
				"code":  "method_not_allowed",
			})
			return
		}
		// In --dev mode any request is admin: refuse browsers on other
		// sites (CSRF, DNS rebinding) by their Origin and Sec-Fetch-Site.
		if s.core.Dev() && crossSite(r) {
			s.refuse(sw, r, nil, warden.Errorf(warden.EFORBIDDEN, "Cross-site requests are refused in dev mode."))
			return
		}
		var p *warden.Principal
		if rt.roles != nil {
			var err error
			p, err = s.authenticate(r)
			if err == nil {
				principal = p.Name
				err = engine.Authorize(p, rt.action, rt.roles...)
			}
			if err != nil {
				s.refuse(sw, r, p, err)
				return
			}
		}
		if rt.stream {
			ctx, release, err := s.streams.acquire(r.Context(), p.Name, sw)
			if err != nil {
				writeError(sw, r, s.log, err)
				return
			}
			defer release()
			// A revocation that raced the authentication: the listener
			// may have missed this stream, so look again now that it
			// would see it.
			if s.core.RevocationNoticed(p.Name) {
				s.refuse(sw, r, p, warden.Errorf(warden.EUNAUTHORIZED, "Credential %q was revoked.", p.Name))
				return
			}
			r = r.WithContext(ctx)
		}
		if err := rt.h(sw, r, p); err != nil {
			if c := warden.ErrorCode(err); c == warden.EFORBIDDEN || c == warden.EUNAUTHORIZED {
				s.refuse(sw, r, p, err)
				return
			}
			writeError(sw, r, s.log, err)
		}
	})
}

// authenticate resolves the request's bearer credential.
func (s *Server) authenticate(r *http.Request) (*warden.Principal, error) {
	token, err := engine.BearerToken(r.Header.Values("Authorization"))
	if err != nil {
		return nil, err
	}
	return s.core.Authenticate(r.Context(), token)
}

// refuse answers 401/403 (400 for ambiguous credentials) and receipts the
// refusal.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, p *warden.Principal, err error) {
	status := StatusOf(err)
	f := engine.AuthFailure{
		Status: status,
		Code:   warden.ErrorCode(err),
		Reason: warden.ErrorMessage(err),
		Method: r.Method,
		Path:   r.URL.Path,
		Remote: remoteHost(r),
	}
	if p != nil {
		f.Principal = p.Name
	}
	// The receipt is written even if the client has gone away.
	s.core.RecordAuthFailure(context.WithoutCancel(r.Context()), f)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="warden"`)
	}
	writeError(w, r, s.log, err)
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ServeHTTP implements http.Handler. In --dev mode, where a request needs
// no credential, every route (mounted ones too) refuses a request that
// reached a loopback listener under a foreign Host name: a page on
// another site that rebinds its name to 127.0.0.1 would otherwise read
// the API, forensic bundles included, from the victim's browser.
//
// Every request, mounted handlers' included, gets one access line (log.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	acc := &access{}
	aw := &accessWriter{ResponseWriter: w, status: http.StatusOK}
	r = r.WithContext(context.WithValue(r.Context(), accessKey{}, acc))
	defer s.logAccess(r, aw, acc, start)
	w = aw
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if s.core.Dev() && rebinding(r) {
		s.refuse(w, r, nil, warden.Errorf(warden.EFORBIDDEN,
			"Host %q is not a loopback name: in dev mode requests must name the server as localhost or a loopback address (DNS-rebinding protection).", r.Host))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// rebinding reports whether r arrived on a loopback address under a Host
// that is not a loopback name (the MCP SDK's DNS-rebinding rule).
func rebinding(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || local == nil || !loopbackHost(local.String()) {
		return false
	}
	return !loopbackHost(r.Host)
}

// loopbackHost reports whether a host or host:port names the loopback
// interface: localhost or a loopback IP.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// statusWriter records the status of an API response and bounds how long
// it waits for the client: each write gets at most idle, and all writes
// together idle plus one second per minRate bytes sent.
type statusWriter struct {
	http.ResponseWriter
	ctx     context.Context // a stream's: once done, writes fail
	status  int
	rc      *http.ResponseController
	idle    time.Duration
	minRate float64
	written int64         // bytes accepted by the connection so far
	blocked time.Duration // time spent inside writes so far
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.extend()
	// Checked after extend: a stream cut off (stream.cut: cancel, then a
	// past deadline) either is seen here or fails the write below.
	if w.ctx != nil && w.ctx.Err() != nil {
		return 0, context.Cause(w.ctx)
	}
	start := time.Now()
	n, err := w.ResponseWriter.Write(b)
	w.blocked += time.Since(start)
	w.written += int64(n)
	return n, err
}

// extend sets the write deadline to what is left of the budget, at most
// idle from now (a budget spent sets it in the past: the next write
// fails). The last one set also bounds the flush after the handler
// returns; net/http then clears it, so it never reaches the connection's
// next request (an MCP event stream, say). Writers that cannot take a
// deadline (test recorders) are left unbounded.
func (w *statusWriter) extend() {
	budget := w.idle + time.Duration(float64(w.written)/w.minRate*float64(time.Second))
	left := min(budget-w.blocked, w.idle)
	_ = w.rc.SetWriteDeadline(time.Now().Add(left))
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// crossSite reports whether a browser sent r from another site: an Origin
// that is not a loopback host, or Sec-Fetch-Site cross-site/same-site.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil {
		return true
	}
	return !loopbackHost(u.Hostname())
}
