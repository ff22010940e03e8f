package http

import (
	"net/http"
	"net/url"
	"strconv"

	warden "github.com/warden-sh/warden"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	h, err := s.rec.Health(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "store unavailable"})
		s.log.Error("health check failed", "err", err)
		return nil
	}
	status := http.StatusOK
	if h.Status != "ok" {
		status = http.StatusServiceUnavailable // degraded: h.Degraded says why
	}
	writeJSON(w, status, h)
	return nil
}

func (s *Server) handlePubkey(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"pubkey": s.core.PublicKey(), "format": "signed-note ed25519 verifier key (golang.org/x/mod/sumdb/note)"})
	return nil
}

// ReceiptList is the GET /api/v1/receipts answer. NextAfter (ascending)
// or NextBefore (order=desc), when set, is the after= or before= value of
// the next page, as in the Link header; they are null on the last page.
type ReceiptList struct {
	Receipts   []*warden.Receipt `json:"receipts"`
	Count      int               `json:"count"`
	NextAfter  *uint64           `json:"next_after"`
	NextBefore *uint64           `json:"next_before,omitempty"`
}

func (s *Server) handleReceipts(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	q, err := query(r, "scroll", "type", "tag", "after", "after_seq", "before", "limit", "order")
	if err != nil {
		return err
	}
	f := warden.ReceiptFilter{Scroll: q.Get("scroll"), Type: q.Get("type"), Tag: q.Get("tag")}
	if f.After, err = uintParam(q, "after"); err != nil {
		return err
	}
	if f.After == nil {
		if f.After, err = uintParam(q, "after_seq"); err != nil {
			return err
		}
	}
	if f.Before, err = uintParam(q, "before"); err != nil {
		return err
	}
	if f.Limit, err = pageLimit(q); err != nil {
		return err
	}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		f.Descending = true
	default:
		return warden.Errorf(warden.EINVALID, "order must be asc or desc.")
	}
	page, err := s.core.ListReceipts(r.Context(), f)
	if err != nil {
		return err
	}
	out := ReceiptList{Receipts: page.Items, Count: len(page.Items)}
	var next url.Values
	if page.Next != nil {
		n := strconv.FormatUint(*page.Next, 10)
		if f.Descending {
			out.NextBefore = page.Next
			next = url.Values{"before": {n}}
		} else {
			out.NextAfter = page.Next
			next = url.Values{"after": {n}}
			if q.Has("after_seq") {
				next["after_seq"] = []string{n}
			}
		}
	}
	pageHeaders(w, r, page.Total, next)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleReceipt(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		return warden.Errorf(warden.EINVALID, "Receipt sequence number must be a non-negative integer, not %q.", r.PathValue("seq"))
	}
	rp, err := s.core.Receipt(r.Context(), seq)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rp)
	return nil
}

// CheckpointResponse is the GET /api/v1/checkpoint answer.
type CheckpointResponse struct {
	Size      uint64 `json:"size"`
	RootHash  []byte `json:"root_hash"`
	Note      string `json:"note"`
	CreatedAt string `json:"created_at"`
}

func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	q, err := query(r, "format")
	if err != nil {
		return err
	}
	cp, err := s.core.LatestCheckpoint(r.Context())
	if err != nil {
		return err
	}
	switch q.Get("format") {
	case "", "json":
		writeJSON(w, http.StatusOK, CheckpointResponse{Size: cp.Size, RootHash: cp.RootHash, Note: cp.Note, CreatedAt: warden.FormatTime(cp.CreatedAt)})
	case "note":
		// The bare signed note, for standard tlog tooling.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(cp.Note))
	default:
		return warden.Errorf(warden.EINVALID, "format must be json or note.")
	}
	return nil
}

func (s *Server) handleConsistency(w http.ResponseWriter, r *http.Request, _ *warden.Principal) error {
	q, err := query(r, "from", "to")
	if err != nil {
		return err
	}
	from, err := uintParam(q, "from")
	if err != nil {
		return err
	}
	to, err := uintParam(q, "to")
	if err != nil {
		return err
	}
	if from == nil || to == nil {
		return warden.Errorf(warden.EINVALID, "Both from and to are required: /api/v1/checkpoint/consistency?from=N&to=M.")
	}
	p, err := s.core.Consistency(r.Context(), *from, *to)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
