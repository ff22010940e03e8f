// Package cli is the warden command line: every runbook step as a command,
// with --json output. cmd/warden only calls Main; tests call Main too, so
// the CLI is exercised exactly as an operator runs it.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/sqlite"
)

// Version is the warden version, set at build time with -ldflags.
var Version = "dev"

// Exit codes. README.md ("Output and exit codes") lists them for users;
// TestREADMEExitCodes keeps the two the same.
const (
	ExitOK      = 0
	ExitFailure = 1 // the operation failed or was refused
	ExitUsage   = 2 // bad command, flags or arguments: nothing was attempted
	// ExitVerify is a check that found tampering: verify (the log or its
	// state), forensic verify (a bundle), integrity scan (a watched file
	// changed).
	ExitVerify = 3
	// ExitUnavailable (EX_TEMPFAIL) is a refusal with code unavailable
	// (storage full, writes refused after a failed startup check, no
	// server answering at the URL) or too_many (a limit of open streams or
	// sessions): nothing changed, and the same command may succeed if
	// retried later.
	ExitUnavailable = 75
)

// codeExit is the one table from error codes to exit codes; codes it does
// not list exit with ExitFailure.
var codeExit = map[string]int{
	warden.EUNAVAILABLE: ExitUnavailable,
	warden.ETOOMANY:     ExitUnavailable,
}

// env carries what every command needs.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	json   bool
	data   string
	url    string
	token  string
	// ca, cert and key are the TLS trust and client identity for --url.
	ca, cert, key string
	// ran says a command's RunE started: an error before it (an unknown
	// command, a wrong number of arguments, a required flag missing) is
	// a usage error.
	ran bool
}

// usageError marks errors in how warden was called.
type usageError struct{ error }

// verifyFailure marks a check that found tampering (exit 3).
type verifyFailure struct {
	error
	printed bool // the command already printed its JSON report
}

// Main runs warden with args and returns the process exit code. With
// --json, stdout carries exactly one JSON document whatever happens: the
// answer, or the error ({"error", "code", …}).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := e.rootCmd()
	e.markRuns(root)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var vf verifyFailure
	var ue usageError
	if !e.ran && !errors.As(err, &ue) && !errors.As(err, &vf) {
		err = usageError{err}
	}
	if !e.json {
		// A flag that failed to parse may have stopped --json being read.
		e.json = slices.Contains(args, "--json") || slices.Contains(args, "--json=true")
	}
	switch {
	case errors.As(err, &vf):
		fmt.Fprintln(stderr, "warden: FAILED: tampered:", vf.Error())
		if e.json && !vf.printed {
			out := map[string]any{"ok": false, "tampered": true, "error": vf.Error(), "code": "tampered"}
			var ve *ledger.VerifyError
			var se *engine.StateError
			var re *engine.ReceiptError
			switch {
			case errors.As(vf.error, &ve):
				out["first_bad_seq"] = ve.Seq
			case errors.As(vf.error, &se):
				out["mismatches"] = se.Mismatches
			case errors.As(vf.error, &re):
				out["first_bad_seq"] = re.Seq
			}
			_ = json.NewEncoder(stdout).Encode(out)
		}
		return ExitVerify
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "warden:", plainError(ue.error))
		if cmd != nil && cmd != root {
			fmt.Fprintf(stderr, "usage: %s (see warden %s --help)\n", cmd.UseLine(), strings.TrimPrefix(cmd.CommandPath(), "warden "))
		}
		if e.json {
			_ = json.NewEncoder(stdout).Encode(map[string]string{"error": plainError(ue.error), "code": warden.EINVALID})
		}
		return ExitUsage
	}
	e.printError(err)
	if code, ok := codeExit[warden.ErrorCode(err)]; ok {
		return code
	}
	return ExitFailure
}

// markRuns wraps every command's RunE to note that it started.
func (e *env) markRuns(c *cobra.Command) {
	if c.RunE == nil && c.Run == nil && c.HasSubCommands() && c.HasParent() {
		// A group alone ("warden budget") is a usage error, so that
		// --json still prints one document and scripts see exit 2.
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			if len(args) > 0 {
				return usageError{fmt.Errorf("%s has no subcommand %q: %s", cmd.CommandPath(), args[0], strings.Join(names, ", "))}
			}
			return usageError{fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(names, ", "))}
		}
	} else if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			e.ran = true
			return run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		e.markRuns(sub)
	}
}

