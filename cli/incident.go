package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
)

// DefaultURL is the server the runbook commands talk to without --url.
const DefaultURL = "http://127.0.0.1:8515"

// api returns a client for the runbook commands: --url, WARDEN_URL, or the
// local default.
func (e *env) api() *apiClient {
	if e.url == "" {
		e.url = DefaultURL
	}
	return e.client()
}

func (e *env) incidentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "incident", Short: "Report, list, inspect, acknowledge and resolve incidents (through the server)"}
	var req recorder.ReportRequest
	var evidence []string
	report := &cobra.Command{
		Use:   "report --class C --source S --description D [--severity S [--severity-reason R]] [--evidence k=v]...",
		Short: "Report a security incident; containment runs at once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, kv := range evidence {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return usageError{fmt.Errorf("--evidence %q: want key=value", kv)}
				}
				if req.Evidence == nil {
					req.Evidence = map[string]string{}
				}
				req.Evidence[k] = v
			}
			api := e.api()
			if req.IdempotencyKey != "" {
				api = api.with("Idempotency-Key", req.IdempotencyKey)
			}
			var inc warden.Incident
			if err := api.do("POST", "/api/v1/incidents/report", req, &inc); err != nil {
				return err
			}
			return e.print(&inc, func(w io.Writer) { printIncident(w, &inc) })
		},
	}
	fl := report.Flags()
	fl.StringVar(&req.Class, "class", "", "incident class (required): "+strings.Join(warden.IncidentClasses, ", "))
	fl.StringVar(&req.Source, "source", "", "reporting source (required)")
	fl.StringVar(&req.Description, "description", "", "what happened (required)")
	fl.StringVar(&req.Severity, "severity", "", "raise the class's default severity (lowering it: operators only, with --severity-reason)")
	fl.StringVar(&req.SeverityReason, "severity-reason", "", "why a severity below the class default is right (operators; receipted)")
	fl.StringArrayVar(&evidence, "evidence", nil, "evidence key=value (repeatable)")
	fl.StringVar(&req.IdempotencyKey, "idempotency-key", "", "name this report for retries: the same key and report within 24 h return the incident the first one created (Idempotency-Key header)")

	var class, state, severity string
	var limit int
	list := &cobra.Command{
		Use:   "list [--state S] [--class C] [--severity S] [--limit N]",
		Short: "List incidents, critical and newest first (every one, page by page, unless --limit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageError{fmt.Errorf("--limit %d: want 0 (all) or more", limit)}
			}
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "class": class, "severity": severity} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", strconv.Itoa(pageSize))
			if limit > 0 && limit < pageSize {
				q.Set("limit", strconv.Itoa(limit))
			}
			list := []*warden.Incident{}
			if err := e.api().pages("/api/v1/incidents?"+q.Encode(), func(body []byte) (bool, error) {
				var page []*warden.Incident
				if err := json.Unmarshal(body, &page); err != nil {
					return false, fmt.Errorf("GET /api/v1/incidents: decoding answer: %w", err)
				}
				list = append(list, page...)
				if limit > 0 && len(list) >= limit {
					list = list[:limit]
					return false, nil
				}
				return true, nil
			}); err != nil {
				return err
			}
			return e.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tCLASS\tSEVERITY\tSTATE\tSOURCE\tCREATED")
				for _, i := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Class, i.Severity, i.State, i.Source, i.CreatedAt)
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&state, "state", "", "open, contained, containment_failed, acknowledged, resolved")
	list.Flags().StringVar(&class, "class", "", "incident class")
	list.Flags().StringVar(&severity, "severity", "", "low, medium, high, critical")
	list.Flags().IntVar(&limit, "limit", 0, "list at most N incidents (default 0: all of them, fetched page by page)")

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show one incident",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var inc warden.Incident
			if err := e.api().do("GET", "/api/v1/incidents/get?id="+url.QueryEscape(args[0]), nil, &inc); err != nil {
				return err
			}
			return e.print(&inc, func(w io.Writer) { printIncident(w, &inc) })
		},
	}
	transition := func(verb, path string) *cobra.Command {
		return &cobra.Command{
			Use:   verb + " ID",
			Short: strings.ToUpper(verb[:1]) + verb[1:] + " an incident (refused while its recovery is incomplete)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var inc warden.Incident
				if err := e.api().do("POST", path, map[string]string{"id": args[0]}, &inc); err != nil {
					return err
				}
				return e.print(&inc, func(w io.Writer) { printIncident(w, &inc) })
			},
		}
	}
	cmd.AddCommand(report, list, get,
		transition("resolve", "/api/v1/incidents/resolve"),
		transition("acknowledge", "/api/v1/incidents/acknowledge"))
	return cmd
}

