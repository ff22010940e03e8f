package cli_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sh/warden/datadir"
)

// countRows counts rows of a stopped data directory's table.
func countRows(t *testing.T, data, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, datadir.DBFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// health is the part of /health the startup check fills in.
type health struct {
	Status string `json:"status"`
	Ledger *struct {
		State       string  `json:"state"`
		FirstBadSeq *uint64 `json:"first_bad_seq"`
		Reason      string  `json:"reason"`
		Failure     string  `json:"failure"`
		Checked     uint64  `json:"checked"`
		Total       uint64  `json:"total"`
	} `json:"ledger"`
}

// TestServeRefusesToBuildOnATamperedLog: a server started on a tampered
// log or tampered state serves reads but refuses every write, says which
// sequence number or row is bad in /health (503 degraded) and in the trust
// states, and signs nothing; an operator who accepts exactly that failure
// gets writes back, and the decision is receipted.
func TestServeRefusesToBuildOnATamperedLog(t *testing.T) {
	base, reader := buildStateLogToken(t)
	for _, tc := range []struct {
		name, failure, reason string
		sql                   []string
	}{
		{"receipt edited", "1", "body edited", []string{`UPDATE receipts SET body = replace(body, '"test"', '"evil"') WHERE seq = 1`}},
		{"receipt deleted", "2", "", []string{`DELETE FROM receipts WHERE seq = 2`}},
		{"row forged past the head", "", "beyond the ledger head", nil},
		{"ledger head corrupt", "", "ledger head", []string{`UPDATE ledger_head SET state = x'00'`}},
		{"credential promoted", "", `credentials "reader"`, []string{`UPDATE credentials SET roles = '["admin"]' WHERE name = 'reader'`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := copyDir(t, base)
			sqls := tc.sql
			if tc.name == "row forged past the head" {
				sqls = []string{forgedReceipt(t, uint64(countRows(t, data, "receipts")))}
			}
			attack(t, data, sqls...)
			checkpoints := countRows(t, data, "checkpoints")
			s := startServer(t, data, "--dev")
			var h health
			if st := httpJSON(t, "GET", s.URL+"/health", "", nil, &h); st != 503 || h.Status != "degraded" || h.Ledger == nil ||
				h.Ledger.State != "tampered" || !strings.Contains(h.Ledger.Reason, tc.reason) {
				t.Fatalf("/health: %d %+v %+v", st, h, h.Ledger)
			}
			if tc.failure != "" && (h.Ledger.FirstBadSeq == nil || *h.Ledger.FirstBadSeq != parseSeq(t, tc.failure)) {
				t.Fatalf("/health names seq %v, want %s", h.Ledger.FirstBadSeq, tc.failure)
			}
			var att struct{ State, Detail string }
			if st := httpJSON(t, "GET", s.URL+"/api/v1/attestation/state", "", nil, &att); st != 200 || att.State != "degraded" {
				t.Fatalf("attestation: %d %+v", st, att)
			}
			if tc.name == "credential promoted" {
				// The forged row authenticates no one: not as the admin it
				// claims to be, not at all.
				if st := httpJSON(t, "GET", s.URL+"/api/v1/credentials", reader, nil, nil); st != 401 {
					t.Fatalf("the forged admin listed credentials: %d", st)
				}
			}
			var refusal struct{ Code, Error string }
			st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{"class": "prompt_injection", "source": "s", "description": "d"}, &refusal)
			if st != 503 || refusal.Code != "unavailable" || !strings.Contains(refusal.Error, "--accept-tampered") {
				t.Fatalf("write on a tampered log: %d %+v", st, refusal)
			}
			s.stop(t)
			if n := countRows(t, data, "checkpoints"); n != checkpoints {
				t.Fatalf("a server signed %d checkpoints over a tampered log", n-checkpoints)
			}
			if tc.failure == "" {
				return
			}
			// The operator accepts exactly this failure: writes work, and
			// the log says so.
			s = startServer(t, data, "--dev", "--accept-tampered="+tc.failure)
			if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{"class": "prompt_injection", "source": "s", "description": "d"}, nil); st/100 != 2 {
				t.Fatalf("write after acceptance: %d", st)
			}
			var list struct {
				Receipts []struct{ Body map[string]any }
			}
			if st := httpJSON(t, "GET", s.URL+"/api/v1/receipts?type=ledger_tamper_accepted", "", nil, &list); st != 200 || len(list.Receipts) != 1 ||
				list.Receipts[0].Body["failure"] != tc.failure {
				t.Fatalf("acceptance receipt: %d %+v", st, list)
			}
		})
	}
}

