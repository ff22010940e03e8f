package engine

import (
	"context"

	warden "github.com/warden-sh/warden"
)

// Actuator carries out containment actions after the incident that calls
// for them is committed. Package contain implements it with HTTP calls to
// the policy's targets, and a dry-run variant for drill mode.
type Actuator interface {
	// Execute runs one containment action for inc under policy p and
	// reports its outcome. It MUST honour ctx, bound its retries, never
	// panic, and report success only when the target confirmed (2xx).
	// CompletedAt is set with the actuator's clock.
	Execute(ctx context.Context, p *warden.ContainmentPolicy, action string, inc *warden.Incident) warden.ContainmentResult
}

// Waker is told when new webhook deliveries were committed, so the sender
// does not wait for its next poll. Wake MUST NOT block.
type Waker interface {
	Wake()
}
