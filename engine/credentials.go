package engine

import (
	"context"
	"slices"
	"strings"

	warden "github.com/warden-sh/warden"
)

// CredentialSpec is a request to create a credential. Human marks a
// credential held by a person (warden.Credential.Human); only an admin
// creates credentials, so only an admin sets it.
type CredentialSpec struct {
	Name    string        `json:"name"`
	Roles   []warden.Role `json:"roles"`
	Source  string        `json:"source,omitempty"`
	Classes []string      `json:"classes,omitempty"`
	Human   bool          `json:"human,omitempty"`
}

// NewCredential is a created credential with its token, which is shown
// exactly once and never stored.
type NewCredential struct {
	warden.Credential
	Token string `json:"token"`
}

// credentialBody is what a credential receipt records (never the token).
// Human is omitted when false, so credentials created before the
// attribute existed replay exactly as they were receipted.
type credentialBody struct {
	Name    string        `json:"name"`
	Roles   []warden.Role `json:"roles"`
	Source  string        `json:"source,omitempty"`
	Classes []string      `json:"classes,omitempty"`
	Human   bool          `json:"human,omitempty"`
	By      string        `json:"by"`
	// TokenHashPrefix identifies the token in audits.
	TokenHashPrefix string `json:"token_hash_prefix,omitempty"`
	// TokenHash and CreatedAt let a replay rebuild the credential exactly
	// (the state replay: engine/project.go). The hash of a 256-bit random
	// token reveals nothing guessable; the token itself is never recorded.
	// Receipts written before they existed lack both.
	TokenHash string `json:"token_hash,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
}

// AddCredential creates a credential for spec on behalf of actor (admin
// only) and receipts it in the identity scroll. Returns EFORBIDDEN for a
// non-admin, EINVALID for a bad spec, ECONFLICT if the name is taken.
func (e *Core) AddCredential(ctx context.Context, actor *warden.Principal, spec CredentialSpec) (*NewCredential, error) {
	if err := Authorize(actor, "manage credentials", warden.RoleAdmin); err != nil {
		return nil, err
	}
	roles := slices.Clone(spec.Roles)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	classes := slices.Clone(spec.Classes)
	for i := range classes {
		classes[i] = strings.TrimSpace(classes[i])
	}
	slices.Sort(classes)
	classes = slices.Compact(classes)
	token := NewToken()
	c := warden.Credential{
		Name:      spec.Name,
		Roles:     roles,
		Source:    spec.Source,
		Classes:   classes,
		Human:     spec.Human,
		TokenHash: HashToken(token),
		CreatedAt: e.now(),
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	body := credentialBody{Name: c.Name, Roles: c.Roles, Source: c.Source, Classes: c.Classes, Human: c.Human, By: actor.Name, TokenHashPrefix: c.TokenHash[:12],
		TokenHash: c.TokenHash, CreatedAt: warden.FormatTime(c.CreatedAt)}
	err := e.Update(ctx, "engine.AddCredential", func(tx warden.Tx) error {
		if err := tx.CreateCredential(&c); err != nil {
			return err
		}
		_, err := tx.Append(e.Draft(warden.ReceiptCredential, body, "credential"))
		return err
	})
	if err != nil {
		return nil, err
	}

	return &NewCredential{Credential: c, Token: token}, nil
}

// RevokeCredential revokes the named credential (admin only), receipted.
// ENOTFOUND if unknown, ECONFLICT if already revoked.
func (e *Core) RevokeCredential(ctx context.Context, actor *warden.Principal, name string) (*warden.Credential, error) {
	if err := Authorize(actor, "manage credentials", warden.RoleAdmin); err != nil {
		return nil, err
	}
	var c *warden.Credential
	at := e.now()
	err := e.Update(ctx, "engine.RevokeCredential", func(tx warden.Tx) (err error) {
		if err := tx.RevokeCredential(name, at); err != nil {
			return err
		}
		if c, err = tx.Credential(name); err != nil {
			return err
		}
		_, err = tx.Append(e.Draft(warden.ReceiptRevocation, map[string]any{"name": name, "by": actor.Name, "revoked_at": warden.FormatTime(at)}, "credential"))
		return err
	})
	if err != nil {
		return nil, err
	}

	return c, nil
}

// HumanRequest changes a credential's human attribute.
type HumanRequest struct {
	Name  string `json:"name"`
	Human bool   `json:"human"`
}

// credentialHumanBody is the credential_human_set receipt: the attribute's
// new value, and who set it.
type credentialHumanBody struct {
	Name  string `json:"name"`
	Human bool   `json:"human"`
	By    string `json:"by"`
}

// SetCredentialHuman marks the named credential human or not (admin
// only), receipted as credential_human_set. Setting the value it already
// has changes nothing and writes nothing. EFORBIDDEN for a non-admin,
// ENOTFOUND if unknown, ECONFLICT if revoked.
func (e *Core) SetCredentialHuman(ctx context.Context, actor *warden.Principal, req HumanRequest) (*warden.Credential, error) {
	if err := Authorize(actor, "manage credentials", warden.RoleAdmin); err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, warden.Errorf(warden.EINVALID, "name is required.")
	}
	var c *warden.Credential
	err := e.Update(ctx, "engine.SetCredentialHuman", func(tx warden.Tx) (err error) {
		if c, err = tx.Credential(req.Name); err != nil {
			return err
		}
		switch {
		case c.RevokedAt != nil:
			return warden.Errorf(warden.ECONFLICT, "Credential %q was revoked at %s; a revoked credential keeps the attributes it had.", c.Name, warden.FormatTime(*c.RevokedAt))
		case c.Human == req.Human:
			return nil
		}
		if err := tx.SetCredentialHuman(c.Name, req.Human); err != nil {
			return err
		}
		c.Human = req.Human
		_, err = tx.Append(e.Draft(warden.ReceiptCredentialHuman, credentialHumanBody{Name: c.Name, Human: c.Human, By: actor.Name}, "credential"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Credentials lists every credential (admin only); tokens are never shown.
func (e *Core) Credentials(ctx context.Context, actor *warden.Principal) ([]*warden.Credential, error) {
	if err := Authorize(actor, "manage credentials", warden.RoleAdmin); err != nil {
		return nil, err
	}
	var out []*warden.Credential
	err := e.View(ctx, "engine.Credentials", func(tx warden.ReadTx) (err error) {
		out, err = tx.Credentials()
		return err
	})
	if out == nil {
		out = []*warden.Credential{}
	}
	return out, err
}

// CredentialPage is a page of the credential listing; the cursor is the
// last credential's name.
type CredentialPage = warden.Page[*warden.Credential, string]

// ListCredentials returns a page of credentials by name (admin only;
// tokens are never shown): at most limit (1 to warden.MaxPageSize) named
// after after ("" for from the first), the next page's cursor if there is
// one, and how many credentials there are (counted: the cost grows with
// them), from one snapshot.
func (e *Core) ListCredentials(ctx context.Context, actor *warden.Principal, after string, limit int) (*CredentialPage, error) {
	if err := Authorize(actor, "manage credentials", warden.RoleAdmin); err != nil {
		return nil, err
	}
	if err := warden.CheckPageLimit(limit); err != nil {
		return nil, err
	}
	page := &CredentialPage{}
	err := e.View(ctx, "engine.ListCredentials", func(tx warden.ReadTx) error {
		total, err := tx.CountCredentials()
		if err != nil {
			return err
		}
		page.Total = &total
		page.Items, err = tx.CredentialsAfter(after, limit+1)
		return err
	})
	if err != nil {
		return nil, err
	}
	if page.Items == nil {
		page.Items = []*warden.Credential{}
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		next := page.Items[limit-1].Name
		page.Next = &next
	}
	return page, nil
}

// CountCredentials counts the store's credentials, revoked ones too: 0
// means no admin was ever minted (see Bootstrap).
func (e *Core) CountCredentials(ctx context.Context) (n int64, err error) {
	err = e.View(ctx, "engine.CountCredentials", func(tx warden.ReadTx) error {
		n, err = tx.CountCredentials()
		return err
	})
	return n, err
}

// Bootstrap creates the first admin credential, named name, if the store
// has no credential yet; the returned token is the only copy. ECONFLICT if
// any credential exists, so a second init can never mint a hidden admin.
func (e *Core) Bootstrap(ctx context.Context, name string) (*NewCredential, error) {
	token := NewToken()
	c := warden.Credential{Name: name, Roles: []warden.Role{warden.RoleAdmin}, TokenHash: HashToken(token), CreatedAt: e.now()}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	body := credentialBody{Name: c.Name, Roles: c.Roles, By: "warden init", TokenHashPrefix: c.TokenHash[:12],
		TokenHash: c.TokenHash, CreatedAt: warden.FormatTime(c.CreatedAt)}
	err := e.Update(ctx, "engine.Bootstrap", func(tx warden.Tx) error {
		existing, err := tx.Credentials()
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			return warden.Errorf(warden.ECONFLICT, "The store already has credentials; add more with `warden credential add`.")
		}
		if err := tx.CreateCredential(&c); err != nil {
			return err
		}
		_, err = tx.Append(e.Draft(warden.ReceiptCredential, body, "credential", "bootstrap"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &NewCredential{Credential: c, Token: token}, nil
}

// OnRevoke registers fn to hear of every credential revoked from now on:
// at once, after the commit, for a revocation made through this core
// (whichever rule made it: the credential API, the CLI, phoenix mass
// revocation), and at the next NoticeRevocations for one another process
// made on the same store. Authentication needs none of this — it reads the
// store on every request, so a revoked token is refused at its next use
// wherever it was revoked; listeners end what outlives a request (MCP
// sessions, streams). fn MUST return quickly and MUST NOT call Update; it
// may hear of a credential more than once.
func (e *Core) OnRevoke(fn func(name string)) {
	e.revMu.Lock()
	e.onRevoke = append(e.onRevoke, fn)
	e.revMu.Unlock()
}

// NoticeRevocations tells the OnRevoke listeners of every revoked
// credential they have not heard of yet, and returns how many there were.
// A server calls it periodically, to catch revocations committed by
// another process (`warden credential revoke --data DIR` next to a running
// server); the first call announces every credential revoked before it.
func (e *Core) NoticeRevocations(ctx context.Context) (int, error) {
	var names []string
	err := e.View(ctx, "engine.NoticeRevocations", func(tx warden.ReadTx) error {
		list, err := tx.Credentials()
		for _, c := range list {
			if c.RevokedAt != nil {
				names = append(names, c.Name)
			}
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return e.revoked(names), nil
}

// revoked announces the names the listeners have not heard of yet and
// returns how many there were.
func (e *Core) revoked(names []string) int {
	if len(names) == 0 {
		return 0
	}
	e.revMu.Lock()
	if e.seenRevoked == nil {
		e.seenRevoked = map[string]bool{}
	}
	fresh := names[:0:0]
	for _, n := range names {
		if !e.seenRevoked[n] {
			e.seenRevoked[n] = true
			fresh = append(fresh, n)
		}
	}
	listeners := slices.Clone(e.onRevoke)
	e.revMu.Unlock()
	for _, n := range fresh {
		for _, fn := range listeners {
			fn(n)
		}
	}
	return len(fresh)
}

// RevocationNoticed reports whether the OnRevoke listeners have heard that
// the named credential is revoked. A listener's owner that registers
// something for a principal after authenticating it checks this once the
// registration is visible to its listener, so a revocation racing the
// registration is never missed.
func (e *Core) RevocationNoticed(name string) bool {
	e.revMu.Lock()
	defer e.revMu.Unlock()
	return e.seenRevoked[name]
}
