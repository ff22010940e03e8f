package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/integrity"
)

// PolicyFile is the containment policy's default name in the data directory.
const PolicyFile = "containment.yaml"

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

// containmentOptions sets the recorder's policy, actuator and integrity
// checker for a server; the checker reads only beneath integrityRoots
// (none: nothing may be watched), each run within integrityTimeout.
func containmentOptions(c *stack.Config, policyPath string, logger *slog.Logger, integrityRoots []string, integrityTimeout time.Duration) error {
	if policyPath != "" {
		pol, _, err := contain.LoadPolicy(policyPath)
		if err != nil {
			return fmt.Errorf("containment policy %s: %w", policyPath, err)
		}
		c.Recorder.Policy = pol
		c.Recorder.LoadPolicy = func() (*warden.ContainmentPolicy, error) {
			p, _, err := contain.LoadPolicy(policyPath)
			return p, err
		}
	}
	clock := c.Core.Clock
	if clock == nil {
		clock = warden.SystemClock
	}
	// The engine decides drill mode (c.Core.Drill): in a drill it only
	// asks the actuator what it would do. Token stays nil: the actuator
	// reads the policy's token_file on every call, so a reload that
	// changes it takes effect.
	c.Recorder.Actuator = &contain.HTTPActuator{Clock: clock, Logger: logger}
	c.Recorder.Integrity = integrity.Checker{Clock: clock, Roots: integrityRoots, Timeout: integrityTimeout}
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
