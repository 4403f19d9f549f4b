-- Data quality control 信息质量管控 (sqlite). Keep in step with the other engine's 0018.

-- 特殊时期特殊生日: join dates in [from_date, to_date] below min_age are flagged. The shipped
-- row (joins after 1945-06-11 below 18) is a default to be confirmed by the organisation
-- department; tier-1 admins edit the table.
CREATE TABLE quality_age_periods (
    id TEXT PRIMARY KEY,
    from_date TEXT NOT NULL,
    to_date TEXT NOT NULL,
    min_age INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    is_default INTEGER NOT NULL DEFAULT 0,
    updated_by TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);
INSERT INTO quality_age_periods (id, from_date, to_date, min_age, note, is_default, updated_at)
VALUES ('default-1945', '1945-06-12', '9999-12-31', 18, '1945年6月11日以后入党不满18岁', 1,
        '2026-01-01T00:00:00Z');

-- A batch check 批量信息校验 of a subtree: who started it, which rules, its state and, once
-- finished, its summary (JSON).
CREATE TABLE quality_checks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL DEFAULT '',
    org_id TEXT NOT NULL REFERENCES orgs(id),
    org_code TEXT NOT NULL,
    org_name TEXT NOT NULL,
    rules TEXT NOT NULL,
    account_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    state TEXT NOT NULL,
    members_checked INTEGER NOT NULL DEFAULT 0,
    findings INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX quality_checks_org ON quality_checks (org_code, started_at);

-- One row per member and rule that fired; org_code is the member's branch at check time.
CREATE TABLE quality_findings (
    check_id TEXT NOT NULL REFERENCES quality_checks(id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    org_code TEXT NOT NULL,
    rule TEXT NOT NULL,
    level TEXT NOT NULL,
    explanation TEXT NOT NULL
);
CREATE INDEX quality_findings_org ON quality_findings (check_id, org_code, member_id);
CREATE INDEX quality_findings_member ON quality_findings (check_id, member_id);

-- The duplicate-ID rule groups the living members by the blind index through the unique
-- partial index members_id_number_key (0003): no index of its own.
