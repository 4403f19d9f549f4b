-- Audit hardening (issue 11 §2, §4). Keep in step with ../postgres/0006_audit_guards_scope.sql.
--
-- 1. Every table the chain relies on is guarded, not only `audit_log`: the head only advances
--    with the chain, a record must extend the head, the prune gate opens only to the newest
--    anchor, and an anchor may be inserted only right after the `audit.prune` record that
--    announces it (same seq, hash and count), so a copied head is no anchor.
-- 2. The scope of a record: the unified code of the actor's scope organisation and of the
--    target's organisation, so that an auditor sees only its subtree. Older records have
--    neither (only the root's auditor sees them).

ALTER TABLE audit_log ADD COLUMN actor_org_code TEXT;
ALTER TABLE audit_log ADD COLUMN target_org_code TEXT;
CREATE INDEX audit_log_actor_org ON audit_log (actor_org_code);
CREATE INDEX audit_log_target_org ON audit_log (target_org_code);

CREATE TRIGGER audit_log_extends_head BEFORE INSERT ON audit_log
WHEN COALESCE(NEW.seq = (SELECT seq FROM audit_head WHERE id = 1)
          AND NEW.prev_hash = (SELECT hash FROM audit_head WHERE id = 1), 0) = 0
BEGIN
    SELECT RAISE(ABORT, 'audit_log: a record must extend the head of the chain');
END;

CREATE TRIGGER audit_head_advances BEFORE UPDATE ON audit_head
WHEN COALESCE(NEW.id = OLD.id AND (
        (NEW.seq = OLD.seq + 1 AND NEW.hash = OLD.hash)
     OR (NEW.seq = OLD.seq AND NEW.hash = OLD.hash)
     OR (NEW.seq = OLD.seq AND NEW.hash = (SELECT hash FROM audit_log WHERE seq = NEW.seq))), 0) = 0
BEGIN
    SELECT RAISE(ABORT, 'audit_head only advances with the chain');
END;

CREATE TRIGGER audit_head_no_insert BEFORE INSERT ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head has one row');
END;

CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head has one row');
END;

CREATE TRIGGER audit_prune_gate_guard BEFORE UPDATE ON audit_prune_gate
WHEN COALESCE(NEW.id = OLD.id
          AND (NEW.upto = 0 OR NEW.upto = (SELECT MAX(seq) FROM audit_anchor)), 0) = 0
BEGIN
    SELECT RAISE(ABORT, 'audit_prune_gate opens only to the newest anchor');
END;

CREATE TRIGGER audit_prune_gate_no_insert BEFORE INSERT ON audit_prune_gate
BEGIN
    SELECT RAISE(ABORT, 'audit_prune_gate has one row');
END;

CREATE TRIGGER audit_prune_gate_no_delete BEFORE DELETE ON audit_prune_gate
BEGIN
    SELECT RAISE(ABORT, 'audit_prune_gate has one row');
END;

CREATE TRIGGER audit_anchor_announced BEFORE INSERT ON audit_anchor
WHEN COALESCE(
        NEW.seq > COALESCE((SELECT MAX(seq) FROM audit_anchor), 0)
    AND NEW.seq < (SELECT seq FROM audit_head WHERE id = 1)
    AND NEW.hash = (SELECT hash FROM audit_log WHERE seq = NEW.seq)
    AND NEW.pruned_count = (SELECT COUNT(*) FROM audit_log WHERE seq <= NEW.seq)
    AND EXISTS (SELECT 1 FROM audit_log l JOIN audit_head h ON h.id = 1 AND l.seq = h.seq
                WHERE l.action = 'audit.prune' AND l.role = 'system'
                  AND l.detail = 'pruned ' || NEW.pruned_count || ' records up to seq ' || NEW.seq
                      || ' (written before ' || NEW.cutoff || '); anchor hash ' || NEW.hash), 0) = 0
BEGIN
    SELECT RAISE(ABORT, 'audit_anchor: an anchor must follow the audit.prune record that announces it');
END;
