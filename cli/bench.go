package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/warden-sh/warden/bench"
)

func (e *env) benchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure warden on this machine"}
	var o bench.LedgerOptions
	ledgerCmd := &cobra.Command{
		Use:   "ledger",
		Short: "Durable receipts/s, single-writer latency, verify speed, inclusion proof latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := scratchDir(o.Dir); err != nil {
				return err
			}
			progress := e.stderr
			res, err := bench.Ledger(e.ctx, o, progress)
			if err != nil {
				return err
			}
			return e.print(res, func(w io.Writer) {
				if res.BusyProcesses > 0 {
					fmt.Fprintf(w, "measured while %d other process(es) kept a core busy each\n", res.BusyProcesses)
				}
				fmt.Fprintf(w, "durable receipts/s (%d writers): %.0f   (target >= 20000)\n", res.Writers, res.ReceiptsPerSec)
				fmt.Fprintf(w, "single-writer append p99:       %.3f ms (target <= 5 ms; p50 %.3f ms)\n", res.SerialP99Ms, res.SerialP50Ms)
				fmt.Fprintf(w, "verify receipts/s:              %.0f   (target >= 200000; %d receipts)\n", res.VerifyPerSec, res.VerifiedReceipts)
				fmt.Fprintf(w, "inclusion proof p99 (%d log):   %.3f ms (target <= 1 ms; p50 %.3f ms)\n", res.ProofLogSize, res.ProofP99Ms, res.ProofP50Ms)
			})
		},
	}
	fl := ledgerCmd.Flags()
	fl.StringVar(&o.Dir, "dir", "", "scratch directory (default: a temporary one, removed afterwards)")
	fl.IntVar(&o.Writers, "writers", 64, "concurrent writers")
	fl.DurationVar(&o.Duration, "duration", 5*time.Second, "throughput run length")
	fl.IntVar(&o.Serial, "serial", 2000, "appends in the single-writer latency run")
	fl.Uint64Var(&o.ProofLog, "proof-log", 1_000_000, "log size for the inclusion proof run")
	fl.IntVar(&o.ProofCount, "proofs", 2000, "inclusion proofs to time")
	fl.IntVar(&o.Busy, "busy", 0, "keep this many cores busy in other processes for the whole run (a loaded, shared machine)")
	var h bench.HTTPOptions
	httpCmd := &cobra.Command{
		Use:   "http [--url URL]",
		Short: "Load-test the incident API: report latency, throughput against /health, growth, export memory",
		Long: `Load-test the incident API.

Without --url it starts its own warden serve on a temporary data directory,
with every containment target at an always-200 service it also starts, and
reports with a class whose containment calls that target (tool_call_burst by
default): the path a report takes in production, on this machine. With --url
it loads your server; its containment targets are then yours, and the run
warns when reports come back containment_failed. --class
forbidden_airlock_request measures a report that calls no target.

Each run first measures GET /health with the same clients, and prints the
report rate as a ratio of it (target: at least 0.25 for a containing class).
Then, at the store's size: the operator's reads (the first page of 100
incidents, the stats, one incident by id: p99 of 500 each), reports from one
client, and reports from --clients. --preload N then stores N more incidents
(of a class that calls no target, so a million take minutes) and measures
again: the rates and the reads should not move. With its own server it also
prints the server's CPU time per request (user and system, from /proc),
which a busy neighbour disturbs less than the rates; --server-bin runs that
server with another build, to compare two builds the same way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			h.URL, h.Token = e.url, e.bearer()
			res, err := bench.HTTP(e.ctx, h, e.stderr)
			if err != nil {
				return err
			}
			return e.print(res, func(w io.Writer) {
				if res.Embedded {
					fmt.Fprintf(w, "class:           %s (embedded server, targets at %s: %d calls answered by the bench's target; %d containment_failed)\n", res.Class, res.Target, res.TargetCalls, res.ContainmentFailed)
				} else {
					fmt.Fprintf(w, "class:           %s (server at --url; %d containment_failed)\n", res.Class, res.ContainmentFailed)
				}
				fmt.Fprintf(w, "/health:         %.0f/s with %d clients%s\n", res.Health.PerSec, res.Health.Clients, cpuNote(res.Health))
				stages := []struct {
					name string
					st   bench.Stage
				}{{"before", bench.Stage{Single: res.Single, Concurrent: res.Concurrent, HealthRatio: res.HealthRatio, Reads: res.Reads}}}
				if res.AfterPreload != nil {
					stages = append(stages, struct {
						name string
						st   bench.Stage
					}{"after preload", *res.AfterPreload})
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "\tstored\t1 client p99\t%d clients\tserver CPU/report\t× /health\tlist 100 p99\tstats p99\tone incident p99\n", res.Concurrent.Clients)
				for _, s := range stages {
					one := "-" // no incident reported yet to read
					if s.st.Reads.SampledIDs > 0 {
						one = fmt.Sprintf("%.2f ms", s.st.Reads.OneByID.P99Ms)
					}
					fmt.Fprintf(tw, "%s\t%d\t%.2f ms\t%.0f/s\t%.3f ms\t%.2f\t%.2f ms\t%.2f ms\t%s\n", s.name, s.st.Reads.Stored, s.st.Single.P99Ms,
						s.st.Concurrent.PerSec, s.st.Concurrent.ServerCPUMs, s.st.HealthRatio, s.st.Reads.List100.P99Ms, s.st.Reads.Stats.P99Ms, one)
				}
				fmt.Fprintf(tw, "target\t\t<= 5 ms\tflat\t\t>= 0.25\t<= 5 ms\t<= 5 ms\t<= 5 ms\n")
				tw.Flush()
				if res.ExportBytes > 0 {
					fmt.Fprintf(w, "forensic export: %.1f MB in %.1f s, server RSS peak %.0f MB (target < 150 MB)\n", float64(res.ExportBytes)/(1<<20), res.ExportSeconds, res.ExportMaxRSSMB)
				}
			})
		},
	}
	hf := httpCmd.Flags()
	hf.IntVar(&h.Clients, "clients", 16, "concurrent clients")
	hf.DurationVar(&h.Duration, "duration", 10*time.Second, "length of each timed run")
	hf.StringVar(&h.Class, "class", "tool_call_burst", "incident class to report (tool_call_burst calls the agent target; forbidden_airlock_request calls none)")
	hf.IntVar(&h.Preload, "preload", 0, "report this many incidents, then measure again")
	hf.BoolVar(&h.Export, "export", false, "finish with a forensic export, sampling the server's RSS")
	hf.StringVar(&h.Target, "target", "", "point the embedded server's containment targets at this URL instead of an always-200 service the benchmark starts")
	hf.StringVar(&h.ServerBin, "server-bin", "", "run the embedded server with this warden binary instead of this one (to compare two builds the same way)")
	hf.StringArrayVar(&h.ServerArgs, "server-arg", nil, "add this argument to the embedded server's command line (e.g. --server-arg=--cpuprofile=FILE)")
	var so bench.StartupOptions
	startupCmd := &cobra.Command{
		Use:   "startup",
		Short: "What serve's startup check costs: the tail check, whole-log verification, and the state replay",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := scratchDir(so.Dir); err != nil {
				return err
			}
			res, err := bench.Startup(e.ctx, so, e.stderr)
			if err != nil {
				return err
			}
			return e.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "receipts:                 %d (%d incidents, %d debits, %d escalations)\n", res.Receipts, res.Incidents, res.Debits, res.Escalations)
				fmt.Fprintf(w, "tail check:               %.1f ms (before writes are taken)\n", res.TailCheckMs)
				fmt.Fprintf(w, "whole log, verify only:   %.2f s\n", res.VerifySeconds)
				fmt.Fprintf(w, "whole log and replay:     %.2f s (%.2f s per 100k receipts; heap peak %.0f MB)\n", res.CheckSeconds, res.ReplayPer100kS, res.PeakHeapMB)
			})
		},
	}
	sf := startupCmd.Flags()
	sf.StringVar(&so.Dir, "dir", "", "scratch directory (default: a temporary one, removed afterwards)")
	sf.IntVar(&so.Receipts, "receipts", 1_000_000, "receipts to write before measuring")
	sf.IntVar(&so.Writers, "writers", 16, "concurrent writers while building")
	spinCmd := &cobra.Command{
		Use:    bench.SpinCommand,
		Short:  "Keep one core busy until stdin closes (the load of bench ledger --busy)",
		Hidden: true,
		Args:   cobra.NoArgs,
		Run:    func(*cobra.Command, []string) { bench.Spin() },
	}
	cmd.AddCommand(ledgerCmd, httpCmd, startupCmd, spinCmd)
	return cmd
}

// scratchDir refuses a --dir that is not an existing directory, saying
// so, before a benchmark tries to open a database in it.
func scratchDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usageError{fmt.Errorf("--dir %s: no such directory; create it, or leave --dir out for a temporary one", dir)}
	case err != nil:
		return usageError{fmt.Errorf("--dir %s: %w", dir, err)}
	case !fi.IsDir():
		return usageError{fmt.Errorf("--dir %s: not a directory", dir)}
	}
	return nil
}

// cpuNote is ", server CPU X ms each" when the run measured it.
func cpuNote(r bench.RunResult) string {
	if r.ServerCPUMs == 0 {
		return ""
	}
	return fmt.Sprintf(", server CPU %.3f ms each", r.ServerCPUMs)
}
