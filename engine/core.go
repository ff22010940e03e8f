// Package engine is warden's core: the one path every rule's transaction
// takes (Update: state change and receipts together, a refusal receipted on
// its own), the clock, drill tags, authentication, credentials, checkpoints,
// proofs, exports and key rotation. The two domains are built on it as their
// own packages: engine/recorder (incidents, containment, recovery, the
// integrity monitor, the containment policy, forensic bundles) and
// engine/governor (the profile ladder, approvals, the treasury, cognitive
// and guardian tools, phoenix operations, the governance tool table).
//
// The core never reads the wall clock (Options.Clock is injected) and does
// no I/O of its own beyond the Store.
package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// Options configure a Core.
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
	// Keys stores rotated signing keys (nil: rotation unavailable).
	Keys warden.KeyStore
	// Dev marks an unauthenticated local-trial server.
	Dev bool
	// Drill marks drill mode: receipts carry DRILL/* tags.
	Drill bool
	// AuthFailureRate and AuthFailureBurst bound how many auth_failure
	// receipts are written per second; the rest are counted and the count
	// is receipted with the next one. Zero means 20/s, burst 100.
	AuthFailureRate  float64
	AuthFailureBurst int
	// DenialRate and DenialBurst bound the denial receipts one principal
	// can cause per second the same way (the refusal itself always
	// happens). Zero means 20/s, burst 100.
	DenialRate  float64
	DenialBurst int
	// Metrics receives counters; nil disables them.
	Metrics *Metrics
}

// Core is the shared base of warden's rules: the store, the clock, the
// modes, the signing keys and the single transaction path (Update).
type Core struct {
	store   warden.Store
	now     warden.Clock
	log     *slog.Logger
	dev     bool
	drill   bool
	metrics *Metrics

	authFail *floodLimiter // auth_failure receipts
	denials  *floodLimiter // denial receipts, per principal
	storage  storageHealth
	cpMu     sync.Mutex // one checkpoint writer at a time per process
	ledger   atomic.Pointer[warden.LedgerCheck]
	distrust atomic.Pointer[distrusted] // credentials a state check found forged

	revMu       sync.Mutex
	onRevoke    []func(name string)
	seenRevoked map[string]bool // credentials the listeners have heard of

	keys   warden.KeyStore
	keyMu  sync.RWMutex // guards signer, pubkey and known across a rotation
	signer note.Signer
	known  note.Verifiers
	pubkey string
}

// New returns a core. It does not write anything until Start.
func New(o Options) (*Core, error) {
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
	e := &Core{
		store:   o.Store,
		now:     o.Clock,
		log:     o.Logger,
		dev:     o.Dev,
		drill:   o.Drill,
		metrics: o.Metrics,
		keys:    o.Keys,
		signer:  o.Signer,
		known:   o.Verifiers,
		pubkey:  o.PublicKey,
	}
	if o.Metrics != nil {
		if err := o.Metrics.bind(e); err != nil {
			return nil, fmt.Errorf("engine.New: %w", err)
		}
	}
	e.authFail = newFloodLimiter(o.AuthFailureRate, o.AuthFailureBurst, o.Clock)
	e.denials = newFloodLimiter(o.DenialRate, o.DenialBurst, o.Clock)
	return e, nil
}

// Store returns the core's store.
func (e *Core) Store() warden.Store { return e.store }

// Dev reports whether the server runs in --dev mode.
func (e *Core) Dev() bool { return e.dev }

// Drill reports whether the server runs in drill mode.
func (e *Core) Drill() bool { return e.drill }

// Now reads the injected clock. Rules call it, never time.Now.
func (e *Core) Now() time.Time { return e.now() }

// Logger is the server's structured logger.
func (e *Core) Logger() *slog.Logger { return e.log }

// Tags returns a receipt's tags, with DRILL/<scroll> added in drill mode so
// drill receipts can never be mistaken for real ones.
func (e *Core) Tags(scroll string, tags ...string) []string {
	if e.drill {
		tags = append(tags, "DRILL/"+scroll)
	}
	return tags
}

// Draft builds a receipt draft of type typ, stamped with the clock and
// tagged for drill mode. Its scroll is the catalogue's
// (warden.ReceiptScroll); Update refuses a type the catalogue lacks.
func (e *Core) Draft(typ string, body any, tags ...string) warden.Draft {
	scroll, _ := warden.ReceiptScroll(typ)
	return warden.Draft{Type: typ, Scroll: scroll, Tags: e.Tags(scroll, tags...), Time: e.now(), Body: body}
}

// StartInfo describes the server recorded in the server_start receipt.
type StartInfo struct {
	Version string `json:"version"`
	Addr    string `json:"addr"`
	Dev     bool   `json:"dev"`
	Drill   bool   `json:"drill_mode"`
	Origin  string `json:"origin"`
	// TLS says the API is served over TLS (MutualTLS: with client
	// certificates required); InsecurePlaintext that an operator chose
	// clear text on a non-loopback address.
	TLS               bool `json:"tls,omitempty"`
	MutualTLS         bool `json:"mutual_tls,omitempty"`
	InsecurePlaintext bool `json:"insecure_plaintext,omitempty"`
}

// Start records that a server started, with its dev and drill modes, and
// anchors everything already in the log (a server killed before its last
// checkpoint leaves an unanchored tail; the new checkpoint covers it).
func (e *Core) Start(ctx context.Context, info StartInfo) (*warden.Receipt, error) {
	info.Dev, info.Drill = e.dev, e.drill
	if s, _ := e.KeyState(); s != nil {
		info.Origin = s.Name()
	}
	tags := []string{"lifecycle"}
	if e.dev {
		tags = append(tags, "dev-mode")
	}
	if e.drill {
		tags = append(tags, "DRILL_MODE=ON")
	}
	if info.InsecurePlaintext {
		tags = append(tags, "insecure-plaintext")
	}
	var r *warden.Receipt
	err := e.Update(ctx, "engine.Start", func(tx warden.Tx) (err error) {
		r, err = tx.Append(e.Draft(warden.ReceiptServerStart, info, tags...))
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := e.Checkpoint(ctx); err != nil {
		return nil, fmt.Errorf("engine.Start: %w", err)
	}
	return r, nil
}