// printError reports a failed command: with --json one document on
// stdout, {"error", "code"} and the refusal's data (what the next step
// needs: a request digest, an incident id); else a sentence on stderr,
// the data beneath it and what to do next.
func (e *env) printError(err error) {
	code := warden.ErrorCode(err)
	var we *warden.Error
	errors.As(err, &we)
	if e.json {
		out := map[string]any{}
		if we != nil {
			for k, v := range we.Data {
				out[k] = v
			}
			if n, err := strconv.Atoi(we.RetryAfterSeconds()); err == nil && we.RetryAfter > 0 {
				out["retry_after_seconds"] = n
			}
		}
		msg := warden.ErrorMessage(err)
		if we == nil {
			// A fault met in this process (a file it could not write, a
			// server it could not talk to): the user ran it, and the cause
			// is theirs to see, as in text.
			msg = err.Error()
		}
		out["error"], out["code"] = msg, code
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(out)
		return
	}
	if we == nil {
		fmt.Fprintln(e.stderr, "warden:", err)
		return
	}
	fmt.Fprintf(e.stderr, "warden: %s (%s)\n", warden.ErrorMessage(err), code)
	tw := tabwriter.NewWriter(e.stderr, 2, 4, 1, ' ', 0)
	for _, k := range slices.Sorted(maps.Keys(we.Data)) {
		fmt.Fprintf(tw, "  %s:\t%s\n", k, dataText(we.Data[k]))
	}
	if we.RetryAfter > 0 {
		fmt.Fprintf(tw, "  retry after:\t%s s\n", we.RetryAfterSeconds())
	}
	tw.Flush()
	for _, n := range nextSteps(we) {
		fmt.Fprintln(e.stderr, "next:", n)
	}
}

// dataText shows one value of a refusal's data.
func dataText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// nextSteps says, in commands, what a refusal's data is for.
func nextSteps(we *warden.Error) []string {
	var out []string
	if d, ok := we.Data["request_digest"].(string); ok && we.Data["approval_required"] == true {
		who := "an approver runs"
		if q := dataText(we.Data["quorum"]); q != "null" && q != "1" {
			who = q + " approvers run"
		}
		out = append(out, fmt.Sprintf("%s warden approve %s with their own token; then repeat the escalation with --approved-by NAME for each", who, d))
	}
	if id, ok := we.Data["incident_id"].(string); ok && we.Code == warden.EUNAVAILABLE {
		out = append(out, fmt.Sprintf("the incident was recorded: warden incident get %s", id))
	}
	return out
}

func (e *env) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "warden",
		Short:         "Governance and incident-response control plane for autonomous AI agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.BoolVar(&e.json, "json", false, "print JSON instead of text")
	pf.StringVar(&e.data, "data", envOr("WARDEN_DATA", "warden-data"), "data directory (env WARDEN_DATA)")
	pf.StringVar(&e.url, "url", os.Getenv("WARDEN_URL"), "talk to a running server at this URL instead of the data directory (env WARDEN_URL)")
	pf.StringVar(&e.token, "token", "", "bearer token for --url (default: env WARDEN_TOKEN)")
	pf.StringVar(&e.ca, "ca", os.Getenv("WARDEN_CA"), "PEM file of the CA that signed an https --url server's certificate (default: the system roots; env WARDEN_CA)")
	pf.StringVar(&e.cert, "cert", os.Getenv("WARDEN_CERT"), "client certificate (PEM) for a server that requires one (env WARDEN_CERT)")
	pf.StringVar(&e.key, "key", os.Getenv("WARDEN_KEY"), "private key (PEM) of --cert (env WARDEN_KEY)")
	root.AddCommand(e.governanceCmds()...)
	root.AddCommand(
		e.initCmd(),
		e.serveCmd(),
		e.credentialCmd(),
		e.exportCmd(),
		e.verifyCmd(),
		e.receiptsCmd(),
		e.benchCmd(),
		e.incidentCmd(),
		e.recoveryCmd(),
		e.statsCmd(),
		e.integrityCmd(),
		e.forensicCmd(),
		e.mcpCmd(),
		e.versionCmd(),
	)
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (e *env) bearer() string {
	if e.token != "" {
		return e.token
	}
	return os.Getenv("WARDEN_TOKEN")
}

// print writes v as JSON with --json, else calls text.
func (e *env) print(v any, text func(w io.Writer)) error {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(e.stdout)
	return nil
}

// printSummary reports a file a command wrote: with --json one document
// on stdout ({"written", "bytes", "sha256"} and extra); else a line on
// stderr naming the file and what it holds.
func (e *env) printSummary(wr *written, extra map[string]any, what string) error {
	if e.json {
		out := map[string]any{"written": wr.Path, "bytes": wr.Bytes, "sha256": wr.SHA256}
		for k, v := range extra {
			out[k] = v
		}
		return e.print(out, nil)
	}
	fmt.Fprintf(e.stderr, "written to %s (%s, %d bytes)\n", wr.Path, what, wr.Bytes)
	return nil
}

