// Package stack assembles warden's rules over one store: the engine core
// and the domains built on it (the incident recorder and the governor),
// wired to each other. Servers, command-line tools, benchmarks and tests
// all build them here, so there is one place that knows how they fit.
package stack

import (
	"fmt"

	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/recorder"
)

// Config configures every part. Governor.Incidents is set to the recorder.
type Config struct {
	Core     engine.Options
	Recorder recorder.Options
	Governor governor.Options
}

// Stack is the core and its domains over one store.
type Stack struct {
	Core     *engine.Core
	Recorder *recorder.Recorder
	Governor *governor.Governor
}

// New builds the stack. It writes nothing.
func New(c Config) (*Stack, error) {
	core, err := engine.New(c.Core)
	if err != nil {
		return nil, err
	}
	rec, err := recorder.New(core, c.Recorder)
	if err != nil {
		return nil, err
	}
	c.Governor.Incidents = rec
	gov, err := governor.New(core, c.Governor)
	if err != nil {
		return nil, fmt.Errorf("stack.New: %w", err)
	}
	return &Stack{Core: core, Recorder: rec, Governor: gov}, nil
}

// Projections are every projection of the state tables (see
// engine.Projection): what a replay of the receipts rebuilds and compares.
func (s *Stack) Projections() []engine.Projection {
	var out []engine.Projection
	out = append(out, s.Core.Projections()...)
	out = append(out, s.Recorder.Projections()...)
	return append(out, s.Governor.Projections()...)
}
