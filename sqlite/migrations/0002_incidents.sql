-- The incident recorder: incidents, recovery requirements, counters, the
-- integrity baseline and the webhook outbox. Records are stored whole as
-- JSON; the columns beside them exist only to index and filter. Only the
-- adapter writes records, so they are not re-validated (json_valid on every
-- insert costs the hot report path a full parse).

-- Named counters that never repeat (incident ids).
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL CHECK (value >= 0)
) STRICT;

-- number is the rowid (one B-tree fewer to write per report than a
-- separate key); id is unique beside it.
CREATE TABLE incidents (
	number              INTEGER PRIMARY KEY CHECK (number > 0),
	id                  TEXT NOT NULL UNIQUE,
	class               TEXT NOT NULL,
	severity_rank       INTEGER NOT NULL CHECK (severity_rank BETWEEN 1 AND 4),
	state               TEXT NOT NULL,
	created_ns          INTEGER NOT NULL,
	containment_pending INTEGER NOT NULL DEFAULT 0,
	record              TEXT NOT NULL
) STRICT;

-- Listing order: critical first, newest first; per state. A class filter
-- uses incidents_class_created and sorts.
CREATE INDEX incidents_order ON incidents (severity_rank DESC, number DESC);
CREATE INDEX incidents_state_order ON incidents (state, severity_rank DESC, number DESC);
-- Severity windows count a class's recent incidents.
CREATE INDEX incidents_class_created ON incidents (class, created_ns);
CREATE INDEX incidents_containment_pending ON incidents (number) WHERE containment_pending = 1;

-- Counters behind /health and /api/v1/stats, maintained with StatsDelta.
CREATE TABLE incident_stats (
	key TEXT PRIMARY KEY,
	n   INTEGER NOT NULL
) STRICT;

CREATE TABLE recovery_requirements (
	incident_id TEXT PRIMARY KEY REFERENCES incidents (id),
	complete    INTEGER NOT NULL,
	created_ns  INTEGER NOT NULL,
	record      TEXT NOT NULL
) STRICT;
CREATE INDEX recovery_pending ON recovery_requirements (complete, created_ns);

CREATE TABLE integrity_baseline (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	record TEXT NOT NULL CHECK (json_valid(record))
) STRICT;

CREATE TABLE webhook_deliveries (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	incident_id     TEXT NOT NULL,
	status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
	next_attempt_ns INTEGER NOT NULL,
	record          TEXT NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ns, id);
CREATE INDEX webhook_deliveries_incident ON webhook_deliveries (incident_id, id);
