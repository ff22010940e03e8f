package cli

import (
	"bytes"
	"fmt"
	"os"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/governor"
	"go.yaml.in/yaml/v3"
)

// GovernanceConfig is the optional governance configuration file
// (`serve --governance FILE`): the ladder's hops and the authority matrix.
// Absent parts keep seed 002's ladder and governor.DefaultAuthority.
type GovernanceConfig struct {
	Ladder    *warden.Ladder            `yaml:"ladder"`
	Authority map[string]warden.Profile `yaml:"authority"`
}

// loadGovernance reads and strictly validates a governance file: unknown
// keys, unknown tools and profiles, and non-adjacent hops are errors.
func loadGovernance(path string) (*warden.Ladder, map[string]warden.Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return parseGovernance(data)
}

func parseGovernance(data []byte) (*warden.Ladder, map[string]warden.Profile, error) {
	var c GovernanceConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, nil, warden.Errorf(warden.EINVALID, "Governance config: %v", err)
	}
	var extra any
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, warden.Errorf(warden.EINVALID, "Governance config has more than one YAML document.")
	}
	ladder := warden.DefaultLadder()
	if c.Ladder != nil {
		if err := c.Ladder.Validate(); err != nil {
			return nil, nil, err
		}
		for _, h := range c.Ladder.Hops {
			if h.Quorum < 0 {
				return nil, nil, warden.Errorf(warden.EINVALID, "Ladder hop %s → %s: quorum must not be negative.", h.From, h.To)
			}
		}
		ladder = c.Ladder
	}
	authority := map[string]warden.Profile{}
	for k, v := range governor.DefaultAuthority {
		authority[k] = v
	}
	for tool, p := range c.Authority {
		if _, ok := governor.DefaultAuthority[tool]; !ok {
			return nil, nil, warden.Errorf(warden.EINVALID, "Governance config authority: unknown tool %q.", tool)
		}
		if _, err := warden.ParseProfile(string(p)); err != nil {
			return nil, nil, fmt.Errorf("governance config authority.%s: %w", tool, err)
		}
		authority[tool] = p
	}
	return ladder, authority, nil
}
