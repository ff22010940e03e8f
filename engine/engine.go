// Package engine holds warden's rules. Each exported operation is one store
// transaction that makes its state change and writes its receipts together,
// or refuses and receipts the refusal. Transports (HTTP, MCP, CLI) call the
// engine; the engine calls the store and hands post-commit effects to
// actuators. The engine never reads the wall clock: Options.Clock is
// injected.
package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// Options configure an Engine.
type Options struct {
	Store  warden.Store
	Clock  warden.Clock
	Logger *slog.Logger
	// Signer signs checkpoints; its key name is the log's origin. Required
	// for a server; read-only tools (verify, export) may leave it nil.
	Signer note.Signer
	// Verifiers are the public keys checkpoints are checked against.
	Verifiers note.Verifiers
	// PublicKey is the signed-note verifier key text, served at /pubkey.
	PublicKey string
	// Dev marks an unauthenticated local-trial server.
	Dev bool
	// Drill marks drill mode: receipts carry DRILL/* tags.
	Drill bool
	// AuthFailureRate and AuthFailureBurst bound how many auth_failure
	// receipts are written per second; the rest are counted and the count
	// is receipted with the next one. Zero means 20/s, burst 100.
	AuthFailureRate  float64
	AuthFailureBurst int
	// Metrics receives counters; nil disables them.
	Metrics *Metrics

	// Policy is the containment policy (nil: warden.DefaultPolicy()).
	Policy *warden.ContainmentPolicy
	// PolicyDigest identifies Policy in receipts ("sha256:…"); computed
	// when empty.
	PolicyDigest string
	// LoadPolicy re-reads the policy file for POST /api/v1/reload; nil
	// means the policy is built in and reload keeps it.
	LoadPolicy func() (*warden.ContainmentPolicy, error)
	// Actuator executes containment actions (drill mode: a dry-run one).
	Actuator Actuator
	// Waker is woken after webhook deliveries are committed.
	Waker Waker
	// Integrity snapshots and checks watched files.
	Integrity IntegrityChecker
	// HMACKey signs forensic bundles.
	HMACKey []byte
	// Ladder is the escalation ladder (nil: seed 002's DefaultLadder).
	Ladder *warden.Ladder
	// Authority is the tool → minimum profile matrix (nil: DefaultAuthority).
	Authority map[string]warden.Profile
	// Mirror receives anchored checkpoints (nil: not exported).
	Mirror Mirror
	// Keys stores rotated signing keys (nil: rotation unavailable).
	Keys KeyStore
}

// Engine applies warden's rules over a Store.
type Engine struct {
	store   warden.Store
	now     warden.Clock
	log     *slog.Logger
	signer  note.Signer
	known   note.Verifiers
	pubkey  string
	dev     bool
	drill   bool
	metrics *Metrics

	authFail authFailureLimiter
	cpMu     sync.Mutex // one checkpoint writer at a time per process

	policy     atomic.Pointer[policyState]
	loadPolicy func() (*warden.ContainmentPolicy, error)
	actuator   Actuator
	waker      Waker
	integrity  IntegrityChecker
	hmacKey    []byte
	ladder     *warden.Ladder
	// pendingWake is set when a transaction enqueued webhook deliveries.
	pendingWake atomic.Bool
	authority   map[string]warden.Profile
	mirror      Mirror
	keys        KeyStore
	keyMu       sync.RWMutex // guards signer, pubkey and known across a rotation
}

// New returns an engine. It does not write anything until Start.
func New(o Options) (*Engine, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("engine.New: no store")
	}
	if o.Clock == nil {
		o.Clock = warden.SystemClock
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Verifiers == nil && o.PublicKey != "" {
		v, _, err := ledger.ParseVerifiers([]byte(o.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("engine.New: %w", err)
		}
		o.Verifiers = v
	}
	e := &Engine{
		store:   o.Store,
		now:     o.Clock,
		log:     o.Logger,
		signer:  o.Signer,
		known:   o.Verifiers,
		pubkey:  o.PublicKey,
		dev:     o.Dev,
		drill:   o.Drill,
		metrics: o.Metrics,
	}
	e.authFail.init(o.AuthFailureRate, o.AuthFailureBurst, o.Clock)
	e.loadPolicy, e.actuator, e.waker, e.integrity, e.hmacKey = o.LoadPolicy, o.Actuator, o.Waker, o.Integrity, o.HMACKey
	if o.Policy == nil {
		o.Policy = warden.DefaultPolicy()
	}
	ps, err := newPolicyState(o.Policy, o.PolicyDigest)
	if err != nil {
		return nil, fmt.Errorf("engine.New: %w", err)
	}
	e.policy.Store(ps)
	e.ladder, e.authority, e.mirror, e.keys = o.Ladder, o.Authority, o.Mirror, o.Keys
	if e.ladder == nil {
		e.ladder = warden.DefaultLadder()
	}
	if err := e.ladder.Validate(); err != nil {
		return nil, fmt.Errorf("engine.New: %w", err)
	}
	if e.authority == nil {
		e.authority = DefaultAuthority
	}
	return e, nil
}

// Store returns the engine's store.
func (e *Engine) Store() warden.Store { return e.store }

// Dev reports whether the engine runs in --dev mode.
func (e *Engine) Dev() bool { return e.dev }

// Drill reports whether the engine runs in drill mode.
func (e *Engine) Drill() bool { return e.drill }

// tags returns a receipt's tags, with DRILL/<scroll> added in drill mode so
// drill receipts can never be mistaken for real ones.
func (e *Engine) tags(scroll string, tags ...string) []string {
	if e.drill {
		tags = append(tags, "DRILL/"+scroll)
	}
	return tags
}

// draft builds a receipt draft stamped with the engine's clock.
func (e *Engine) draft(typ, scroll string, body any, tags ...string) warden.Draft {
	return warden.Draft{Type: typ, Scroll: scroll, Tags: e.tags(scroll, tags...), Time: e.now(), Body: body}
}

// StartInfo describes the server recorded in the server_start receipt.
type StartInfo struct {
	Version string `json:"version"`
	Addr    string `json:"addr"`
	Dev     bool   `json:"dev"`
	Drill   bool   `json:"drill_mode"`
	Origin  string `json:"origin"`
}

// Start records that a server started, with its dev and drill modes, and
// anchors everything already in the log (a server killed before its last
// checkpoint leaves an unanchored tail; the new checkpoint covers it).
func (e *Engine) Start(ctx context.Context, info StartInfo) (*warden.Receipt, error) {
	info.Dev, info.Drill = e.dev, e.drill
	if e.signer != nil {
		info.Origin = e.signer.Name()
	}
	tags := []string{"lifecycle"}
	if e.dev {
		tags = append(tags, "dev-mode")
	}
	if e.drill {
		tags = append(tags, "DRILL_MODE=ON")
	}
	var r *warden.Receipt
	err := e.store.Update(ctx, func(tx warden.Tx) (err error) {
		r, err = tx.Append(e.draft(warden.ReceiptServerStart, warden.ScrollSystem, info, tags...))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("engine.Start: %w", err)
	}
	if _, err := e.Checkpoint(ctx); err != nil {
		return nil, fmt.Errorf("engine.Start: %w", err)
	}
	return r, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
