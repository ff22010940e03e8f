-- Idempotency keys of incident reports (Idempotency-Key): a client that got
-- an error retries with the same key and gets the incident its first attempt
-- created. A projection of the incident_reported receipts, whose detail
-- carries the key; kept for warden.ReportKeyTTL, then forgotten a few at a
-- time by the reports that add keys.
CREATE TABLE report_keys (
	principal    TEXT NOT NULL,
	key          TEXT NOT NULL CHECK (key <> ''),
	request_hash TEXT NOT NULL,
	incident_id  TEXT NOT NULL REFERENCES incidents (id),
	created_ns   INTEGER NOT NULL,
	PRIMARY KEY (principal, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX report_keys_created ON report_keys (created_ns);
