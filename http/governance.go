package http

import (
	"encoding/json"
	"net/http"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/governor"
)

// governanceRoles may call governance tools; the governor's authority matrix
// and ladder rules decide per tool and profile. Agents hold one of these.
var governanceRoles = []warden.Role{warden.RoleRead, warden.RoleOperator, warden.RoleRecoveryAdmin, warden.RoleApprover, warden.RoleForensic, warden.RoleReporter}

func (s *Server) registerGovernanceRoutes() {
	s.handle("GET", "/api/v1/governance", governanceRoles, "list governance tools", s.handleTools)
	s.handle("POST", "/api/v1/governance/{tool}", governanceRoles, "call governance tools", s.handleTool)
}

func (s *Server) handleTools(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	type info struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		MinProfile  string `json:"min_profile"`
	}
	out := []info{}
	for _, t := range governor.Tools() {
		out = append(out, info{Name: t.Name, Description: t.Description, MinProfile: string(s.gov.Authority()[t.Name])})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tools": out, "count": len(out)})
	return nil
}

// handleTool runs one tool. Its result object is the body, exactly what MCP
// returns; a refusal is the seed's {"success": false, "error": …} with the
// stable code and the status from the error table.
func (s *Server) handleTool(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	data, err := readBody(r)
	if err != nil {
		return err
	}
	res, err := s.gov.CallTool(r.Context(), p, r.PathValue("tool"), json.RawMessage(data))
	if err != nil {
		code := warden.ErrorCode(err)
		if code == warden.EINTERNAL || code == warden.EUNAUTHORIZED || code == warden.EFORBIDDEN {
			return err // the dispatcher maps these (and receipts 401/403)
		}
		body := map[string]any{}
		var e *warden.Error
		if asError(err, &e) {
			for k, v := range e.Data {
				body[k] = v
			}
		}
		body["success"] = false
		body["error"] = warden.ErrorMessage(err)
		body["code"] = code
		writeJSON(w, StatusOf(err), body)
		return nil
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
