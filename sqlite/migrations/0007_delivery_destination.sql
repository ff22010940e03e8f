-- A webhook delivery's destination (warden.Destination of its URL: the URL
-- without credentials, query or fragment), so the sender reads due deliveries per receiver and a dead
-- receiver's backlog is never read to find another's (issue 11). Pending
-- rows written before this get theirs from a Go step in the same
-- transaction (backfillDestinations in migrate.go).
ALTER TABLE webhook_deliveries ADD COLUMN destination TEXT NOT NULL DEFAULT '';
CREATE INDEX webhook_deliveries_destination ON webhook_deliveries (status, destination, next_attempt_ns, id);
-- Every read of due deliveries now names a destination: the old index would
-- only cost each outcome's write.
DROP INDEX webhook_deliveries_due;
