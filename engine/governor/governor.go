// Package governor is warden's authority and spending governance (seeds
// 000 and 002), built on the engine core: the profile ladder with its hop
// policies, approvals and TTLs, de-escalation and the TTL sweep, the
// treasury, cognitive decisions and Tem invocations, guardian status and
// anchoring, phoenix operations, and the governance tool table that HTTP
// and MCP expose with seed 000's names. Every operation is one
// engine.Core.Update: the state change and its receipts together, or a
// refusal and its receipt.
package governor

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

// Incidents is what the governor needs from the incident recorder
// (recorder.Recorder implements it): counts for cognitive_context, and the
// containment policy and actuator for phoenix lockdown.
type Incidents interface {
	// Health is /health's answer.
	Health(ctx context.Context) (*warden.Health, error)
	// Stats are the incident counters.
	Stats(ctx context.Context) (*warden.IncidentStats, error)
	// Policy is the containment policy in force and its digest.
	Policy() (*warden.ContainmentPolicy, string)
	// RunActions runs containment actions for inc under policy p and
	// reports each outcome; it records nothing itself.
	RunActions(ctx context.Context, p *warden.ContainmentPolicy, actions []string, inc *warden.Incident) []warden.ContainmentResult
}

// Options configure a Governor.
type Options struct {
	// Ladder is the escalation ladder (nil: seed 002's DefaultLadder).
	Ladder *warden.Ladder
	// Authority is the tool → minimum profile matrix (nil: DefaultAuthority).
	Authority map[string]warden.Profile
	// Mirror receives anchored checkpoints (nil: not exported).
	Mirror warden.Mirror
	// Incidents is the incident recorder. Required.
	Incidents Incidents
	// Registry, when set, receives the governor's gauges (metrics.go),
	// which RefreshMetrics sets.
	Registry prometheus.Registerer
}

// Governor applies the governance rules over an engine core.
type Governor struct {
	core      *engine.Core
	ladder    *warden.Ladder
	authority map[string]warden.Profile
	mirror    warden.Mirror
	incidents Incidents
	metrics   *metrics // nil without Options.Registry
}

// New returns a governor over core. It writes nothing. EINVALID-worthy
// configuration (a ladder that fails Validate) is an error.
func New(core *engine.Core, o Options) (*Governor, error) {
	if core == nil || o.Incidents == nil {
		return nil, fmt.Errorf("governor.New: a core and the incident recorder are required")
	}
	g := &Governor{core: core, ladder: o.Ladder, authority: o.Authority, mirror: o.Mirror, incidents: o.Incidents}
	if g.ladder == nil {
		g.ladder = warden.DefaultLadder()
	}
	if err := g.ladder.Validate(); err != nil {
		return nil, fmt.Errorf("governor.New: %w", err)
	}
	if g.authority == nil {
		g.authority = DefaultAuthority
	}
	if o.Registry != nil {
		var err error
		if g.metrics, err = newMetrics(o.Registry); err != nil {
			return nil, fmt.Errorf("governor.New: %w", err)
		}
	}
	return g, nil
}
