package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/stack"
	wardenhttp "github.com/warden-sh/warden/http"
	"github.com/warden-sh/warden/integrity"
	wardenmcp "github.com/warden-sh/warden/mcp"
	"github.com/warden-sh/warden/sqlite"
)

// AdminName is the name of the credential `warden init` creates.
const AdminName = "admin"

func (e *env) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a data directory: database, ledger signing key, HMAC and webhook keys, and an admin credential",
		Long: `Create the data directory (0700) with the SQLite database (warden.db), the
default containment policy (containment.yaml), and keys (private ones 0600):

  ledger.key, ledger.pub  ed25519 ledger signing key; give ledger.pub to verifiers
  hmac.key                the forensic key: HMACs forensic bundles (forensic verify --hmac-key)
  webhook.key             signs webhooks (X-Warden-Signature); give it to webhook receivers

and an admin credential whose token is printed exactly once and stored only
as a hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := datadir.Init(e.data)
			if err != nil {
				return usageError{err}
			}
			if err := writeDefaultPolicy(dir); err != nil {
				return err
			}
			l, err := openDir(dir, nil, nil)
			if err != nil {
				return err
			}
			defer l.Close()
			cred, err := l.core.Bootstrap(e.ctx, AdminName)
			if err != nil {
				return err
			}
			if _, err := l.core.Checkpoint(e.ctx); err != nil {
				return err
			}
			return e.printInit(dir, cred)
		},
	}
}

func (e *env) printInit(dir *datadir.Dir, cred *engine.NewCredential) error {
	return e.print(map[string]string{"data": dir.Path, "origin": dir.Origin, "pubkey": dir.PublicKey, "admin": cred.Name, "token": cred.Token},
		func(w io.Writer) {
			fmt.Fprintf(w, "Initialised %s (log origin %s).\n", dir.Path, dir.Origin)
			fmt.Fprintf(w, "Ledger public key (give it to verifiers): %s\n", dir.PublicKey)
			fmt.Fprintf(w, "Admin credential %q — this token is shown ONCE and stored only as a hash:\n\n    %s\n\n", cred.Name, cred.Token)
		})
}

type serveFlags struct {
	policy            string
	integrityInterval time.Duration
	metricsInterval   time.Duration
	integrityRoots    []string
	integrityTimeout  time.Duration
	mirror            string
	cpuprofile        string
	governance        string
	compatPorts       bool
	compatSet         bool // --compat-ports was given, either way
	addr              string
	dev               bool
	drill             bool
	logLevel          string
	logFormat         string
	readyFile         string
	tlsCert, tlsKey   string
	tlsClientCA       string
	insecurePlaintext bool
	acceptTampered    string
	verifySyncLimit   uint64

	maxStreams, maxStreamsPerPrincipal   int
	mcpSessions, mcpSessionsPerPrincipal int
	mcpSessionIdle                       time.Duration
}

func (e *env) serveCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the warden server (HTTP API, checkpointer)",
		Long: `Run the warden server on the data directory, initialising it on first start.

