-- The receipt log, its Merkle tree, checkpoints, credentials and settings.
--
-- receipts, merkle_nodes and checkpoints are append-only: triggers reject
-- UPDATE and DELETE. (INSERT OR REPLACE deletes without firing DELETE
-- triggers; a BEFORE INSERT guard against it costs a third of an append, and
-- whoever can run SQL on the file can drop triggers anyway. The verifier,
-- not the database, is what catches a rewritten log.)
-- ledger_head and scroll_heads are derived state the writer keeps to append
-- without rereading the log; the verifier never trusts them.

CREATE TABLE receipts (
	seq            INTEGER PRIMARY KEY CHECK (seq >= 0),
	schema_version TEXT NOT NULL,
	type           TEXT NOT NULL,
	timestamp      TEXT NOT NULL,
	scroll         TEXT NOT NULL,
	tags           TEXT NOT NULL DEFAULT '[]',
	root_hash      TEXT NOT NULL,
	body           TEXT NOT NULL,
	leaf_hash      BLOB NOT NULL CHECK (length(leaf_hash) = 32)
) STRICT;

CREATE INDEX receipts_scroll_seq ON receipts (scroll, seq);
CREATE INDEX receipts_type_seq ON receipts (type, seq);

CREATE TRIGGER receipts_append_only_update BEFORE UPDATE ON receipts
BEGIN
	SELECT RAISE(ABORT, 'receipts are append-only');
END;
CREATE TRIGGER receipts_append_only_delete BEFORE DELETE ON receipts
BEGIN
	SELECT RAISE(ABORT, 'receipts are append-only');
END;

-- Interior nodes (level >= 2) of the global RFC 6962 tree, written as they
-- complete. Leaves are receipts.leaf_hash; level-1 nodes are not stored
-- (half the node inserts on the append path): a read hashes their two
-- leaves.
CREATE TABLE merkle_nodes (
	level INTEGER NOT NULL CHECK (level >= 1),
	idx   INTEGER NOT NULL CHECK (idx >= 0),
	hash  BLOB NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (level, idx)
) WITHOUT ROWID, STRICT;

CREATE TRIGGER merkle_nodes_append_only_update BEFORE UPDATE ON merkle_nodes
BEGIN
	SELECT RAISE(ABORT, 'merkle_nodes are append-only');
END;
CREATE TRIGGER merkle_nodes_append_only_delete BEFORE DELETE ON merkle_nodes
BEGIN
	SELECT RAISE(ABORT, 'merkle_nodes are append-only');
END;

-- The global tree's compact range: size and concatenated right-edge hashes.
CREATE TABLE ledger_head (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	size  INTEGER NOT NULL CHECK (size >= 0),
	state BLOB NOT NULL
) STRICT;
INSERT INTO ledger_head (id, size, state) VALUES (1, 0, x'');

-- One compact range per scroll over its receipts' leaf hashes in seq order.
CREATE TABLE scroll_heads (
	scroll TEXT PRIMARY KEY,
	size   INTEGER NOT NULL CHECK (size >= 0),
	state  BLOB NOT NULL
) STRICT;

CREATE TABLE checkpoints (
	size       INTEGER PRIMARY KEY CHECK (size >= 0),
	root       BLOB NOT NULL CHECK (length(root) = 32),
	note       TEXT NOT NULL,
	created_at TEXT NOT NULL
) STRICT;

CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
BEGIN
	SELECT RAISE(ABORT, 'checkpoints are append-only');
END;
CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
BEGIN
	SELECT RAISE(ABORT, 'checkpoints are append-only');
END;

CREATE TABLE credentials (
	name       TEXT PRIMARY KEY,
	token_hash TEXT NOT NULL UNIQUE,
	roles      TEXT NOT NULL CHECK (json_valid(roles)),
	source     TEXT NOT NULL DEFAULT '',
	classes    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(classes)),
	created_at TEXT NOT NULL,
	revoked_at TEXT
) STRICT;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
