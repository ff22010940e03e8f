package warden_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

func TestParseRole(t *testing.T) {
	for _, r := range []string{"read", "reporter", "operator", "recovery-admin", "approver", "forensic", "admin"} {
		if got, err := warden.ParseRole(r); err != nil || string(got) != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, r := range []string{"", "Admin", "root", "recovery_admin", "read "} {
		got, err := warden.ParseRole(r)
		want := codeOf{warden.EINVALID, fmt.Sprintf("Unknown role %q; valid roles are read, reporter, operator, recovery-admin, approver, forensic, admin.", r)}
		if diff := cmp.Diff(want, errCode(err)); diff != "" || got != "" {
			t.Errorf("ParseRole(%q) = %q; (-want +got):\n%s", r, got, diff)
		}
	}
}

func TestValidatePrincipalName(t *testing.T) {
	tests := []struct {
		name  string
		valid bool
	}{
		{"a", true},
		{"9", true},
		{"admin@secai", true},
		{"svc:agent+1.prod-eu_2", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{".hidden", false},
		{"-flag", false},
		{"@host", false},
		{"_x", false},
		{"two words", false},
		{"tab\tbed", false},
		{"trailing\n", false},
		{"slash/name", false},
		{"émile", false},
	}
	for _, tt := range tests {
		err := warden.ValidatePrincipalName(tt.name)
		if tt.valid != (err == nil) {
			t.Errorf("ValidatePrincipalName(%q) = %v, want valid %v", tt.name, err, tt.valid)
		}
		if !tt.valid && warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("ValidatePrincipalName(%q): code %q, want invalid", tt.name, warden.ErrorCode(err))
		}
	}
}

func TestPrincipalHasRole(t *testing.T) {
	p := func(roles ...warden.Role) *warden.Principal { return &warden.Principal{Name: "p", Roles: roles} }
	tests := []struct {
		name string
		p    *warden.Principal
		ask  []warden.Role
		want bool
	}{
		{"nil principal", nil, []warden.Role{"read"}, false},
		{"nil principal, nothing asked", nil, nil, false},
		{"no roles", p(), []warden.Role{"read"}, false},
		{"holds it", p("read"), []warden.Role{"read"}, true},
		{"holds another", p("read"), []warden.Role{"operator"}, false},
		{"any of several", p("forensic"), []warden.Role{"operator", "forensic"}, true},
		{"none of several", p("read", "reporter"), []warden.Role{"operator", "forensic"}, false},
		{"admin counts as every role", p("admin"), []warden.Role{"recovery-admin"}, true},
		{"admin among others", p("read", "admin"), []warden.Role{"approver"}, true},
		{"admin, nothing asked", p("admin"), nil, true},
		{"nothing asked", p("read"), nil, false},
		{"operator does not imply read", p("operator"), []warden.Role{"read"}, false},
		{"recovery-admin is not admin", p("recovery-admin"), []warden.Role{"operator"}, false},
		{"unknown role asked", p("read"), []warden.Role{"superuser"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.HasRole(tt.ask...); got != tt.want {
				t.Errorf("HasRole(%v) = %v, want %v", tt.ask, got, tt.want)
			}
		})
	}
}

func TestCredentialValidate(t *testing.T) {
	tests := []struct {
		name string
		c    warden.Credential
		want string // message; "" for valid
	}{
		{"read", warden.Credential{Name: "dash", Roles: []warden.Role{"read"}}, ""},
		{"admin", warden.Credential{Name: "root", Roles: []warden.Role{"admin"}}, ""},
		{"reporter bound to a source", warden.Credential{Name: "tpm", Roles: []warden.Role{"reporter"}, Source: "tpm2"}, ""},
		{"reporter with classes", warden.Credential{Name: "tpm", Roles: []warden.Role{"reporter", "read"}, Source: "tpm2",
			Classes: []string{"attestation_failure"}}, ""},
		{"bad name", warden.Credential{Name: "-x", Roles: []warden.Role{"read"}},
			`Principal name "-x" is invalid: use 1-128 letters, digits or ._@:+- starting with a letter or digit.`},
		{"no roles", warden.Credential{Name: "x"}, "A credential needs at least one role."},
		{"empty roles", warden.Credential{Name: "x", Roles: []warden.Role{}}, "A credential needs at least one role."},
		{"unknown role", warden.Credential{Name: "x", Roles: []warden.Role{"read", "root"}},
			`Unknown role "root"; valid roles are read, reporter, operator, recovery-admin, approver, forensic, admin.`},
		{"reporter without a source", warden.Credential{Name: "x", Roles: []warden.Role{"reporter"}},
			"A reporter credential must be bound to a source (--source)."},
		{"reporter with classes but no source", warden.Credential{Name: "x", Roles: []warden.Role{"reporter"}, Classes: []string{"prompt_injection"}},
			"A reporter credential must be bound to a source (--source)."},
		{"source without reporter", warden.Credential{Name: "x", Roles: []warden.Role{"read"}, Source: "s"},
			"Only a reporter credential takes a source and classes."},
		{"classes without reporter", warden.Credential{Name: "x", Roles: []warden.Role{"operator"}, Classes: []string{"prompt_injection"}},
			"Only a reporter credential takes a source and classes."},
		{"admin does not stand in for reporter", warden.Credential{Name: "x", Roles: []warden.Role{"admin"}, Source: "s"},
			"Only a reporter credential takes a source and classes."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := codeOf{}
			if tt.want != "" {
				want = codeOf{warden.EINVALID, tt.want}
			}
			if diff := cmp.Diff(want, errCode(tt.c.Validate())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCredentialPrincipal(t *testing.T) {
	revoked := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	c := &warden.Credential{Name: "tpm", Roles: []warden.Role{"reporter"}, Source: "tpm2", Classes: []string{"attestation_failure"},
		TokenHash: "abc", CreatedAt: revoked, RevokedAt: &revoked}
	want := &warden.Principal{Name: "tpm", Roles: []warden.Role{"reporter"}, Source: "tpm2", Classes: []string{"attestation_failure"}}
	if diff := cmp.Diff(want, c.Principal()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
