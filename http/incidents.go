package http

import (
	"bufio"
	"net/http"
	"net/url"
	"strconv"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
)

func (s *Server) registerIncidentRoutes() {
	reporters := []warden.Role{warden.RoleReporter}
	operators := []warden.Role{warden.RoleOperator}
	recovery := []warden.Role{warden.RoleRecoveryAdmin}
	s.handle("POST", "/api/v1/incidents/report", reporters, "report incidents", s.handleReport)
	s.stream("GET", "/api/v1/incidents", readers, "read incidents", s.handleIncidents)
	s.handle("GET", "/api/v1/incidents/get", readers, "read incidents", s.handleIncident)
	s.handle("POST", "/api/v1/incidents/resolve", operators, "resolve incidents", s.handleResolve)
	s.handle("POST", "/api/v1/incidents/acknowledge", operators, "acknowledge incidents", s.handleAcknowledge)
	s.handle("GET", "/api/v1/recovery/status", readers, "read recovery status", s.handleRecoveryStatus)
	s.handle("POST", "/api/v1/recovery/ack", recovery, "acknowledge recoveries", s.handleRecoveryAck)
	s.handle("POST", "/api/v1/recovery/reattest", recovery, "re-attest", s.handleReattest)
	s.handle("GET", "/api/v1/stats", readers, "read statistics", s.handleStats)
	s.stream("GET", "/api/v1/forensic/export", []warden.Role{warden.RoleForensic}, "export forensic bundles", s.handleForensicExport)
	s.handle("POST", "/api/v1/reload", operators, "reload the containment policy", s.handleReload)
	s.handle("GET", "/api/v1/policy", readers, "read the containment policy", s.handlePolicy)
	s.handle("GET", "/api/v1/attestation/state", public, "", s.handleAttestationState)
	s.handle("GET", "/api/v1/integrity/state", public, "", s.handleIntegrityState)
	s.handle("POST", "/api/v1/integrity/scan", operators, "scan integrity", s.handleIntegrityScan)
	s.handle("POST", "/api/v1/integrity/baseline", adminsOnly, "record the integrity baseline", s.handleIntegrityBaseline)
	s.handle("GET", "/api/v1/webhooks/deliveries", readers, "read webhook deliveries", s.handleDeliveries)
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	var req recorder.ReportRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	req.IdempotencyKey = key
	inc, replayed, err := s.rec.Report(r.Context(), p, req)
	if err != nil {
		return err
	}
	if replayed {
		// The incident an earlier report with this key created, as it is now.
		w.Header().Set(HeaderIdempotentReplayed, "true")
		writeJSON(w, http.StatusOK, inc)
		return nil
	}
	writeJSON(w, http.StatusCreated, inc)
	return nil
}

// Idempotent reports: the request header naming a report for retries, and
// the answer header marking a replayed answer.
const (
	HeaderIdempotencyKey     = "Idempotency-Key"
	HeaderIdempotentReplayed = "Idempotent-Replayed"
)

// idempotencyKey returns the request's Idempotency-Key ("" if none): sent
// once, as a token or a quoted string (the IETF draft's sf-string form).
func idempotencyKey(r *http.Request) (string, error) {
	vs := r.Header.Values(HeaderIdempotencyKey)
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", warden.Errorf(warden.EINVALID, "Send one Idempotency-Key header, not %d.", len(vs))
	}
	k := vs[0]
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	if k == "" {
		return "", warden.Errorf(warden.EINVALID, "Idempotency-Key is empty.")
	}
	return k, nil
}

func (s *Server) handleIncidents(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	q, err := query(r, "class", "state", "severity", "limit", "cursor")
	if err != nil {
		return err
	}
	f := warden.IncidentFilter{Class: q.Get("class"), State: warden.IncidentState(q.Get("state")), Severity: warden.Severity(q.Get("severity"))}
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	if c := q.Get("cursor"); c != "" {
		if f.After, err = parseIncidentCursor(c); err != nil {
			return err
		}
	}
	page, err := s.rec.ListIncidents(r.Context(), f, limit)
	if err != nil {
		return err
	}
	var next url.Values
	if page.Next != nil {
		next = url.Values{"cursor": {incidentCursor(page.Next)}}
	}
	pageHeaders(w, r, page.Total, next)
	// The runbook pipes this into `jq '.[]'`: a bare array, [] when empty.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	// Each item is the incident's stored record, sent as it is.
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString("[")
	for n, rec := range page.Items {
		if n > 0 {
			bw.WriteString(",\n")
		}
		if _, err := bw.Write(rec); err != nil {
			return nil // the client went away; nothing more to say
		}
	}
	bw.WriteString("]\n")
	_ = bw.Flush()
	return nil
}

