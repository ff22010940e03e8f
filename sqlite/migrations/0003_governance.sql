-- Governance: the escalation ladder, treasury budgets and operations,
-- approvals and approver keys. Records are stored whole as JSON; the
-- columns beside them exist only to index, filter and enforce uniqueness.

CREATE TABLE escalations (
	escalation_id   TEXT PRIMARY KEY,
	subject         TEXT NOT NULL,
	depth           INTEGER NOT NULL CHECK (depth BETWEEN 1 AND 5), -- ToProfile rank
	active          INTEGER NOT NULL CHECK (active IN (0, 1)),
	auto_deescalate INTEGER NOT NULL CHECK (auto_deescalate IN (0, 1)),
	expires_ns      INTEGER, -- NULL: no TTL
	record          TEXT NOT NULL CHECK (json_valid(record))
) STRICT;

-- Both indexes are partial: de-escalated history grows without bound and
-- neither a subject's stack nor the sweeper may have to walk it.
-- A subject's active stack, lowest hop first; also answers "is there an
-- active hop above this one?".
CREATE INDEX escalations_active ON escalations (subject, depth, escalation_id) WHERE active = 1;
-- The sweeper: what may expire, soonest first.
CREATE INDEX escalations_due ON escalations (expires_ns, escalation_id)
	WHERE active = 1 AND auto_deescalate = 1 AND expires_ns IS NOT NULL;

CREATE TABLE budgets (
	budget_id TEXT PRIMARY KEY CHECK (budget_id <> ''),
	record    TEXT NOT NULL CHECK (json_valid(record))
) STRICT;

-- Operations with an idempotency key: the key is unique per budget.
CREATE TABLE treasury_ops (
	budget_id       TEXT NOT NULL,
	idempotency_key TEXT NOT NULL CHECK (idempotency_key <> ''),
	record          TEXT NOT NULL CHECK (json_valid(record)),
	PRIMARY KEY (budget_id, idempotency_key)
) STRICT;

-- Operations without one: never deduplicated, never looked up by key, kept
-- for the record.
CREATE TABLE treasury_ops_unkeyed (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	budget_id TEXT NOT NULL,
	record    TEXT NOT NULL CHECK (json_valid(record))
) STRICT;
CREATE INDEX treasury_ops_unkeyed_budget ON treasury_ops_unkeyed (budget_id, id);

CREATE TABLE approvals (
	request_digest TEXT NOT NULL,
	approver       TEXT NOT NULL,
	record         TEXT NOT NULL CHECK (json_valid(record)),
	PRIMARY KEY (request_digest, approver)
) STRICT;

CREATE TABLE approver_keys (
	approver TEXT PRIMARY KEY,
	record   TEXT NOT NULL CHECK (json_valid(record))
) STRICT;