--dev is for local trials only: it refuses any non-loopback address, accepts
unauthenticated requests as principal "dev" (admin), and records in a receipt
that it runs in dev mode.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.compatSet = cmd.Flags().Changed("compat-ports")
			return e.serve(f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", envOr("WARDEN_ADDR", "127.0.0.1:8515"), "listen address (env WARDEN_ADDR); off loopback it needs TLS or --insecure-plaintext")
	fl.StringVar(&f.tlsCert, "tls-cert", os.Getenv("WARDEN_TLS_CERT"), "serve TLS with this certificate (PEM; reloaded when the file changes; env WARDEN_TLS_CERT)")
	fl.StringVar(&f.tlsKey, "tls-key", os.Getenv("WARDEN_TLS_KEY"), "private key (PEM) of --tls-cert (env WARDEN_TLS_KEY)")
	fl.StringVar(&f.tlsClientCA, "tls-client-ca", "", "require client certificates signed by this CA (PEM): mutual TLS")
	fl.BoolVar(&f.insecurePlaintext, "insecure-plaintext", false, "serve without TLS on a non-loopback address anyway (bearer tokens cross the network readable; receipted in server_start)")
	fl.StringVar(&f.acceptTampered, "accept-tampered", "", "take writes although the startup check fails, if it fails exactly as named (the failure /health reported: a sequence number, or state-…); the decision is receipted, and lasts for this process (docs/ARCHITECTURE.md: startup verification)")
	fl.Uint64Var(&f.verifySyncLimit, "verify-sync-limit", engine.DefaultSyncLimit, "logs up to this many receipts are verified in full before writes are accepted; larger ones in the background")
	fl.BoolVar(&f.dev, "dev", false, "local trial mode: loopback only, unauthenticated requests act as principal dev")
	fl.BoolVar(&f.drill, "drill", os.Getenv("DRILL_MODE") == "1", "drill mode: containment dry-run, DRILL/* tags (env DRILL_MODE=1)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", envOr("WARDEN_LOG_FORMAT", logFormatAuto), "auto, json or text: auto writes text when stderr is a terminal, JSON lines otherwise (env WARDEN_LOG_FORMAT)")
	fl.StringVar(&f.readyFile, "ready-file", "", "write the bound address to this file once serving (for tests and supervisors)")
	fl.StringVar(&f.policy, "policy", os.Getenv("WARDEN_POLICY"), "containment policy YAML (default DATA/containment.yaml if present, else the built-in policy, the one warden init writes; env WARDEN_POLICY)")
	fl.DurationVar(&f.integrityInterval, "integrity-interval", time.Minute, "how often to scan the integrity baseline (0 disables the periodic scan)")
	fl.StringArrayVar(&f.integrityRoots, "integrity-root", filepath.SplitList(os.Getenv("WARDEN_INTEGRITY_ROOTS")), "a directory the integrity monitor may read; baselines may watch only paths beneath one (repeatable; none: no baseline can be recorded; env WARDEN_INTEGRITY_ROOTS, "+string(filepath.ListSeparator)+"-separated)")
	fl.DurationVar(&f.metricsInterval, "metrics-interval", 10*time.Second, "how often the metrics that need a store read (open and latched incidents, webhook backlog, active escalations, budgets) are refreshed; a scrape reads the last values (0 disables the refresh)")
	fl.DurationVar(&f.integrityTimeout, "integrity-timeout", integrity.DefaultTimeout, "time bound of one integrity baseline or scan")
	fl.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file (performance work)")
	_ = fl.MarkHidden("cpuprofile")
	fl.StringVar(&f.governance, "governance", os.Getenv("WARDEN_GOVERNANCE"), "governance YAML: ladder hops (TTLs, approvals, quorum) and the tool authority matrix (default: the built-in ladder, docs/GOVERNANCE.md; env WARDEN_GOVERNANCE)")
	fl.StringVar(&f.mirror, "mirror", "", "directory guardian_anchor exports signed checkpoints to (default DATA/mirror)")
	fl.IntVar(&f.maxStreams, "max-streams", wardenhttp.DefaultMaxStreams, "streamed responses (forensic exports, incident and receipt listings) sent at once; more are refused 429 (the store keeps as many read connections for them, apart from the ones authentication, /health and writes use)")
	fl.IntVar(&f.maxStreamsPerPrincipal, "max-streams-per-principal", wardenhttp.DefaultMaxStreamsPerPrincipal, "streamed responses one principal may receive at once")
	fl.IntVar(&f.mcpSessions, "mcp-max-sessions", wardenmcp.DefaultMaxSessions, "open MCP sessions on /mcp; a new one past it is refused 429")
	fl.IntVar(&f.mcpSessionsPerPrincipal, "mcp-max-sessions-per-principal", wardenmcp.DefaultMaxSessionsPerPrincipal, "open MCP sessions one principal may hold")
	fl.DurationVar(&f.mcpSessionIdle, "mcp-session-idle", wardenmcp.DefaultSessionIdle, "close an MCP session after this long without a request")
	fl.BoolVar(&f.compatPorts, "compat-ports", false, "also answer GET /api/v1/state on :8505 (attestation) and :8510 (integrity) of the same host, as the reference recorder's attestation and integrity checks expect (default: on with --dev, where a busy port is only a warning)")
	return cmd
}