// local is an opened data directory with its store and engine, for commands
// that work on the data directory directly.
type local struct {
	dir   *datadir.Dir
	store *sqlite.DB
	core  *engine.Core
	rec   *recorder.Recorder
	gov   *governor.Governor
	// openSize is the log size at open; covered says a signed checkpoint
	// covered all of it then; wrote counts the operations this process
	// committed.
	openSize uint64
	covered  bool
	wrote    *atomic.Int64
}

// Close signs a checkpoint over what was appended while the store was
// open, so `warden verify` does not take an offline command's receipts
// (credential add, say) for a forged tail, then closes the store. It signs
// only if this process committed something (a read-only command never
// writes) and a checkpoint covered the whole log at open: a tail nobody
// signed for before this command ran is left for verify to report, never
// vouched for.
func (l *local) Close() error {
	var err error
	if l.covered && l.wrote.Load() > 0 {
		if size, cerr := l.coverage(); cerr != nil {
			err = cerr
		} else if size.head > l.openSize {
			_, err = l.core.Checkpoint(context.Background())
		}
	}
	return errors.Join(err, l.store.Close())
}

type logCoverage struct{ head, checkpoint uint64 }

// coverage reads the log size and the size of its latest checkpoint.
func (l *local) coverage() (logCoverage, error) {
	var c logCoverage
	err := l.store.View(context.Background(), func(tx warden.ReadTx) error {
		h, err := tx.Head()
		if err != nil {
			return err
		}
		c.head = h.Size
		cp, err := tx.LatestCheckpoint()
		if warden.ErrorCode(err) == warden.ENOTFOUND {
			return nil
		} else if err != nil {
			return err
		}
		c.checkpoint = cp.Size
		return nil
	})
	return c, err
}

// openLocal loads the data directory and opens its store.
func (e *env) openLocal(logger *slog.Logger, opts ...func(*stack.Config)) (*local, error) {
	dir, err := datadir.Load(e.data)
	if err != nil {
		return nil, err
	}
	return openDir(dir, logger, nil, opts...)
}

// openDir opens the data directory's store (with so, if not nil: a
// server's pool sizes and commit hook) and builds the stack over it.
func openDir(dir *datadir.Dir, logger *slog.Logger, so *sqlite.Options, opts ...func(*stack.Config)) (*local, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var sopts sqlite.Options
	if so != nil {
		sopts = *so
	}
	wrote := new(atomic.Int64)
	onCommit := sopts.OnCommit
	sopts.Logger = logger
	sopts.OnCommit = func(ops int, d time.Duration) {
		wrote.Add(int64(ops))
		if onCommit != nil {
			onCommit(ops, d)
		}
	}
	st, err := sqlite.Open(dir.DBPath(), sopts)
	if err != nil {
		return nil, err
	}
	// A rotation interrupted after its hand-over was committed is finished;
	// one interrupted before is abandoned.
	if staged := dir.StagedKey(); staged != "" {
		done, err := engine.HandedOverTo(context.Background(), st, staged)
		if err != nil {
			st.Close()
			return nil, err
		}
		if done {
			if err := dir.CommitKey(); err != nil {
				st.Close()
				return nil, err
			}
			logger.Warn("finished a ledger key rotation interrupted by a crash")
		} else {
			dir.AbandonKey()
		}
	}
	cfg := stack.Config{Core: engine.Options{Store: st, Logger: logger, Signer: dir.Signer, PublicKey: dir.PublicKey, Keys: dir}}
	for _, f := range opts {
		f(&cfg)
	}
	s, err := stack.New(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	l := &local{dir: dir, store: st, core: s.Core, rec: s.Recorder, gov: s.Governor, wrote: wrote}
	// A store whose cached head cannot be read is left uncovered (nothing
	// is signed on close); verify names what is wrong with it.
	if c, err := l.coverage(); err == nil {
		l.openSize, l.covered = c.head, c.checkpoint == c.head
	}
	return l, nil
}

// projections are every state projection of the opened stack.
func (l *local) projections() []engine.Projection {
	return (&stack.Stack{Core: l.core, Recorder: l.rec, Governor: l.gov}).Projections()
}

// cliPrincipal is the principal of a command run directly on the data
// directory: whoever can read the private key files is the administrator.
func cliPrincipal() *warden.Principal {
	name := "cli"
	if u := os.Getenv("USER"); u != "" {
		name = "cli:" + u
	}
	return &warden.Principal{Name: name, Roles: []warden.Role{warden.RoleAdmin}}
}

func (e *env) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the warden version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.print(map[string]string{"version": Version}, func(w io.Writer) { fmt.Fprintln(w, "warden", Version) })
		},
	}
}

// plainError is err's text with a wrapped *warden.Error as its sentence
// ("containment policy p.yaml: Cannot read …"), not its debugging form
// ("warden error: code=… message=…").
func plainError(err error) string {
	var we *warden.Error
	if errors.As(err, &we) {
		return strings.Replace(err.Error(), we.Error(), we.Message, 1)
	}
	return err.Error()
}
