package contain_test

import (
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/engine"
)

// The actuators and the sender plug into the engine's interfaces.
var (
	_ engine.Actuator = (*contain.HTTPActuator)(nil)
	_ engine.Actuator = (*contain.DryRunActuator)(nil)
	_ engine.Waker    = (*contain.WebhookSender)(nil)
)