func (e *env) serve(f serveFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	// Text for a person at a terminal, JSON for a collector; repeated
	// warnings and errors (a full disk fails every write) are sampled,
	// with counts (loglimit.go).
	limited, err := newLogHandler(e.stderr, f.logFormat, level, time.Now)
	if err != nil {
		return usageError{err}
	}
	defer limited.Flush()
	logger := slog.New(limited)
	if f.cpuprofile != "" {
		pf, err := os.Create(f.cpuprofile)
		if err != nil {
			return usageError{err}
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	if f.dev {
		if err := requireLoopback(f.addr); err != nil {
			return usageError{err}
		}
	}
	tlsCfg, err := serverTLS(f.tlsCert, f.tlsKey, f.tlsClientCA, logger)
	if err != nil {
		return usageError{err}
	}
	if err := requirePrivateTransport(f.addr, tlsCfg != nil, f.insecurePlaintext); err != nil {
		return usageError{err}
	}
	if tlsCfg != nil || isLoopback(f.addr) {
		f.insecurePlaintext = false // nothing to accept
	}
	for _, l := range []struct {
		flag string
		n    int
	}{{"--max-streams", f.maxStreams}, {"--max-streams-per-principal", f.maxStreamsPerPrincipal},
		{"--mcp-max-sessions", f.mcpSessions}, {"--mcp-max-sessions-per-principal", f.mcpSessionsPerPrincipal}, {"--mcp-session-idle", int(f.mcpSessionIdle)}} {
		if l.n <= 0 {
			return usageError{fmt.Errorf("%s must be positive", l.flag)}
		}
	}
	// Bind before anything else happens: a busy port must fail before a
	// data directory is created and its one-time admin token printed
	// (and burnt). Connections wait in the backlog until Serve below.
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.addr, err)
	}
	defer ln.Close() // Serve owns it once started; closing twice is harmless
	addr := ln.Addr().String()
	// A dev trial answers the reference recorder's attestation and integrity ports too, unless
	// told otherwise; asked for explicitly, the ports are required.
	var compatLns []net.Listener
	if f.compatPorts || (f.dev && !f.compatSet) {
		if compatLns, err = listenCompat(f.addr); err != nil {
			if f.compatPorts {
				return err
			}
			logger.Warn("dev mode serves without the reference recorder's attestation and integrity ports (--compat-ports)", "err", err)
		}
	}
	defer func() {
		for _, l := range compatLns {
			l.Close()
		}
	}()
	dir, fresh, err := e.openServeDir(logger)
	if err != nil {
		return err
	}

	// The rules, over the data directory's store.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := engine.NewMetrics(reg)
	policyPath := policySource(f.policy, dir)
	var sender *contain.WebhookSender
	var optErr error
	// The store's stream pool is the API's stream limit: an admitted
	// stream never waits for a connection, and never takes one from
	// authentication, /health or writes.
	l, err := openDir(dir, logger, &sqlite.Options{StreamConns: f.maxStreams, OnCommit: func(ops int, d time.Duration) {
		metrics.CommitBatchOps.Observe(float64(ops))
		metrics.CommitBatchSeconds.Observe(d.Seconds())
	}}, func(c *stack.Config) {
		c.Core.Dev, c.Core.Drill, c.Core.Metrics = f.dev, f.drill, metrics
		c.Recorder.Registry, c.Governor.Registry = reg, reg
		c.Recorder.HMACKey = dir.HMACKey
		optErr = containmentOptions(c, policyPath, logger, f.integrityRoots, f.integrityTimeout)
		if optErr == nil && f.governance != "" {
			c.Governor.Ladder, c.Governor.Authority, optErr = loadGovernance(f.governance)
		}
		sender = &contain.WebhookSender{HMACKey: dir.WebhookKey, Logger: logger}
		c.Recorder.Waker = sender
		mirror := f.mirror
		if mirror == "" {
			mirror = filepath.Join(dir.Path, "mirror")
		}
		c.Governor.Mirror = datadir.Mirror{Dir: mirror}
	})
	if err != nil {
		return err
	}
	defer l.Close()
	if optErr != nil {
		return usageError{optErr}
	}
	core, rec, gov := l.core, l.rec, l.gov
	sender.Outbox = rec // outcomes are recorded through the recorder

	// Check the log and the state before building on them (startup.go):
	// the tail now, the whole log now or in the background.
	bg, stopBG := context.WithCancel(context.WithoutCancel(e.ctx))
	defer stopBG()
	readOnly := func(c warden.LedgerCheck) {
		logger.Error("serving read-only: the ledger failed verification; restore the data directory, or accept this failure with --accept-tampered="+c.Failure,
			"reason", c.Reason, "first_bad_seq", c.FirstBadSeq)
	}
	err = core.CheckAtStart(bg, engine.StartupCheck{Projections: l.projections(), SyncLimit: f.verifySyncLimit,
		Accept: f.acceptTampered, AcceptedBy: "operator (warden serve --accept-tampered)",
		Done: func(c warden.LedgerCheck) {
			switch c.State {
			case warden.LedgerVerified:
				logger.Info("ledger and state verified", "receipts", c.Checked)
			case warden.LedgerTampered:
				readOnly(c)
			case warden.LedgerAccepted:
				logger.Warn("accepted a failed ledger verification; the decision is receipted", "failure", c.Failure, "reason", c.Reason)
			}
		}})
	if err != nil {
		return fmt.Errorf("startup verification: %w", err)
	}
	switch c := core.Ledger(); {
	case c.Refuses() && f.acceptTampered != "":
		return usageError{fmt.Errorf("--accept-tampered=%s names another failure than the one found: %s (%s); accept the failure you were shown", f.acceptTampered, c.Failure, c.Reason)}
	case c.State == warden.LedgerVerified && f.acceptTampered != "":
		logger.Warn("--accept-tampered given, but the check found nothing to accept")
	}
	writable := !core.Ledger().Refuses()

	// A store without any credential was never given its admin: a new
	// directory, or one whose first start failed after creating it (a bad
	// --policy, a crash). Its admin is minted now, whichever it was.
	if fresh || writable {
		n, err := core.CountCredentials(e.ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			cred, err := core.Bootstrap(e.ctx, AdminName)
			if err != nil {
				return err
			}
			if err := e.printInit(dir, cred); err != nil {
				return err
			}
		}
	}

	if f.dev {
		logger.Warn("DEV MODE: unauthenticated requests act as principal \"dev\" with every role; never use this outside a local trial", "addr", addr)
	}
	if f.drill {
		logger.Warn("DRILL MODE: containment and Phoenix operations are dry-run; receipts carry DRILL/* tags")
	}
	source := policyPath
	if source == "" {
		source = "built-in"
	}
	if writable {
		if err := rec.RecordPolicy(e.ctx, source); err != nil {
			return err
		}
		// Start receipts the start and checkpoints everything before it.
		if _, err := core.Start(e.ctx, engine.StartInfo{Version: Version, Addr: addr, TLS: tlsCfg != nil, MutualTLS: f.tlsClientCA != "",
			InsecurePlaintext: f.insecurePlaintext}); err != nil {
			return err
		}
	}
	// Containment a crash interrupted, listed before any new report can
	// arrive, so each incident is contained by exactly one party.
	interrupted, err := rec.InterruptedContainment(e.ctx)
	if err != nil {
		return err
	}

	// The first scrape already sees the store's gauges.
	if err := l.refreshMetrics(e.ctx); err != nil {
		logger.Error("refreshing metrics", "err", err)
	}

	api := wardenhttp.NewServer(wardenhttp.Options{Core: core, Recorder: rec, Governor: gov, Logger: logger, Registry: reg,
		Version: Version, MaxStreams: f.maxStreams, MaxStreamsPerPrincipal: f.maxStreamsPerPrincipal,
		Mount: e.mcpMount(core, gov, logger, wardenmcp.WithRegistry(reg),
			wardenmcp.WithSessionLimits(f.mcpSessions, f.mcpSessionsPerPrincipal), wardenmcp.WithSessionIdle(f.mcpSessionIdle))})
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("warden serving", "addr", addr, "origin", dir.Origin, "data", dir.Path, "version", Version)
	if f.readyFile != "" {
		if err := os.WriteFile(f.readyFile, []byte(addr+"\n"), 0o600); err != nil {
			return err
		}
	}

	compat := serveCompat(compatLns, api, tlsCfg, logger)

	waitBG := runLoops(bg, serverLoops(l, sender, interrupted, f.integrityInterval, f.metricsInterval), logger)

	select {
	case <-e.ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("server stopped", "err", err)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Error("graceful shutdown", "err", err)
	}
	for _, c := range compat {
		c.Shutdown(shutdownCtx)
	}
	stopBG()
	waitBG()
	final := context.WithoutCancel(e.ctx)
	if core.Ledger().Refuses() {
		return nil // nothing was written, nothing is signed
	}
	if err := core.FlushSuppressed(final); err != nil {
		logger.Error("flushing auth failure count", "err", err)
	}
	cp, err := core.Checkpoint(final)
	if err != nil {
		return fmt.Errorf("final checkpoint: %w", err)
	}
	if cp != nil {
		logger.Info("final checkpoint", "size", cp.Size)
	}
	return nil
}

