// Package recorder is warden's incident recorder (seed 001), built on the
// engine core: reports and their severity windows, containment and its
// resumption after a crash, the latch and the recovery ceremony, the
// integrity monitor and the attestation and integrity states, the
// containment policy and its reloads, webhook alerts, and signed forensic
// bundles. Every operation is one engine.Core.Update: the state change and
// its receipts together, or a refusal and its receipt.
package recorder

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

// Options configure a Recorder.
type Options struct {
	// Policy is the containment policy (nil: warden.DefaultPolicy()).
	Policy *warden.ContainmentPolicy
	// PolicyDigest identifies Policy in receipts ("sha256:…"); computed
	// when empty.
	PolicyDigest string
	// LoadPolicy re-reads the policy file for POST /api/v1/reload; nil
	// means the policy is built in and reload keeps it.
	LoadPolicy func() (*warden.ContainmentPolicy, error)
	// Actuator executes containment actions (drill mode: a dry-run one).
	Actuator warden.Actuator
	// Waker is woken after webhook deliveries are committed.
	Waker warden.Waker
	// Integrity snapshots and checks watched files.
	Integrity warden.IntegrityChecker
	// HMACKey signs forensic bundles.
	HMACKey []byte
	// Registry, when set, receives the recorder's metrics (metrics.go):
	// containment outcomes, and the incident and webhook gauges that
	// RefreshMetrics sets.
	Registry prometheus.Registerer
}

// Recorder applies the incident rules over an engine core.
type Recorder struct {
	core       *engine.Core
	policy     atomic.Pointer[policyState]
	loadPolicy func() (*warden.ContainmentPolicy, error)
	actuator   warden.Actuator
	waker      warden.Waker
	integrity  warden.IntegrityChecker
	hmacKey    []byte
	// pendingWake is set when a transaction enqueued webhook deliveries.
	pendingWake atomic.Bool

	// held: containment that ran and awaits recording, by incident id.
	heldMu  sync.Mutex
	held    map[string]*heldContainment
	retryMu sync.Mutex // one RecordHeldContainment at a time

	metrics *metrics // nil without Options.Registry
}

// New returns a recorder over core. It writes nothing.
func New(core *engine.Core, o Options) (*Recorder, error) {
	if core == nil {
		return nil, fmt.Errorf("recorder.New: no core")
	}
	rec := &Recorder{core: core, loadPolicy: o.LoadPolicy, actuator: o.Actuator, waker: o.Waker, integrity: o.Integrity, hmacKey: o.HMACKey}
	if o.Policy == nil {
		o.Policy = warden.DefaultPolicy()
	}
	ps, err := newPolicyState(o.Policy, o.PolicyDigest)
	if err != nil {
		return nil, fmt.Errorf("recorder.New: %w", err)
	}
	rec.policy.Store(ps)
	if o.Registry != nil {
		if rec.metrics, err = newMetrics(o.Registry); err != nil {
			return nil, fmt.Errorf("recorder.New: %w", err)
		}
	}
	return rec, nil
}
