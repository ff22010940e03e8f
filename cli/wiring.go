package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/integrity"
)

// PolicyFile is the containment policy's default name in the data directory.
const PolicyFile = "containment.yaml"

// integrityChecker adapts package integrity to engine.IntegrityChecker.
type integrityChecker struct{ clock warden.Clock }

func (c integrityChecker) Snapshot(paths []string) (*warden.IntegrityBaseline, error) {
	return integrity.Snapshot(paths, c.clock)
}

func (c integrityChecker) Check(b *warden.IntegrityBaseline) (bool, map[string]string, string, error) {
	findings, err := integrity.Scan(b)
	if err != nil {
		return false, nil, "", err
	}
	if len(findings) == 0 {
		return true, map[string]string{"summary": fmt.Sprintf("%d files match the baseline", len(b.Files))}, "", nil
	}
	return false, integrity.Evidence(findings), integrity.Fingerprint(findings), nil
}

// policySource resolves the policy file: --policy, else DATA/containment.yaml
// if present, else the built-in runbook table ("" path).
func policySource(flag string, dir *datadir.Dir) string {
	if flag != "" {
		return flag
	}
	p := filepath.Join(dir.Path, PolicyFile)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// containmentOptions sets the engine's policy, actuator and integrity
// checker for a server.
func containmentOptions(o *engine.Options, policyPath string, drill bool, logger *slog.Logger) error {
	if policyPath != "" {
		pol, _, err := contain.LoadPolicy(policyPath)
		if err != nil {
			return fmt.Errorf("containment policy %s: %w", policyPath, err)
		}
		o.Policy = pol
		o.LoadPolicy = func() (*warden.ContainmentPolicy, error) {
			p, _, err := contain.LoadPolicy(policyPath)
			return p, err
		}
	}
	clock := o.Clock
	if clock == nil {
		clock = warden.SystemClock
	}
	if drill {
		o.Actuator = &contain.DryRunActuator{Clock: clock, Logger: logger}
	} else {
		pol := o.Policy
		if pol == nil {
			pol = warden.DefaultPolicy()
		}
		act := &contain.HTTPActuator{Clock: clock, Logger: logger}
		if tf := pol.Targets.TokenFile; tf != "" {
			act.Token = contain.TokenFile(tf)
		}
		o.Actuator = act
	}
	o.Integrity = integrityChecker{clock: clock}
	return nil
}

// writeDefaultPolicy writes the runbook's policy table as DATA/containment.yaml
// for operators to edit, unless one is there.
func writeDefaultPolicy(dir *datadir.Dir) error {
	p := filepath.Join(dir.Path, PolicyFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if os.IsExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := f.Write(contain.DefaultPolicyYAML()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
