-- Member summary-sheet imports 导入党员信息汇总表 (sqlite). Keep in step with the other engine's
-- 0020. An import is validated into a report and good rows kept sealed (`crypto`, column
-- member_import_chunks.data) until the operator confirms; nothing reaches `members` before.
CREATE TABLE member_imports (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    org_code TEXT NOT NULL,
    account_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    -- validating | pending | failed | confirmed | cancelled
    state TEXT NOT NULL,
    total_rows INTEGER NOT NULL DEFAULT 0,
    done_rows INTEGER NOT NULL DEFAULT 0,
    good_rows INTEGER NOT NULL DEFAULT 0,
    bad_rows INTEGER NOT NULL DEFAULT 0,
    -- sealed JSON: the problems of the bad rows (row, field, reason)
    report TEXT,
    message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    confirmed_at TEXT
);
CREATE INDEX member_imports_org ON member_imports (org_code, created_at);

CREATE TABLE member_import_chunks (
    id TEXT PRIMARY KEY,
    import_id TEXT NOT NULL REFERENCES member_imports(id),
    seq INTEGER NOT NULL,
    -- sealed JSON: the good rows of this chunk
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX member_import_chunks_seq ON member_import_chunks (import_id, seq);