func printIncident(w io.Writer, i *warden.Incident) {
	fmt.Fprintf(w, "id:          %s\nclass:       %s\nseverity:    %s", i.ID, i.Class, i.Severity)
	if i.EscalatedFrom != "" {
		fmt.Fprintf(w, " (raised from %s)", i.EscalatedFrom)
	}
	fmt.Fprintf(w, "\nstate:       %s\nsource:      %s\ndescription: %s\ncreated_at:  %s\n", i.State, i.Source, i.Description, i.CreatedAt)
	if i.AckedAt != "" {
		fmt.Fprintf(w, "acked:       %s by %s\n", i.AckedAt, i.AckedBy)
	}
	if i.ResolvedAt != "" {
		fmt.Fprintf(w, "resolved_at: %s\n", i.ResolvedAt)
	}
	for k, v := range i.Evidence {
		fmt.Fprintf(w, "evidence:    %s=%s\n", k, v)
	}
	for _, r := range i.ContainmentResults {
		status := "ok"
		if !r.Success {
			status = "FAILED: " + r.Error
		}
		if r.DryRun {
			status += " (dry-run)"
		}
		fmt.Fprintf(w, "containment: %s %s\n", r.Action, status)
	}
}

func (e *env) recoveryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "recovery", Short: "The recovery ceremony: status, ack, reattest (through the server)"}
	status := &cobra.Command{
		Use:   "status",
		Short: "Pending recovery requirements",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st struct {
				PendingRecoveries []*warden.RecoveryRequirement `json:"pending_recoveries"`
				Count             int                           `json:"count"`
			}
			st.PendingRecoveries = []*warden.RecoveryRequirement{}
			if err := e.api().pages(fmt.Sprintf("/api/v1/recovery/status?limit=%d", pageSize), func(body []byte) (bool, error) {
				var page struct {
					PendingRecoveries []*warden.RecoveryRequirement `json:"pending_recoveries"`
				}
				if err := json.Unmarshal(body, &page); err != nil {
					return false, fmt.Errorf("GET /api/v1/recovery/status: decoding answer: %w", err)
				}
				st.PendingRecoveries = append(st.PendingRecoveries, page.PendingRecoveries...)
				return true, nil
			}); err != nil {
				return err
			}
			st.Count = len(st.PendingRecoveries)
			return e.print(st, func(w io.Writer) {
				noun := "recoveries"
				if st.Count == 1 {
					noun = "recovery"
				}
				fmt.Fprintf(w, "%d pending %s\n", st.Count, noun)
				for _, r := range st.PendingRecoveries {
					fmt.Fprintf(w, "  %s  missing: %s\n", r.IncidentID, strings.Join(missingSteps(r), ", "))
				}
			})
		},
	}
	var operator string
	ack := &cobra.Command{
		Use:   "ack INCIDENT_ID --operator NAME",
		Short: "Acknowledge a latched or critical incident (recovery-admin role)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := e.api().do("POST", "/api/v1/recovery/ack", map[string]string{"incident_id": args[0], "operator": operator}, &raw); err != nil {
				return err
			}
			return e.printStep(raw, args[0])
		},
	}
	ack.Flags().StringVar(&operator, "operator", "", "the name of the person acknowledging, recorded beside your credential (required)")
	_ = ack.MarkFlagRequired("operator")
	reattest := &cobra.Command{
		Use:   "reattest INCIDENT_ID",
		Short: "Re-verify the ledger and integrity baseline and record re-attestation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := e.api().do("POST", "/api/v1/recovery/reattest", map[string]string{"incident_id": args[0]}, &raw); err != nil {
				return err
			}
			return e.printStep(raw, args[0])
		},
	}
	cmd.AddCommand(status, ack, reattest)
	return cmd
}

