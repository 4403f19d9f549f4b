-- Audit hardening (issue 11 §2, §4). Keep in step with ../sqlite/0006_audit_guards_scope.sql.
--
-- 1. Every table the chain relies on is guarded, not only `audit_log`: the head only advances
--    with the chain, a record must extend the head, the prune gate opens only to the newest
--    anchor, and an anchor may be inserted only right after the `audit.prune` record that
--    announces it (same seq, hash and count), so a copied head is no anchor.
-- 2. The scope of a record: the unified code of the actor's scope organisation and of the
--    target's organisation, so that an auditor sees only its subtree. Older records have
--    neither (only the root's auditor sees them). Byte order ("C"): subtrees are code ranges.

ALTER TABLE audit_log ADD COLUMN actor_org_code TEXT COLLATE "C";
ALTER TABLE audit_log ADD COLUMN target_org_code TEXT COLLATE "C";
CREATE INDEX audit_log_actor_org ON audit_log (actor_org_code);
CREATE INDEX audit_log_target_org ON audit_log (target_org_code);

CREATE FUNCTION audit_log_extends_head() RETURNS trigger AS $$
BEGIN
    IF (NEW.seq = (SELECT seq FROM audit_head WHERE id = 1)
        AND NEW.prev_hash = (SELECT hash FROM audit_head WHERE id = 1)) IS TRUE THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log: a record must extend the head of the chain';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_extends_head BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_extends_head();

CREATE FUNCTION audit_head_advances() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.id = OLD.id AND (
                (NEW.seq = OLD.seq + 1 AND NEW.hash = OLD.hash)
             OR (NEW.seq = OLD.seq AND NEW.hash = OLD.hash)
             OR (NEW.seq = OLD.seq
                 AND NEW.hash = (SELECT hash FROM audit_log WHERE seq = NEW.seq)))) IS TRUE THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_head only advances with the chain: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_head_advances BEFORE INSERT OR UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_advances();

CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE FUNCTION audit_prune_gate_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.id = OLD.id
            AND (NEW.upto = 0 OR NEW.upto = (SELECT MAX(seq) FROM audit_anchor))) IS TRUE THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_prune_gate opens only to the newest anchor: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_prune_gate_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_prune_gate
    FOR EACH ROW EXECUTE FUNCTION audit_prune_gate_guard();

CREATE TRIGGER audit_prune_gate_no_truncate BEFORE TRUNCATE ON audit_prune_gate
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE FUNCTION audit_anchor_announced() RETURNS trigger AS $$
BEGIN
    IF (NEW.seq > COALESCE((SELECT MAX(seq) FROM audit_anchor), 0)
        AND NEW.seq < (SELECT seq FROM audit_head WHERE id = 1)
        AND NEW.hash = (SELECT hash FROM audit_log WHERE seq = NEW.seq)
        AND NEW.pruned_count = (SELECT COUNT(*) FROM audit_log WHERE seq <= NEW.seq)
        AND EXISTS (SELECT 1 FROM audit_log l JOIN audit_head h ON h.id = 1 AND l.seq = h.seq
                    WHERE l.action = 'audit.prune' AND l.role = 'system'
                      AND l.detail = 'pruned ' || NEW.pruned_count || ' records up to seq '
                          || NEW.seq || ' (written before ' || NEW.cutoff || '); anchor hash '
                          || NEW.hash)) IS TRUE THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_anchor: an anchor must follow the audit.prune record that announces it';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_anchor_announced BEFORE INSERT ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_anchor_announced();
