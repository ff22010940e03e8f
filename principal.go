package warden

import (
	"regexp"
	"slices"
	"time"
)

// Role is a capability granted to a credential.
type Role string

// Roles. Admin may do everything; the others grant exactly what their name
// says and nothing implies another.
const (
	RoleRead          Role = "read"           // read receipts, checkpoints, incidents, status
	RoleReporter      Role = "reporter"       // report incidents for one source and its allowed classes
	RoleOperator      Role = "operator"       // resolve and acknowledge incidents, governance calls
	RoleRecoveryAdmin Role = "recovery-admin" // recovery ceremony: ack and re-attest
	RoleApprover      Role = "approver"       // approve escalations
	RoleForensic      Role = "forensic"       // export forensic bundles
	RoleAdmin         Role = "admin"          // everything, including credentials
)

// Roles lists every valid role.
var Roles = []Role{RoleRead, RoleReporter, RoleOperator, RoleRecoveryAdmin, RoleApprover, RoleForensic, RoleAdmin}

// ParseRole returns the role named s, or EINVALID.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", Errorf(EINVALID, "Unknown role %q; valid roles are read, reporter, operator, recovery-admin, approver, forensic, admin.", s)
}

// DevPrincipal is the name of the principal that unauthenticated requests
// act as in --dev mode.
const DevPrincipal = "dev"

var principalName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$`)

// ValidatePrincipalName returns EINVALID unless name is 1–128 characters of
// letters, digits and ._@:+- starting with a letter or digit.
func ValidatePrincipalName(name string) error {
	if !principalName.MatchString(name) {
		return Errorf(EINVALID, "Principal name %q is invalid: use 1-128 letters, digits or ._@:+- starting with a letter or digit.", name)
	}
	return nil
}

// Principal is an authenticated caller: an operator, a service or an agent.
type Principal struct {
	Name  string `json:"name"`
	Roles []Role `json:"roles"`
	// Source and Classes bind a reporter: it may report only incidents from
	// Source, of one of Classes (empty Classes = every class).
	Source  string   `json:"source,omitempty"`
	Classes []string `json:"classes,omitempty"`
	// Human is the credential's human attribute (see Credential.Human).
	// Rules that need a human check the stored credential inside their
	// own transaction, not this copy.
	Human bool `json:"human,omitempty"`
	// Dev marks the unauthenticated --dev principal.
	Dev bool `json:"-"`
}

// HasRole reports whether p holds any of roles, admin counting as all.
func (p *Principal) HasRole(roles ...Role) bool {
	if p == nil {
		return false
	}
	if slices.Contains(p.Roles, RoleAdmin) {
		return true
	}
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// Credential is a stored bearer credential. The token itself is never
// stored: only its SHA-256 hash.
type Credential struct {
	Name    string   `json:"name"`
	Roles   []Role   `json:"roles"`
	Source  string   `json:"source,omitempty"`
	Classes []string `json:"classes,omitempty"`
	// Human marks a credential an admin vouches is held by a person, not
	// an agent or a service. Only an admin sets it (when creating the
	// credential, or later, receipted). The sovereign profile and the
	// phoenix operations that cannot be undone (key rotation, mass
	// revocation) need human requesters and human approvers.
	Human     bool       `json:"human,omitempty"`
	TokenHash string     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Principal returns the principal this credential authenticates.
func (c *Credential) Principal() *Principal {
	return &Principal{Name: c.Name, Roles: c.Roles, Source: c.Source, Classes: c.Classes, Human: c.Human}
}

// IsActiveHuman reports whether c exists, is not revoked and is marked
// human: the one test every human-only rule applies.
func (c *Credential) IsActiveHuman() bool {
	return c != nil && c.RevokedAt == nil && c.Human
}

// Validate checks a credential about to be created.
func (c *Credential) Validate() error {
	if err := ValidatePrincipalName(c.Name); err != nil {
		return err
	}
	if len(c.Roles) == 0 {
		return Errorf(EINVALID, "A credential needs at least one role.")
	}
	for _, r := range c.Roles {
		if _, err := ParseRole(string(r)); err != nil {
			return err
		}
	}
	reporter := slices.Contains(c.Roles, RoleReporter)
	if reporter && c.Source == "" {
		return Errorf(EINVALID, "A reporter credential must be bound to a source (--source).")
	}
	if !reporter && (c.Source != "" || len(c.Classes) > 0) {
		return Errorf(EINVALID, "Only a reporter credential takes a source and classes.")
	}
	for _, cl := range c.Classes {
		if err := ValidateClass(cl); err != nil {
			return err
		}
	}
	return nil
}
