package recorder_test

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
	_ "modernc.org/sqlite"
)

// TestReattestRefusesATamperedLedger: re-attestation re-verifies the
// ledger; a receipt edited on disk (by someone who dropped the append-only
// triggers) makes it refuse, naming the first bad sequence number, and the
// refusal is receipted while the requirement stays incomplete.
func TestReattestRefusesATamperedLedger(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Drill)
	ctx := t.Context()
	if _, err := env.Core.Start(ctx, engine.StartInfo{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	inc := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassAttestationFailure, Source: "tpm", Description: "PCR mismatch"})
	if _, err := env.Recorder.RecoveryAck(ctx, wardentest.AdminPrincipal, recorder.AckRequest{IncidentID: inc.ID, Operator: "admin@secai"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Core.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", "file:"+env.Dir.DBPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRow(`SELECT seq FROM receipts WHERE type = ? ORDER BY seq LIMIT 1`, warden.ReceiptIncidentReported).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TRIGGER receipts_append_only_update`,
		`UPDATE receipts SET body = replace(body, 'PCR mismatch', 'all fine') WHERE seq = ` + strconv.FormatInt(seq, 10),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	denied := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptRecoveryDenied}))
	_, err = env.Recorder.Reattest(ctx, wardentest.AdminPrincipal, inc.ID)
	if warden.ErrorCode(err) != warden.ECONFLICT || !strings.Contains(warden.ErrorMessage(err), "first bad sequence number "+strconv.FormatInt(seq, 10)) {
		t.Fatalf("reattest over a tampered ledger: %v", err)
	}
	if got := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptRecoveryDenied})); got != denied+1 {
		t.Fatalf("%d recovery denials receipted, want %d", got, denied+1)
	}
	if req := env.MustRequirement(t, inc.ID); req.ReAttestedAt != "" || req.RecoveryComplete {
		t.Fatalf("requirement after the refusal: %+v", req)
	}
}

// TestTrustStatesAreBounded: the public attestation and integrity states
// list at most MaxTrustPending incidents and count them all.
func TestTrustStatesAreBounded(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Drill)
	ctx := t.Context()
	n := recorder.MaxTrustPending + 3
	for range n {
		env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassIntegrityViolation, Source: "fim", Description: "changed"})
	}
	env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassUnauthorizedAccess, Source: "gw", Description: "not integrity, no re-attestation", Severity: "high"})
	for name, state := range map[string]func(context.Context) (*recorder.TrustState, error){
		"attestation": env.Recorder.AttestationState, "integrity": env.Recorder.IntegrityState,
	} {
		st, err := state(ctx)
		if err != nil || st.State != "degraded" || st.PendingCount != n || len(st.Pending) != recorder.MaxTrustPending {
			t.Fatalf("%s state: %v count %d listed %d", name, err, st.PendingCount, len(st.Pending))
		}
	}
}

// TestUnknownIncidentErrorIsBounded: an unknown id is named in the error,
// but a huge one is cut, so the answer does not echo what was sent.
func TestUnknownIncidentErrorIsBounded(t *testing.T) {
	env := wardentest.MustEnv(t)
	id := "INC-" + strings.Repeat("9", 100000)
	_, err := env.Recorder.Incident(t.Context(), id)
	if warden.ErrorCode(err) != warden.ENOTFOUND || len(warden.ErrorMessage(err)) > 200 || !strings.Contains(warden.ErrorMessage(err), "INC-999") {
		t.Fatalf("unknown huge id: %d bytes: %.200v", len(warden.ErrorMessage(err)), err)
	}
}
