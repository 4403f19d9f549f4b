-- Members' own accounts 党员个人账号 (postgres). Keep in step with the other engine's 0022.

-- One live account per member (and per person: the ID number's blind index); a member who
-- leaves the living database has the account disabled in the same transaction.
CREATE TABLE member_accounts (
    id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    id_number_idx TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);
CREATE UNIQUE INDEX member_accounts_live_member ON member_accounts (member_id) WHERE status = 'active';
CREATE UNIQUE INDEX member_accounts_live_person ON member_accounts (id_number_idx) WHERE status = 'active';

-- Six-digit SMS codes of registration (bound to the mobile's blind index) and of sign-in
-- (bound to the member account); valid five minutes, single use, five wrong answers.
CREATE TABLE member_codes (
    id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    subject TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX member_codes_subject ON member_codes (purpose, subject, created_at);

-- Sessions of member accounts: they reach only /api/v1/me… and the member's own pages.
CREATE TABLE member_sessions (
    token_hash TEXT PRIMARY KEY,
    member_account_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    client_addr TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX member_sessions_member ON member_sessions (member_id);

-- Reminders 注册提醒 to unregistered members: at most one a week per member, claimed by a
-- conditional upsert (concurrent sends of a branch send each member one message).
CREATE TABLE registration_reminders (
    member_id TEXT PRIMARY KEY,
    sent_at TEXT NOT NULL,
    sent_by TEXT NOT NULL
);
