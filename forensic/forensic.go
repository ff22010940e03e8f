// Package forensic defines warden's signed forensic bundle and verifies one
// offline, in bounded memory, naming what was tampered.
//
// A bundle is one JSON object; Write writes it and Verify checks it. Its
// first five members, in RFC 8785 order, are the hashed content:
//
//	audit_entries  every incident-scroll receipt, in seq order
//	exported_at    RFC 3339 time of the export
//	incidents      every incident record, in the listing order of
//	               GET /api/v1/incidents: most severe first, then newest
//	               (highest number) first
//	policy_digest  "sha256:…" of the containment policy in force
//	system_state   counters and trust states at export time
//
// Audit entries and incidents are read from one store snapshot without
// filters, so every incident with a receipt among the audit entries is in
// incidents and system_state's counters agree with them; Verify relies on
// both. It does not rely on the order of incidents (bundle_hash fixes it).
//
// bundle_hash is hex SHA-256 over the RFC 8785 serialisation of exactly
// those five members. signature is hex HMAC-SHA256(forensic key,
// bundle_hash). bundle_note is a signed note (ed25519, the ledger key) whose
// text is "warden forensic bundle\n<bundle_hash>\n". checkpoint is the
// ledger's signed checkpoint; inclusion_proofs prove every anchored audit
// entry into it, and the checkpoint's incident scroll root proves no entry
// is missing. pubkey is the ledger's verifier key and format is Format.
// Write writes these after the content, in the order bundle_hash,
// signature, bundle_note, pubkey, checkpoint, format, inclusion_proofs;
// Verify needs only inclusion_proofs after audit_entries.
package forensic

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// Format names this bundle layout.
const Format = "warden-forensic/v1"

// The bundle's member names.
const (
	memberAuditEntries = "audit_entries"
	memberExportedAt   = "exported_at"
	memberIncidents    = "incidents"
	memberPolicyDigest = "policy_digest"
	memberSystemState  = "system_state"
	memberBundleHash   = "bundle_hash"
	memberSignature    = "signature"
	memberBundleNote   = "bundle_note"
	memberPubkey       = "pubkey"
	memberCheckpoint   = "checkpoint"
	memberFormat       = "format"
	memberProofs       = "inclusion_proofs"
)

// The layout: Write writes members in this order; Verify checks the order
// of the hashed ones.
var (
	// hashedMembers are the content bundle_hash covers, in RFC 8785 order.
	// They come first and in this order so that Write and Verify hash them
	// as they stream: Write's output up to system_state, closed with "}",
	// is the canonical object the hash covers.
	hashedMembers = []string{memberAuditEntries, memberExportedAt, memberIncidents, memberPolicyDigest, memberSystemState}
	// stringMembers follow the content; each is a JSON string.
	stringMembers = []string{memberBundleHash, memberSignature, memberBundleNote, memberPubkey, memberCheckpoint, memberFormat}
	// members is the whole bundle. inclusion_proofs comes last: it is
	// written from a second pass over the audit entries.
	members = slices.Concat(hashedMembers, stringMembers, []string{memberProofs})
)

// NoteText returns the text the bundle_note signs.
func NoteText(bundleHash string) string {
	return "warden forensic bundle\n" + bundleHash + "\n"
}

// Sign returns the HMAC signature of a bundle hash.
func Sign(key []byte, bundleHash string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(bundleHash))
	return hex.EncodeToString(m.Sum(nil))
}

// Proof is the inclusion proof of one audit entry.
type Proof struct {
	Seq      uint64   `json:"seq"`
	TreeSize uint64   `json:"tree_size"`
	Hashes   [][]byte `json:"hashes"`
}

// SystemState is the system_state member.
type SystemState struct {
	TotalIncidents    int64            `json:"total_incidents"`
	OpenIncidents     int64            `json:"open_incidents"`
	ContainedCount    int64            `json:"contained_count"`
	ResolvedCount     int64            `json:"resolved_count"`
	ByClass           map[string]int64 `json:"by_class"`
	OpenBySeverity    map[string]int64 `json:"open_by_severity"`
	PendingRecoveries int              `json:"pending_recoveries"`
	AttestationState  string           `json:"attestation_state"`
	IntegrityState    string           `json:"integrity_state"`
	LogSize           uint64           `json:"log_size"`
	CheckpointSize    uint64           `json:"checkpoint_size"`
	Origin            string           `json:"origin"`
	DrillMode         bool             `json:"drill_mode"`
	WardenVersion     string           `json:"warden_version"`
}
