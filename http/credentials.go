package http

import (
	"net/http"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

func (s *Server) handleCredentials(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	list, err := s.core.Credentials(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"credentials": list, "count": len(list)})
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