func parseSeq(t *testing.T, s string) uint64 {
	t.Helper()
	var n uint64
	for _, c := range s {
		n = n*10 + uint64(c-'0')
	}
	return n
}

// TestServeAcceptsOnlyTheFailureShown: --accept-tampered naming another
// failure is refused (exit 2), so a blanket acceptance cannot hide a later
// edit.
func TestServeAcceptsOnlyTheFailureShown(t *testing.T) {
	data := copyDir(t, buildStateLog(t))
	attack(t, data, `UPDATE receipts SET body = replace(body, '"test"', '"evil"') WHERE seq = 1`)
	code, _, errs := run(t, "serve", "--dev", "--data", data, "--addr", "127.0.0.1:0", "--compat-ports=false", "--accept-tampered=7")
	if code != 2 || !strings.Contains(errs, "accept the failure you were shown") {
		t.Fatalf("accepting another failure: %d %s", code, errs)
	}
	// A state failure is named by a digest of what was found: accepting
	// one forged row never accepts another.
	data = copyDir(t, buildStateLog(t))
	attack(t, data, `UPDATE credentials SET roles = '["admin"]' WHERE name = 'reader'`)
	s := startServer(t, data, "--dev")
	var h health
	httpJSON(t, "GET", s.URL+"/health", "", nil, &h)
	s.stop(t)
	if h.Ledger == nil || !strings.HasPrefix(h.Ledger.Failure, "state-") {
		t.Fatalf("state failure name: %+v", h.Ledger)
	}
	attack(t, data, `UPDATE budgets SET record = json_set(record, '$.spent', 0)`)
	code, _, errs = run(t, "serve", "--dev", "--data", data, "--addr", "127.0.0.1:0", "--compat-ports=false", "--accept-tampered="+h.Ledger.Failure)
	if code != 2 || !strings.Contains(errs, "names another failure") {
		t.Fatalf("an accepted state failure covered a later forgery: %d %s", code, errs)
	}
}

// TestServeAcceptsABackgroundFailure: a failure the background check finds
// is accepted when the operator named it, as one found at once is.
func TestServeAcceptsABackgroundFailure(t *testing.T) {
	data := copyDir(t, buildStateLog(t))
	attack(t, data, `UPDATE receipts SET body = replace(body, '"test"', '"evil"') WHERE seq = 1`)
	s := startServer(t, data, "--dev", "--verify-sync-limit=1", "--accept-tampered=1")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var h health
		httpJSON(t, "GET", s.URL+"/health", "", nil, &h)
		if h.Ledger != nil && h.Ledger.State == "accepted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background failure never accepted: %+v", h.Ledger)
		}
		time.Sleep(20 * time.Millisecond) // polling a real server's progress
	}
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{"class": "prompt_injection", "source": "s", "description": "d"}, nil); st/100 != 2 {
		t.Fatalf("write after the background acceptance: %d", st)
	}
}

// TestServeVerifiesLargeLogsInTheBackground: above the sync limit the whole
// check runs after the server starts, with progress in /health, and
// the server answers meanwhile.
func TestServeVerifiesLargeLogsInTheBackground(t *testing.T) {
	data := buildStateLog(t)
	s := startServer(t, data, "--dev", "--verify-sync-limit=1")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var h health
		httpJSON(t, "GET", s.URL+"/health", "", nil, &h)
		if h.Ledger == nil {
			t.Fatal("no ledger check in /health")
		}
		if h.Ledger.State == "verified" {
			if h.Ledger.Checked == 0 || h.Ledger.Checked != h.Ledger.Total {
				t.Fatalf("verified with progress %d/%d", h.Ledger.Checked, h.Ledger.Total)
			}
			break
		}
		if h.Ledger.State != "verifying" || time.Now().After(deadline) {
			t.Fatalf("background check: %+v", h.Ledger)
		}
		time.Sleep(20 * time.Millisecond) // polling a real server's progress
	}
}
