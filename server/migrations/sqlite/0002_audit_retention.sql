-- Audit retention (SPEC §12): pruning removes the oldest records and leaves an anchor (the
-- sequence number and hash of the last pruned record), from which `audit::verify` resumes the
-- chain. Records are guarded against UPDATE and DELETE by triggers; the only deletion allowed
-- is pruning, which opens the gate row inside its own transaction and deletes only records
-- covered by an anchor.

CREATE TABLE audit_anchor (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    cutoff TEXT NOT NULL,
    pruned_count INTEGER NOT NULL
);

CREATE TABLE audit_prune_gate (
    id INTEGER PRIMARY KEY,
    upto INTEGER NOT NULL
);
INSERT INTO audit_prune_gate (id, upto) VALUES (1, 0);

CREATE INDEX audit_log_action ON audit_log (action, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: records cannot be changed');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > COALESCE((SELECT upto FROM audit_prune_gate WHERE id = 1), 0)
  OR OLD.seq > COALESCE((SELECT MAX(seq) FROM audit_anchor), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: only pruning below an anchor may delete');
END;

CREATE TRIGGER audit_anchor_no_update BEFORE UPDATE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'audit_anchor is append-only');
END;

CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'audit_anchor is append-only');
END;
