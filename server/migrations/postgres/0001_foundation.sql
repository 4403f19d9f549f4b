-- Foundation schema (PostgreSQL). Keep in step with ../sqlite/0001_foundation.sql.
-- Dates are TEXT 'YYYY-MM-DD', times TEXT RFC 3339 UTC, flags BIGINT 0/1.

CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    parent_id TEXT REFERENCES orgs(id),
    name TEXT NOT NULL,
    short_name TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL,
    level TEXT,
    secretary TEXT NOT NULL DEFAULT '',
    contact_name TEXT NOT NULL,
    contact_phone TEXT NOT NULL,
    subordination TEXT NOT NULL DEFAULT '',
    founded_on TEXT,
    unit_mode TEXT,
    work_category TEXT,
    may_approve_development BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active',
    revoked_document_no TEXT,
    revoked_reason TEXT,
    revoked_at TEXT,
    next_child_seq BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX orgs_sibling_name ON orgs (parent_id, name);
CREATE INDEX orgs_parent ON orgs (parent_id, code);

CREATE TABLE units (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    credit_code TEXT NOT NULL,
    category TEXT NOT NULL,
    subcategory TEXT NOT NULL DEFAULT '',
    has_party_group BIGINT NOT NULL DEFAULT 0,
    party_org_situation BIGINT NOT NULL,
    managing_org_id TEXT REFERENCES orgs(id),
    owner_org_id TEXT NOT NULL REFERENCES orgs(id),
    owner_code TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX units_name_key ON units (name);
CREATE UNIQUE INDEX units_credit_code_key ON units (credit_code);
CREATE INDEX units_owner ON units (owner_code);

CREATE TABLE org_units (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    unit_id TEXT NOT NULL REFERENCES units(id),
    is_default BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, unit_id)
);
CREATE UNIQUE INDEX org_units_unit ON org_units (unit_id);

CREATE TABLE members (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    id_number TEXT NOT NULL,
    sex TEXT NOT NULL,
    ethnicity TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    education TEXT NOT NULL,
    category TEXT NOT NULL,
    branch_id TEXT NOT NULL REFERENCES orgs(id),
    org_code TEXT NOT NULL,
    joined_on TEXT NOT NULL,
    full_on TEXT,
    job TEXT NOT NULL,
    phone TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'normal',
    lost_contact BIGINT NOT NULL DEFAULT 0,
    lost_contact_on TEXT,
    floating BIGINT NOT NULL DEFAULT 0,
    floating_to TEXT,
    registered_phone TEXT,
    origin TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    new_social_stratum TEXT NOT NULL DEFAULT '',
    in_transfer BIGINT NOT NULL DEFAULT 0,
    completeness BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX members_id_number_key ON members (id_number) WHERE id_number <> '000000000000000000';
CREATE UNIQUE INDEX members_registered_phone_key ON members (registered_phone) WHERE registered_phone IS NOT NULL;
CREATE INDEX members_org_code ON members (org_code, name);
CREATE INDEX members_branch ON members (branch_id);
CREATE INDEX members_name ON members (name);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    id_number TEXT NOT NULL,
    mobile TEXT NOT NULL,
    password_hash TEXT,
    totp_secret TEXT,
    totp_confirmed BIGINT NOT NULL DEFAULT 0,
    last_totp_step BIGINT NOT NULL DEFAULT 0,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until TEXT,
    must_change_password BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX accounts_id_number_key ON accounts (id_number);

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    role TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    tier BIGINT,
    is_default BIGINT NOT NULL DEFAULT 0,
    created_by TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX grants_account ON grants (account_id);
CREATE INDEX grants_org ON grants (org_id);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    grant_id TEXT NOT NULL REFERENCES grants(id),
    csrf_token TEXT NOT NULL,
    client_addr TEXT NOT NULL DEFAULT '',
    cert_fingerprint TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor_account_id TEXT,
    actor_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT '',
    org_id TEXT,
    client_addr TEXT NOT NULL DEFAULT '',
    cert_serial TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor_account_id, at);
