-- Grants, activation and throttling (sqlite). Keep in step with the other engine's 0004.
-- Codes are stored as SHA-256 hashes only; times are RFC 3339 UTC text.

-- Activation codes 授权码: issued with a grant or by a security officer's reset; single use.
CREATE TABLE activation_codes (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    grant_id TEXT REFERENCES grants(id),
    purpose TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX activation_codes_account ON activation_codes (account_id, created_at);

-- Six-digit SMS verification codes (activation, password reset); single use, few attempts.
CREATE TABLE sms_codes (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    purpose TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX sms_codes_account ON sms_codes (account_id, purpose, created_at);

-- Failed attempts per client address (sign-in, activation): the servers are stateless, so
-- the counters live here.
CREATE TABLE auth_failures (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX auth_failures_addr ON auth_failures (bucket, client_addr, at);

CREATE INDEX grants_revoked ON grants (account_id, revoked_at);
