package http

import (
	"net/http"
	"net/url"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

// CredentialList is the GET /api/v1/credentials answer: a page of
// credentials by name; Count is how many are on this page.
type CredentialList struct {
	Credentials []*warden.Credential `json:"credentials"`
	Count       int                  `json:"count"`
}

func (s *Server) handleCredentials(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	q, err := query(r, "limit", "cursor")
	if err != nil {
		return err
	}
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	var after string
	if c := q.Get("cursor"); c != "" {
		if after, err = parseCredentialCursor(c); err != nil {
			return err
		}
	}
	page, err := s.core.ListCredentials(r.Context(), p, after, limit)
	if err != nil {
		return err
	}
	var next url.Values
	if page.Next != nil {
		next = url.Values{"cursor": {credentialCursor(*page.Next)}}
	}
	pageHeaders(w, r, page.Total, next)
	writeJSON(w, http.StatusOK, CredentialList{Credentials: page.Items, Count: len(page.Items)})
	return nil
}

func (s *Server) handleAddCredential(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	var spec engine.CredentialSpec
	if err := readJSON(r, &spec); err != nil {
		return err
	}
	c, err := s.core.AddCredential(r.Context(), p, spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (s *Server) handleRevokeCredential(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return warden.Errorf(warden.EINVALID, "name is required.")
	}
	c, err := s.core.RevokeCredential(r.Context(), p, req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) handleCredentialHuman(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	var req engine.HumanRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	c, err := s.core.SetCredentialHuman(r.Context(), p, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}