// missingSteps names the ceremony steps r still needs as the commands
// that take them.
func missingSteps(r *warden.RecoveryRequirement) []string {
	var m []string
	if r.RequireAck && r.AckedAt == "" {
		m = append(m, "acknowledgment (warden recovery ack "+r.IncidentID+" --operator NAME)")
	}
	if r.RequireReattest && r.ReAttestedAt == "" {
		m = append(m, "re-attestation (warden recovery reattest "+r.IncidentID+")")
	}
	return m
}

// recoveryStep is the answer to a ceremony step.
type recoveryStep struct {
	Status      string                      `json:"status"`
	Requirement *warden.RecoveryRequirement `json:"requirement"`
}

// printStep prints a ceremony step's answer: with --json as the server
// sent it, else what happened and the next step.
func (e *env) printStep(raw json.RawMessage, id string) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	if e.json {
		return e.print(v, nil)
	}
	var s recoveryStep
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	s.print(e.stdout, id)
	return nil
}

func (s *recoveryStep) print(w io.Writer, id string) {
	fmt.Fprintf(w, "%s: %s\n", id, s.Status)
	if s.Requirement == nil {
		return
	}
	if m := missingSteps(s.Requirement); len(m) > 0 {
		fmt.Fprintf(w, "still missing: %s\n", strings.Join(m, ", "))
		return
	}
	fmt.Fprintf(w, "recovery complete: warden incident resolve %s (or acknowledge) may proceed\n", id)
}

func (e *env) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Incident statistics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st warden.IncidentStats
			if err := e.api().do("GET", "/api/v1/stats", nil, &st); err != nil {
				return err
			}
			return e.print(&st, func(w io.Writer) {
				fmt.Fprintf(w, "total %d, open %d, contained %d, resolved %d\n", st.TotalIncidents, st.OpenIncidents, st.ContainedCount, st.ResolvedCount)
				for c, n := range st.ByClass {
					fmt.Fprintf(w, "  %-28s %d\n", c, n)
				}
			})
		},
	}
}

func (e *env) integrityCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "integrity", Short: "File integrity baseline and scans (through the server)"}
	baseline := &cobra.Command{
		Use:   "baseline PATH...",
		Short: "Record the hashes of files (directories recursively) as the baseline",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			paths := make([]string, len(args))
			for i, a := range args {
				abs, err := filepath.Abs(a)
				if err != nil {
					return usageError{err}
				}
				if _, err := os.Stat(abs); err != nil {
					return usageError{err}
				}
				paths[i] = abs
			}
			var out map[string]any
			if err := e.api().do("POST", "/api/v1/integrity/baseline", map[string]any{"paths": paths}, &out); err != nil {
				return err
			}
			return e.print(out, func(w io.Writer) { fmt.Fprintf(w, "baseline recorded: %v files\n", out["files"]) })
		},
	}
	scan := &cobra.Command{
		Use:   "scan",
		Short: "Re-hash the baseline now; changes are reported as an integrity_violation incident",
		Args:  cobra.NoArgs,
		Long: `Re-hash the files of the integrity baseline now. Changes are reported as an
integrity_violation incident (and contained). Exit 0: every file matches the
baseline; exit 3: a file changed, was added or removed (the incident is named).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res recorder.ScanResult
			if err := e.api().do("POST", "/api/v1/integrity/scan", struct{}{}, &res); err != nil {
				return err
			}
			if err := e.print(&res, func(w io.Writer) {
				if res.Clean {
					fmt.Fprintf(w, "clean: %d files match the baseline\n", res.Files)
					return
				}
				fmt.Fprintf(w, "VIOLATION: %s\n", res.Evidence["summary"])
				if res.Incident != nil {
					fmt.Fprintf(w, "incident: %s (%s)\n", res.Incident.ID, res.Incident.State)
				}
			}); err != nil {
				return err
			}
			if res.Clean {
				return nil
			}
			// A violation is a finding, like verify's: scripts must see it.
			msg := fmt.Sprintf("integrity violation: %s", res.Evidence["summary"])
			if res.Incident != nil {
				msg += " (incident " + res.Incident.ID + ")"
			}
			return verifyFailure{error: errors.New(msg), printed: true}
		},
	}
	cmd.AddCommand(baseline, scan)
	return cmd
}
