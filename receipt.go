package warden

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the receipt schema version, kept from seed 002.
const SchemaVersion = "2.0.0"

// Scrolls are views of the one receipt log; each has its own Merkle root.
const (
	ScrollIdentity  = "identity"  // principals, credentials, profiles, auth failures
	ScrollCognitive = "cognitive" // decisions and Tem invocations
	ScrollTreasury  = "treasury"  // budgets, debits, credits, denials
	ScrollIncident  = "incident"  // incidents, containment, recovery
	ScrollPolicy    = "policy"    // policy reloads and policy responses
	ScrollDrill     = "drill"     // drills and their artifacts
	ScrollSystem    = "system"    // server lifecycle: start, dev mode, drill mode, key hand-over
)

// Scrolls lists every valid scroll name.
var Scrolls = []string{ScrollIdentity, ScrollCognitive, ScrollTreasury, ScrollIncident, ScrollPolicy, ScrollDrill, ScrollSystem}

// ValidScroll reports whether s names a scroll.
func ValidScroll(s string) bool {
	for _, v := range Scrolls {
		if v == s {
			return true
		}
	}
	return false
}

// Receipt types written by the foundation. Later capabilities add their own
// next to the rules that emit them.
const (
	ReceiptServerStart = "server_start" // a server started; records dev and drill mode
	ReceiptAuthFailure = "auth_failure" // a request was refused 401/403
	ReceiptCredential  = "credential_added"
	ReceiptRevocation  = "credential_revoked"
)

// Receipt is one entry of the append-only ledger. The first seven fields are
// the seed's; Seq and LeafHash place it in the Merkle log.
//
// RootHash is "blake3:" + hex(BLAKE3(JCS(Body))). LeafHash is the RFC 6962
// leaf hash (SHA-256 of 0x00 ‖ entry) where entry is the RFC 8785 canonical
// JSON of every other field including Seq (see package ledger).
type Receipt struct {
	Seq           uint64          `json:"seq"`
	SchemaVersion string          `json:"schema_version"`
	Type          string          `json:"type"`
	Timestamp     string          `json:"timestamp"`
	Scroll        string          `json:"scroll"`
	Tags          []string        `json:"tags"`
	RootHash      string          `json:"root_hash"`
	Body          json.RawMessage `json:"body"`
	LeafHash      string          `json:"leaf_hash"` // hex
}

// Draft is what a rule hands the store to append: everything but the fields
// the ledger computes (Seq, RootHash, LeafHash, SchemaVersion).
type Draft struct {
	Type   string
	Scroll string
	Tags   []string
	Time   time.Time
	// Body is any JSON-serialisable value; it is stored in canonical form.
	Body any
}

// ReceiptFilter selects receipts for listing. Zero fields do not filter.
type ReceiptFilter struct {
	Scroll string
	Type   string
	Tag    string
	// After returns only receipts with Seq > *After.
	After *uint64
	// Limit caps the page; the store applies DefaultPageSize when 0.
	Limit int
	// Descending lists newest first.
	Descending bool
}

// Page sizes for receipt listings.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Checkpoint is a signed statement of the log's size and root, in the C2SP
// tlog-checkpoint signed-note format. Note is the complete signed note text.
type Checkpoint struct {
	Size      uint64    `json:"size"`
	RootHash  []byte    `json:"-"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
}
