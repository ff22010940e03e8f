package warden

import (
	"context"
	"time"
)

// The ports: what the rules need from the world, implemented by adapters
// (contain, integrity, datadir) and wired by cli. Each contract below is
// what every implementation MUST guarantee; the engine relies on nothing
// else.

// Actuator carries out containment actions after the incident that calls
// for them is committed. Package contain implements it with HTTP calls to
// the policy's targets. The rules decide which of its two methods runs: an
// engine in drill mode calls DryRun only, whatever actuator it was given.
type Actuator interface {
	// Execute runs one containment action for inc under policy p and
	// reports its outcome. It MUST honour ctx, bound its retries, never
	// panic, and report success only when the target confirmed (2xx).
	// CompletedAt is set with the actuator's clock.
	Execute(ctx context.Context, p *ContainmentPolicy, action string, inc *Incident) ContainmentResult
	// DryRun reports what Execute would do for action without doing it
	// (drill mode). It MUST NOT call any target or change anything outside
	// the process, and MUST never panic; the result has DryRun set and
	// CompletedAt stamped with the actuator's clock.
	DryRun(ctx context.Context, p *ContainmentPolicy, action string, inc *Incident) ContainmentResult
}

// WebhookOutbox is the webhook outbox as its sender sees it. The incident
// recorder implements it, so every delivery outcome is recorded through the
// rules: the sender reads and reports, and never writes state itself.
type WebhookOutbox interface {
	// DueDestinations returns up to limit destinations with a pending
	// delivery due at now, longest waiting first, at a cost that does not
	// grow with their backlogs (ReadTx.DueDestinations).
	//
	// DueDestinations and DueDeliveries MUST return none while an outcome
	// could not be recorded (storage full, writes refused): a send whose
	// outcome is lost would be sent again on every poll.
	DueDestinations(ctx context.Context, now time.Time, limit int) ([]string, error)
	// DueDeliveries returns up to limit pending deliveries to destination
	// whose NextAttemptAt is not after now, oldest first.
	DueDeliveries(ctx context.Context, now time.Time, destination string, limit int) ([]*Delivery, error)
	// RecordDelivery stores the outcome of one attempt (the delivery as the
	// attempt left it). A delivery that failed for good MUST be receipted
	// (webhook_delivery_failed) in the same transaction that marks it
	// failed, so neither is ever stored without the other. ENOTFOUND if the
	// delivery does not exist.
	RecordDelivery(ctx context.Context, d *Delivery) error
}

// Waker is told when new webhook deliveries were committed, so the sender
// does not wait for its next poll. Wake MUST NOT block.
type Waker interface {
	Wake()
}

// IntegrityChecker snapshots and checks the files the integrity monitor
// watches. Package integrity implements it; the rules only decide.
// Implementations MUST read only beneath the directories they are
// configured to watch (never following a path or link out of them), MUST
// hash only regular files' contents (a symlink by its target text), and
// MUST return within a time bound even if a read blocks.
type IntegrityChecker interface {
	// Snapshot hashes paths into a baseline. Its errors are *Error values
	// (EINVALID naming the path or rule), shown to the caller as they are.
	Snapshot(ctx context.Context, paths []string) (*IntegrityBaseline, error)
	// Check re-hashes a baseline. clean is true when nothing changed;
	// otherwise evidence names the changed, added and removed files, and
	// fingerprint identifies this exact set of findings. An unreadable
	// file, a path outside the watched directories and running out of
	// time MUST be errors, never clean.
	Check(ctx context.Context, b *IntegrityBaseline) (clean bool, evidence map[string]string, fingerprint string, err error)
}

// Mirror receives exported checkpoints (guardian anchoring). datadir.Mirror
// implements it with a directory.
type Mirror interface {
	// Put durably stores data under name; it MUST NOT overwrite an
	// existing name.
	Put(name string, data []byte) error
}

// KeyStore keeps the ledger signing keys across a rotation (datadir.Dir).
type KeyStore interface {
	// StageKey durably writes the next key beside the current one; the
	// current key MUST stay in force until CommitKey.
	StageKey(signer, verifier string) error
	// CommitKey makes the staged key current, durably.
	CommitKey() error
	// AbandonKey discards a staged key.
	AbandonKey()
}