// openServeDir loads the data directory, initialising it on first start
// (fresh), and makes sure it has a webhook key.
func (e *env) openServeDir(logger *slog.Logger) (dir *datadir.Dir, fresh bool, err error) {
	fresh = !datadir.Initialized(e.data)
	if fresh {
		if dir, err = datadir.Init(e.data); err == nil {
			err = writeDefaultPolicy(dir)
		}
	} else {
		dir, err = datadir.Load(e.data)
	}
	if err != nil {
		return nil, false, err
	}
	if created, err := dir.EnsureWebhookKey(); err != nil {
		return nil, false, err
	} else if created {
		logger.Warn("created "+datadir.WebhookFile+": webhooks are now signed with it instead of "+datadir.HMACFile+
			"; give it to webhook receivers, and rotate "+datadir.HMACFile+" (the forensic key), which they held (README: Keys)",
			"file", filepath.Join(dir.Path, datadir.WebhookFile))
	}
	return dir, fresh, nil
}

// requireLoopback refuses any address that is not on the loopback
// interface: --dev accepts unauthenticated requests.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--dev refuses to listen on %q: dev mode accepts unauthenticated requests, so it binds only loopback (127.0.0.0/8 or ::1)", addr)
	}
	return nil
}

// compatPaths are the reference recorder's attestation and integrity ports (same host as --addr) and
// what GET /api/v1/state answers on each: the attestation state on :8505,
// the integrity state on :8510.
var compatPaths = []struct{ port, path string }{{"8505", "/api/v1/attestation/state"}, {"8510", "/api/v1/integrity/state"}}

// listenCompat binds the compat ports, in compatPaths order, or none.
func listenCompat(addr string) ([]net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var out []net.Listener
	for _, c := range compatPaths {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, c.port))
		if err != nil {
			for _, l := range out {
				l.Close()
			}
			return nil, fmt.Errorf("--compat-ports: %w", err)
		}
		out = append(out, ln)
	}
	return out, nil
}

// serveCompat answers those ports on the listeners listenCompat
// bound.
func serveCompat(lns []net.Listener, api *wardenhttp.Server, tlsCfg *tls.Config, logger *slog.Logger) []*http.Server {
	var out []*http.Server
	for i, ln := range lns {
		mux := http.NewServeMux()
		path := compatPaths[i].path
		mux.HandleFunc("/api/v1/state", func(w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			r2.URL.Path = path
			api.ServeHTTP(w, r2)
		})
		s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		go s.Serve(ln)
		logger.Info("compat port serving", "addr", ln.Addr().String(), "answers", path)
		out = append(out, s)
	}
	return out
}
