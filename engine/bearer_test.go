package engine_test

import (
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

// TestBearerToken: the one parser of Authorization header values. Several
// values are ambiguous (invalid), whatever they hold.
func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		token  string
		code   string
	}{
		{"none", nil, "", ""},
		{"empty header", []string{""}, "", ""},
		{"bearer", []string{"Bearer wdn_x"}, "wdn_x", ""},
		{"scheme case", []string{"bEARER wdn_x"}, "wdn_x", ""},
		{"spaces", []string{"Bearer   wdn_x  "}, "wdn_x", ""},
		{"basic", []string{"Basic YTpi"}, "", warden.EUNAUTHORIZED},
		{"no token", []string{"Bearer "}, "", warden.EUNAUTHORIZED},
		{"no scheme", []string{"wdn_x"}, "", warden.EUNAUTHORIZED},
		{"two equal", []string{"Bearer wdn_x", "Bearer wdn_x"}, "", warden.EINVALID},
		{"two different", []string{"Bearer wdn_x", "Bearer wdn_y"}, "", warden.EINVALID},
		{"one empty of two", []string{"", "Bearer wdn_y"}, "", warden.EINVALID},
		{"three", []string{"a", "b", "c"}, "", warden.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, err := engine.BearerToken(tc.values)
			if got := warden.ErrorCode(err); got != tc.code || token != tc.token {
				t.Fatalf("BearerToken(%q) = %q, %v; want %q, code %q", tc.values, token, err, tc.token, tc.code)
			}
		})
	}
}
