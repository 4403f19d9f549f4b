-- Audit retention (SPEC §12): pruning removes the oldest records and leaves an anchor (the
-- sequence number and hash of the last pruned record), from which `audit::verify` resumes the
-- chain. Records are guarded against UPDATE, DELETE and TRUNCATE by triggers; the only
-- deletion allowed is pruning, which opens the gate row inside its own transaction (other
-- transactions never see it open) and deletes only records covered by an anchor.

CREATE TABLE audit_anchor (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    cutoff TEXT NOT NULL,
    pruned_count BIGINT NOT NULL
);

CREATE TABLE audit_prune_gate (
    id BIGINT PRIMARY KEY,
    upto BIGINT NOT NULL
);
INSERT INTO audit_prune_gate (id, upto) VALUES (1, 0);

CREATE INDEX audit_log_action ON audit_log (action, at);

CREATE FUNCTION audit_log_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND OLD.seq <= COALESCE((SELECT upto FROM audit_prune_gate WHERE id = 1), 0)
       AND OLD.seq <= COALESCE((SELECT MAX(seq) FROM audit_anchor), 0) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();

CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_anchor_no_change BEFORE UPDATE OR DELETE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
