package recorder_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
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
	env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassUnauthorizedAccess, Source: "gw", Description: "not integrity, no re-attestation", Severity: "high", SeverityReason: "test"})
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

// TestReattestOfAnIntegrityViolationNeedsACleanBaseline: an
// integrity_violation (here reported by an external file integrity
// monitor) is not re-attested without an integrity baseline — "no
// baseline recorded" used to pass — nor against one that no longer scans
// clean; each refusal is receipted and leaves the latch in place. Once a
// baseline scans clean it is re-attested. Other classes still re-attest on
// the ledger alone when no baseline exists.
func TestReattestOfAnIntegrityViolationNeedsACleanBaseline(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Drill)
	ctx := t.Context()
	if _, err := env.Core.Start(ctx, engine.StartInfo{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	inc := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassIntegrityViolation, Source: "fim", Description: "external FIM: /etc/passwd changed"})
	if _, err := env.Recorder.RecoveryAck(ctx, wardentest.AdminPrincipal, recorder.AckRequest{IncidentID: inc.ID, Operator: "admin@secai"}); err != nil {
		t.Fatal(err)
	}
	denials := func() int { return len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptRecoveryDenied})) }
	refused := func(want string) {
		t.Helper()
		before := denials()
		_, err := env.Recorder.Reattest(ctx, wardentest.AdminPrincipal, inc.ID)
		if warden.ErrorCode(err) != warden.ECONFLICT || !strings.Contains(warden.ErrorMessage(err), want) {
			t.Fatalf("reattest: %v, want a conflict containing %q", err, want)
		}
		if denials() != before+1 {
			t.Fatal("refusal not receipted")
		}
		if req := env.MustRequirement(t, inc.ID); req.ReAttestedAt != "" || req.RecoveryComplete {
			t.Fatalf("requirement after the refusal: %+v", req)
		}
		if _, err := env.Recorder.ResolveIncident(ctx, wardentest.AdminPrincipal, inc.ID); warden.ErrorCode(err) != warden.ECONFLICT {
			t.Fatalf("resolve while latched: %v", err)
		}
	}
	refused("Re-attestation refused: an integrity_violation is re-attested only against an integrity baseline that scans clean, and none is recorded")

	file := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(file, []byte("root:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Recorder.RecordBaseline(ctx, wardentest.AdminPrincipal, []string{file}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("root:x:0:0\nevil:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("integrity baseline mismatch: 1 changed, 0 added, 0 removed")

	if err := os.WriteFile(file, []byte("root:x:0:0\n"), 0o600); err != nil { // restored
		t.Fatal(err)
	}
	req, err := env.Recorder.Reattest(ctx, wardentest.AdminPrincipal, inc.ID)
	if err != nil || !req.RecoveryComplete {
		t.Fatalf("reattest against a clean baseline: %+v %v", req, err)
	}
	rs := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptRecoveryReattested})
	if len(rs) != 1 || !strings.Contains(string(rs[0].Body), `"integrity":{"clean":true,"files":1}`) {
		t.Fatalf("re-attestation receipt does not vouch for the baseline: %v", rs)
	}

	// Not an integrity incident, no baseline needed: the ledger suffices.
	other := wardentest.MustEnv(t, wardentest.Drill)
	if _, err := other.Core.Start(ctx, engine.StartInfo{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	att := other.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassAttestationFailure, Source: "tpm", Description: "PCR mismatch"})
	if _, err := other.Recorder.RecoveryAck(ctx, wardentest.AdminPrincipal, recorder.AckRequest{IncidentID: att.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Recorder.Reattest(ctx, wardentest.AdminPrincipal, att.ID); err != nil {
		t.Fatalf("attestation_failure without a baseline: %v", err)
	}
}
