package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/warden-sh/warden/forensic"
	"github.com/warden-sh/warden/ledger"
)

func (e *env) forensicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "forensic", Short: "Export and verify signed forensic bundles"}
	var out string
	export := &cobra.Command{
		Use:   "export [-o FILE]",
		Short: "Download a forensic bundle from the server (forensic role)",
		Long: `Download a signed forensic bundle from the server (forensic role), for
warden forensic verify. Without -o it goes to stdout. With --json, -o is
required and stdout carries a summary: {"written", "bytes", "sha256"}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.needFile(out); err != nil {
				return err
			}
			body, err := e.api().open("GET", "/api/v1/forensic/export", nil)
			if err != nil {
				return err
			}
			defer body.Close()
			wr, err := e.writeOutput(out, 0o600, func(w io.Writer) error {
				_, err := io.Copy(w, body)
				return err
			})
			if err != nil || wr == nil {
				return err
			}
			return e.printSummary(wr, nil, "forensic bundle")
		},
	}
	export.Flags().StringVarP(&out, "output", "o", "", "output file (default stdout)")

	var hmacFile, pubFile string
	var trustEmbedded bool
	verify := &cobra.Command{
		Use:   "verify FILE [--hmac-key FILE] [--pubkey FILE]",
		Short: "Verify a forensic bundle offline and name what was tampered",
		Long: `Verify a forensic bundle offline and name every failed check: the bundle
hash over its canonical content; the HMAC signature (--hmac-key, e.g.
DATA/hmac.key); the ed25519 bundle signature and checkpoint, the inclusion
proof of every anchored audit entry and that none is missing (--pubkey,
e.g. DATA/ledger.pub); every audit entry's hashes; every incident against
its latest receipted state; that every incident with receipts is in the
bundle; and the system_state counters, checkpoint size and origin against
what the bundle shows.

Give --hmac-key, --pubkey or both. Without --pubkey the signatures are not
checked unless --trust-embedded-key asks to check them with the key inside
the bundle: that proves the bundle is intact, not who made it (anyone can
re-sign an edited bundle with a key of their own), and the output says so.
Exit 2 without any key; exit 3 names every failed check.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if hmacFile == "" && pubFile == "" && !trustEmbedded {
				return usageError{fmt.Errorf("give --pubkey and/or --hmac-key: without a key you trust, a re-signed bundle would verify (--trust-embedded-key checks integrity only)")}
			}
			if pubFile != "" && trustEmbedded {
				return usageError{fmt.Errorf("--pubkey and --trust-embedded-key exclude each other: the signatures are checked with one key")}
			}
			o := forensic.Options{TrustEmbeddedKey: trustEmbedded}
			if hmacFile != "" {
				b, err := os.ReadFile(hmacFile)
				if err != nil {
					return usageError{err}
				}
				if o.HMACKey, err = hex.DecodeString(strings.TrimSpace(string(b))); err != nil {
					return usageError{fmt.Errorf("--hmac-key: not hex: %w", err)}
				}
			}
			if pubFile != "" {
				b, err := os.ReadFile(pubFile)
				if err != nil {
					return usageError{err}
				}
				if o.Verifiers, _, err = ledger.ParseVerifiers(b); err != nil {
					return usageError{err}
				}
			}
			f, err := os.Open(args[0])
			if err != nil {
				return usageError{err}
			}
			defer f.Close()
			rep, err := forensic.Verify(f, o)
			if err != nil {
				if e.json && rep != nil {
					e.print(rep, nil)
					return verifyFailure{err, true}
				}
				return verifyFailure{error: err}
			}
			return e.print(rep, func(w io.Writer) {
				fmt.Fprintf(w, "ok: bundle %s: %d incidents, %d audit entries", rep.BundleHash, rep.Incidents, rep.AuditEntries)
				if rep.SignaturesChecked {
					fmt.Fprintf(w, ", %d inclusion proofs verified", rep.Proofs)
				}
				if rep.Unanchored > 0 {
					fmt.Fprintf(w, ", %d newer than the checkpoint", rep.Unanchored)
				}
				fmt.Fprintln(w)
				if !rep.HMACChecked {
					fmt.Fprintln(w, "note: HMAC not checked (no --hmac-key)")
				}
				if !rep.SignaturesChecked {
					fmt.Fprintln(w, "note: bundle signature, checkpoint and inclusion proofs not checked (no --pubkey)")
				}
				if rep.EmbeddedKey {
					fmt.Fprintln(w, "warning: signatures checked with the key inside the bundle (--trust-embedded-key): this proves the bundle is intact, not who made it; pass --pubkey with a key you trust")
				}
			})
		},
	}
	verify.Flags().StringVar(&hmacFile, "hmac-key", "", "file with the forensic HMAC key (hex), e.g. DATA/hmac.key")
	verify.Flags().StringVar(&pubFile, "pubkey", "", "file with the trusted ledger public key, e.g. DATA/ledger.pub")
	verify.Flags().BoolVar(&trustEmbedded, "trust-embedded-key", false, "check the signatures with the key inside the bundle (proves integrity, not origin)")
	cmd.AddCommand(export, verify)
	return cmd
}