func (s *Server) handleIncident(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	q, err := query(r, "id")
	if err != nil {
		return err
	}
	inc, err := s.rec.Incident(r.Context(), q.Get("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, inc)
	return nil
}

type idRequest struct {
	ID string `json:"id"`
}

func (s *Server) handleResolve(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	var req idRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	inc, err := s.rec.ResolveIncident(r.Context(), p, req.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, inc)
	return nil
}

func (s *Server) handleAcknowledge(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	var req idRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	inc, err := s.rec.AcknowledgeIncident(r.Context(), p, req.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, inc)
	return nil
}

// RecoveryStatus is the GET /api/v1/recovery/status answer: a page of the
// pending recovery requirements; Count is how many are on this page
// (X-Total-Count: how many are pending).
type RecoveryStatus struct {
	PendingRecoveries []*warden.RecoveryRequirement `json:"pending_recoveries"`
	Count             int                           `json:"count"`
}

func (s *Server) handleRecoveryStatus(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	q, err := query(r, "limit", "cursor")
	if err != nil {
		return err
	}
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	var after *warden.RequirementCursor
	if c := q.Get("cursor"); c != "" {
		if after, err = parseRequirementCursor(c); err != nil {
			return err
		}
	}
	page, err := s.rec.PendingRecoveries(r.Context(), after, limit)
	if err != nil {
		return err
	}
	var next url.Values
	if page.Next != nil {
		next = url.Values{"cursor": {requirementCursor(page.Next)}}
	}
	pageHeaders(w, r, page.Total, next)
	list := page.Items
	if list == nil {
		list = []*warden.RecoveryRequirement{}
	}
	writeJSON(w, http.StatusOK, RecoveryStatus{PendingRecoveries: list, Count: len(list)})
	return nil
}

func (s *Server) handleRecoveryAck(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	var req recorder.AckRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	rr, err := s.rec.RecoveryAck(r.Context(), p, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "acknowledged", "requirement": rr})
	return nil
}

func (s *Server) handleReattest(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	var req struct {
		IncidentID string `json:"incident_id"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	rr, err := s.rec.Reattest(r.Context(), p, req.IncidentID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "re-attestation recorded", "requirement": rr})
	return nil
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	st, err := s.rec.Stats(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) handleForensicExport(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		// An export is receipted; a HEAD must not cause one.
		bundleHeaders(w.Header())
		return nil
	}
	bw := &bundleResponse{w: w}
	if _, err := s.rec.ExportForensic(r.Context(), p, bw, s.version); err != nil {
		if !bw.started {
			return err // nothing sent yet: a proper error answer
		}
		// Headers are gone once streaming started; the truncated body
		// fails verification, and the cause is logged.
		s.log.Error("forensic export failed", "err", err)
	}
	return nil
}

func bundleHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Content-Disposition", `attachment; filename="forensic-bundle.json"`)
}

// bundleResponse sends the bundle's headers with its first bytes, so an
// export that fails before producing any is answered with an error.
type bundleResponse struct {
	w       http.ResponseWriter
	started bool
}

func (b *bundleResponse) Write(p []byte) (int, error) {
	if !b.started {
		b.started = true
		bundleHeaders(b.w.Header())
		b.w.WriteHeader(http.StatusOK)
	}
	return b.w.Write(p)
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	digest, err := s.rec.ReloadPolicy(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded", "policy_digest": digest})
	return nil
}

func (s *Server) handlePolicy(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	pol, digest := s.rec.Policy()
	writeJSON(w, http.StatusOK, map[string]any{"digest": digest, "policy": pol})
	return nil
}

func (s *Server) handleAttestationState(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	st, err := s.rec.AttestationState(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) handleIntegrityState(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	st, err := s.rec.IntegrityState(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) handleIntegrityScan(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	res, err := s.rec.IntegrityScan(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) handleIntegrityBaseline(w http.ResponseWriter, r *http.Request, p *warden.Principal) error {
	var req struct {
		Paths []string `json:"paths"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	b, err := s.rec.RecordBaseline(r.Context(), p, req.Paths)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "baseline recorded", "files": len(b.Files), "roots": b.Roots})
	return nil
}

// DeliveryList is the GET /api/v1/webhooks/deliveries answer: a page of
// deliveries, newest first; Count is how many are on this page.
type DeliveryList struct {
	Deliveries []*warden.Delivery `json:"deliveries"`
	Count      int                `json:"count"`
}

func (s *Server) handleDeliveries(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	q, err := query(r, "incident_id", "limit", "before")
	if err != nil {
		return err
	}
	f := warden.DeliveryFilter{IncidentID: q.Get("incident_id")}
	if f.Limit, err = pageLimit(q); err != nil {
		return err
	}
	before, err := uintParam(q, "before")
	if err != nil {
		return err
	}
	if before != nil {
		if *before == 0 {
			return warden.Errorf(warden.EINVALID, "before must be a delivery id (1 or more), from the Link header's next URL.")
		}
		f.Before = *before
	}
	page, err := s.rec.Deliveries(r.Context(), f)
	if err != nil {
		return err
	}
	var next url.Values
	if page.Next != nil {
		next = url.Values{"before": {strconv.FormatUint(*page.Next, 10)}}
	}
	pageHeaders(w, r, page.Total, next)
	writeJSON(w, http.StatusOK, DeliveryList{Deliveries: page.Items, Count: len(page.Items)})
	return nil
}
