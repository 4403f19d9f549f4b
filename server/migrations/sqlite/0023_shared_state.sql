-- State every server of a province shares (sqlite). Keep in step with the other engine's 0023.

-- Background jobs (a batch quality check, an import's validation): any server answers for a
-- job. The server running it writes its progress every few seconds (`heartbeat_at`) and holds
-- a session advisory lock named by `server_key` (classid 0x646a, objid server_key) for its
-- life, so a job whose server died is reported interrupted at once.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    account_id TEXT NOT NULL,
    label TEXT NOT NULL,
    state TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    message TEXT,
    server_key INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX jobs_owner ON jobs (account_id, kind, started_at);

-- Failed sign-ins of ID numbers that have no account, counted as an account's are (by the
-- blind index), so that the message does not tell the two apart on any server.
CREATE TABLE unknown_sign_in_failures (
    id_index TEXT PRIMARY KEY,
    n INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX unknown_sign_in_failures_updated ON unknown_sign_in_failures (updated_at);

-- When the session last wrote (`serve --database-read`): its reads stay on the primary for a
-- few seconds after, so its own saves are always seen.
ALTER TABLE sessions ADD COLUMN wrote_at TEXT;
