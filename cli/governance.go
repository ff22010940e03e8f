package cli

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/jsonx"
)

// callTool calls a governance tool on the server and prints its result:
// as text (tables for lists) or, with --json, the tool's JSON answer.
func (e *env) callTool(name string, args any) error {
	var out json.RawMessage
	if err := e.api().do("POST", "/api/v1/governance/"+name, args, &out); err != nil {
		return err
	}
	if e.json {
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			return err
		}
		return e.print(v, nil)
	}
	v, err := decodeOrdered(out)
	if err != nil {
		return fmt.Errorf("%s: decoding answer: %w", name, err)
	}
	renderText(e.stdout, v)
	return nil
}

func (e *env) governanceCmds() []*cobra.Command {
	var to, typ, reason, subject, threatID, threatType string
	var ttl int
	var approvedBy []string
	escalate := &cobra.Command{
		Use:   "escalate --to PROFILE --type TYPE [--reason R] [--approved-by NAME]...",
		Short: "Escalate one hop up the ladder from your current profile",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// reason is a required argument; an empty one is judged by the
			// ladder (a threat id can stand in for it).
			req := map[string]any{"to_profile": to, "escalation_type": typ, "reason": reason}
			if ttl > 0 {
				req["ttl_seconds"] = ttl
			}
			if len(approvedBy) > 0 {
				req["approved_by"] = approvedBy
			}
			if subject != "" {
				req["subject"] = subject
			}
			if threatID != "" || threatType != "" {
				c := map[string]any{}
				if threatID != "" {
					c["threat_id"] = threatID
				}
				if threatType != "" {
					c["threat_type"] = threatType
				}
				req["context"] = c
			}
			return e.callTool("escalate", req)
		},
	}
	ef := escalate.Flags()
	ef.StringVar(&to, "to", "", "target profile: operator, guardian, phoenix, sovereign")
	ef.StringVar(&typ, "type", "operator_request", "threat_detected, operator_request, crisis_declared, quorum_approved, sovereign_override")
	ef.StringVar(&reason, "reason", "", "why")
	ef.IntVar(&ttl, "ttl", 0, "TTL in seconds (capped by the hop's maximum)")
	ef.StringArrayVar(&approvedBy, "approved-by", nil, "approver who approved the request digest (repeatable)")
	ef.StringVar(&subject, "subject", "", "escalate another principal (operators and admins)")
	ef.StringVar(&threatID, "threat-id", "", "context: threat id")
	ef.StringVar(&threatType, "threat-type", "", "context: threat type")
	_ = escalate.MarkFlagRequired("to")

	var dtyp, dreason string
	deescalate := &cobra.Command{
		Use:   "deescalate ESCALATION_ID [--type TYPE] [--reason R]",
		Short: "Undo an escalation and the hops above it (crisis_concluded: back to observer)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.callTool("deescalate", map[string]any{"escalation_id": args[0], "deescalation_type": dtyp, "reason": dreason})
		},
	}
	deescalate.Flags().StringVar(&dtyp, "type", "operator_release", "timeout_expired, threat_resolved, operator_release, crisis_concluded, sovereign_revoke")
	deescalate.Flags().StringVar(&dreason, "reason", "", "why")

	var who, profile string
	var limit int
	escalations := &cobra.Command{
		Use:   "escalations [--subject S | --subject '*']",
		Short: "Active escalations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := map[string]any{}
			if who != "" {
				req["subject"] = who
			}
			return e.callTool("get_active_escalations", req)
		},
	}
	escalations.Flags().StringVar(&who, "subject", "", "whose escalations (operators: any principal, or * for all)")
	var before uint64
	history := &cobra.Command{
		Use:   "history [--profile P] [--limit N] [--before SEQ]",
		Short: "Escalation history, newest first (next_before in the answer pages on)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := map[string]any{"profile": profile, "limit": limit}
			if cmd.Flags().Changed("before") {
				req["before"] = before
			}
			return e.callTool("get_escalation_history", req)
		},
	}
	history.Flags().StringVar(&profile, "profile", "", "only transitions touching this profile")
	history.Flags().IntVar(&limit, "limit", 100, "at most this many (1-1000)")
	history.Flags().Uint64Var(&before, "before", 0, "only entries older than this receipt seq (a previous answer's next_before)")
	sweep := &cobra.Command{
		Use:   "sweep",
		Short: "De-escalate every escalation whose TTL passed, now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.callTool("check_expired_escalations", map[string]any{})
		},
	}
	escalations.AddCommand(history, sweep)

	approve := &cobra.Command{
		Use:   "approve REQUEST_DIGEST",
		Short: "Approve an escalation request (approver role)",
		Long: `Approve an escalation request, as the approver whose token this command
sends (approver role; not the requester or the subject).

REQUEST_DIGEST comes from the refusal of the escalation that needs approval:
"warden escalate --to phoenix …" without --approved-by is refused with
"requires approval" and prints request_digest (64 hex digits) and quorum
(with --json: the "request_digest" member). Each approver runs this command
with that digest; the requester then repeats the same escalate with
--approved-by NAME for each approver. The digest names one request (subject,
from, to, type and the subject's escalation count), so an approval counts
for that escalation only, within an hour.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.callTool("approve_escalation", map[string]any{"request_digest": args[0]})
		},
	}

	budget := &cobra.Command{Use: "budget", Short: "Treasury budgets"}
	var name, currency, desc, key string
	var allocated, amount int64
	create := &cobra.Command{
		Use:   "create BUDGET_ID --allocated N --currency C [--name N]",
		Short: "Create a budget you own (treasury_create_budget)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.callTool("treasury_create_budget", map[string]any{"budget_id": args[0], "name": name, "allocated": allocated, "currency": currency})
		},
	}
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().Int64Var(&allocated, "allocated", 0, "units allocated")
	create.Flags().StringVar(&currency, "currency", "UNITS", "currency")
	move := func(verb, tool string) *cobra.Command {
		short := map[string]string{
			"debit":  "Spend from a budget, refused (and receipted) beyond its balance (treasury_debit)",
			"credit": "Add to a budget, operators only (treasury_credit)",
		}[verb]
		c := &cobra.Command{
			Use:   verb + " BUDGET_ID --amount N [--description D] [--idempotency-key K]",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return e.callTool(tool, map[string]any{"budget_id": args[0], "amount": amount, "description": desc, "idempotency_key": key})
			},
		}
		c.Flags().Int64Var(&amount, "amount", 0, "units")
		c.Flags().StringVar(&desc, "description", "", "what for")
		c.Flags().StringVar(&key, "idempotency-key", "", "a retried call with the same key counts once")
		return c
	}
	balance := &cobra.Command{
		Use:   "balance BUDGET_ID",
		Short: "A budget's allocation, spending and balance (treasury_balance)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.callTool("treasury_balance", map[string]any{"budget_id": args[0]})
		},
	}
	budget.AddCommand(create, move("debit", "treasury_debit"), move("credit", "treasury_credit"), balance)

	var decision, reasoning string
	var confidence float64
	decide := &cobra.Command{
		Use:   "decide --decision D [--reasoning R] [--confidence C]",
		Short: "Record a decision in the cognitive scroll",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.callTool("cognitive_decide", map[string]any{"decision": decision, "reasoning": reasoning, "confidence": confidence})
		},
	}
	decide.Flags().StringVar(&decision, "decision", "", "the decision")
	decide.Flags().StringVar(&reasoning, "reasoning", "", "why")
	decide.Flags().Float64Var(&confidence, "confidence", 0, "0..1")

	var temThreat, temType, temReason string
	tem := &cobra.Command{
		Use:   "tem [--threat-id T] [--threat-type T] [--reason R]",
		Short: "Invoke Tem (guardian or above)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.callTool("cognitive_invoke_tem", map[string]any{"threat_id": temThreat, "threat_type": temType, "reason": temReason})
		},
	}
	tem.Flags().StringVar(&temThreat, "threat-id", "", "threat id")
	tem.Flags().StringVar(&temType, "threat-type", "", "threat type")
	tem.Flags().StringVar(&temReason, "reason", "", "why")

	guardian := &cobra.Command{Use: "guardian", Short: "Scroll roots, checkpoints, anchoring"}
	guardian.AddCommand(
		&cobra.Command{Use: "status", Short: "Scroll roots and the latest signed checkpoint (guardian_status)", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error { return e.callTool("guardian_status", map[string]any{}) }},
		&cobra.Command{Use: "anchor", Short: "Sign a checkpoint and export it to the mirror directory (guardian_anchor)", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error { return e.callTool("guardian_anchor", map[string]any{}) }},
	)

	tool := &cobra.Command{
		Use:   "tool NAME [JSON_ARGUMENTS]",
		Short: "Call any governance tool with a JSON object of arguments",
		Long:  "Call any governance tool, as agents do over MCP, with a JSON object of\narguments (default {}); unknown or mistyped arguments are refused by name,\nand a missing required one too. docs/GOVERNANCE.md describes the rules.\n\nTools (minimum profile in the default authority matrix):\n" + toolList(),
		Example: `  warden tool guardian_status
  warden tool treasury_debit '{"budget_id":"ops","amount":5,"description":"tokens"}'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw := json.RawMessage("{}")
			if len(args) == 2 {
				raw = json.RawMessage(strings.TrimSpace(args[1]))
				if !json.Valid(raw) {
					return usageError{fmt.Errorf("JSON_ARGUMENTS is not valid JSON: give one object, e.g. '{\"budget_id\":\"ops\"}'")}
				}
			}
			return e.callTool(args[0], raw)
		},
	}
	return []*cobra.Command{escalate, deescalate, escalations, approve, budget, decide, tem, guardian, tool}
}

// toolList is the governance tools for tool's help: each with the
// minimum profile of the default authority matrix, what it does and its
// arguments ([optional] ones in brackets), from the types the server
// decodes them into.
func toolList() string {
	var b strings.Builder
	for _, t := range governor.Tools() {
		fmt.Fprintf(&b, "  %s (%s)\n      %s\n", t.Name, governor.DefaultAuthority[t.Name], t.Description)
		if args := argNames(reflect.TypeOf(t.NewArgs())); len(args) > 0 {
			fmt.Fprintf(&b, "      arguments: %s\n", strings.Join(args, ", "))
		}
	}
	return b.String()
}

// argNames lists a tool argument type's JSON members, required first as
// jsonx.DecodeRequired decides, then the optional ones in brackets.
func argNames(t reflect.Type) []string {
	required := jsonx.Required(t)
	var optional []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
			case f.Anonymous && name == "":
				walk(f.Type)
			case !f.IsExported():
			default:
				if name == "" {
					name = f.Name
				}
				if !slices.Contains(required, name) {
					optional = append(optional, "["+name+"]")
				}
			}
		}
	}
	walk(t)
	return append(required, optional...)
}
