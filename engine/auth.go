package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	warden "github.com/warden-sh/warden"
)

// TokenPrefix starts every warden bearer token, so a leaked one is easy to
// recognise in logs and secret scanners.
const TokenPrefix = "wdn_"

// NewToken returns a fresh bearer token: TokenPrefix + 32 random bytes.
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken returns the stored form of a token: hex SHA-256. Tokens carry
// 256 bits of entropy, so a fast hash is enough.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// BearerToken returns the token of a request's Authorization header values
// ("" when there are none). Every transport parses the header here. More
// than one value is EINVALID: which one a server would honour is
// ambiguous, and an intermediary that adds its own must not silently win
// or lose. A value that is not "Bearer <token>" is EUNAUTHORIZED.
func BearerToken(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", warden.Errorf(warden.EINVALID, "Send one Authorization header, not %d: a request with several is ambiguous.", len(values))
	}
	if values[0] == "" {
		return "", nil // an empty header is no header, as before
	}
	scheme, rest, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) == "" {
		return "", warden.Errorf(warden.EUNAUTHORIZED, "Authorization header must be \"Bearer <token>\".")
	}
	return strings.TrimSpace(rest), nil
}

// Authenticate returns the principal a bearer token belongs to. An empty
// token in --dev mode is the dev principal (admin). EUNAUTHORIZED for a
// missing, unknown or revoked token.
func (e *Core) Authenticate(ctx context.Context, token string) (*warden.Principal, error) {
	if token == "" {
		if e.dev {
			return &warden.Principal{Name: warden.DevPrincipal, Roles: []warden.Role{warden.RoleAdmin}, Dev: true}, nil
		}
		return nil, warden.Errorf(warden.EUNAUTHORIZED, "Missing bearer credential: send Authorization: Bearer <token>.")
	}
	if !strings.HasPrefix(token, TokenPrefix) {
		return nil, warden.Errorf(warden.EUNAUTHORIZED, "Unknown bearer credential.")
	}
	var c *warden.Credential
	err := e.View(ctx, "engine.Authenticate", func(tx warden.ReadTx) (err error) {
		c, err = tx.CredentialByTokenHash(HashToken(token))
		return err
	})
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return nil, warden.Errorf(warden.EUNAUTHORIZED, "Unknown bearer credential.")
	} else if err != nil {
		return nil, err
	}
	if c.RevokedAt != nil {
		return nil, warden.Errorf(warden.EUNAUTHORIZED, "Credential %q was revoked at %s.", c.Name, warden.FormatTime(*c.RevokedAt))
	}
	if d := e.distrust.Load(); d != nil && (d.all || d.names[c.Name]) && e.Ledger().Refuses() {
		return nil, warden.Errorf(warden.EUNAUTHORIZED, "Credential %q is refused: the credentials table disagrees with the receipts (tampered); see /health.", c.Name)
	}
	return c.Principal(), nil
}

// Authorize returns EFORBIDDEN unless p holds one of roles (admin holds all).
func Authorize(p *warden.Principal, action string, roles ...warden.Role) error {
	if p.HasRole(roles...) {
		return nil
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return warden.Errorf(warden.EFORBIDDEN, "Principal %q may not %s: it needs one of the roles %s.", p.Name, action, strings.Join(names, ", "))
}

// AuthFailure describes a refused request for its receipt.
type AuthFailure struct {
	Status    int    `json:"status"` // 401 or 403; 400 for ambiguous credentials
	Code      string `json:"code"`
	Reason    string `json:"reason"`
	Principal string `json:"principal,omitempty"` // known for 403
	Method    string `json:"method"`
	Path      string `json:"path"`
	// Tool names the governance tool refused by the authority matrix.
	Tool   string `json:"tool,omitempty"`
	Remote string `json:"remote"`
	// Suppressed counts failures since the previous auth_failure receipt
	// that were not receipted individually (rate limit).
	Suppressed uint64 `json:"suppressed_since_previous"`
}

// RecordAuthFailure writes an auth_failure receipt in the identity scroll,
// unless the rate limit is exhausted, in which case the failure is counted
// and the count rides on the next receipt. It never fails the request it
// describes: errors are logged.
func (e *Core) RecordAuthFailure(ctx context.Context, f AuthFailure) {
	if e.metrics != nil {
		e.metrics.AuthFailures.WithLabelValues(strconv.Itoa(f.Status)).Inc()
	}
	ok, n := e.authFail.take(f.Principal) // 401s have none: one shared bucket
	if !ok {
		if e.metrics != nil {
			e.metrics.AuthSuppressed.Inc()
		}
		return
	}
	f.Suppressed = n
	err := e.Update(ctx, "engine.RecordAuthFailure", func(tx warden.Tx) error {
		_, err := tx.Append(e.Draft(warden.ReceiptAuthFailure, f, "auth", f.Code))
		return err
	})
	if err != nil {
		e.authFail.restore(f.Principal, n)
		e.log.Error("auth_failure receipt not written", "err", err)
	}
}
