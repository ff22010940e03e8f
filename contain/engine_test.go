package contain_test

import (
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

// The actuators and the sender implement the ports (ports.go).
var (
	_ warden.Actuator = (*contain.HTTPActuator)(nil)
	_ warden.Actuator = (*contain.DryRunActuator)(nil)
	_ warden.Waker    = (*contain.WebhookSender)(nil)
)
