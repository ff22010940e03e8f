-- A credential's human attribute (issue 9): set by an admin, receipted in
-- credential_added (only when true) and credential_human_set. Existing
-- credentials are not human until an admin says so.
ALTER TABLE credentials ADD COLUMN human INTEGER NOT NULL DEFAULT 0 CHECK (human IN (0, 1));
