-- Card certificates and enrolment (postgres). Keep in step with the other engine's 0005.
-- Times are RFC 3339 UTC text; serials and fingerprints lower-case hex.

-- The register of client certificates issued by the platform CA (SPEC §11). A card
-- certificate maps to its account by issuer + serial (the fingerprint is checked too), never
-- by its subject text.
CREATE TABLE certificates (
    id TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    subject TEXT NOT NULL,
    account_id TEXT REFERENCES accounts(id),
    grant_id TEXT REFERENCES grants(id),
    issued_by TEXT,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    reason TEXT
);
CREATE UNIQUE INDEX certificates_issuer_serial ON certificates (issuer, serial);
CREATE UNIQUE INDEX certificates_fingerprint ON certificates (fingerprint);
CREATE INDEX certificates_account ON certificates (account_id);
CREATE INDEX certificates_expires ON certificates (expires_at);

-- Card sessions are bound to their certificate; a revocation ends them.
CREATE INDEX sessions_cert ON sessions (cert_fingerprint);

-- One-time enrolment codes 证书申领码 issued by a security officer for a grant; stored as
-- SHA-256 hashes only.
CREATE TABLE enrolment_codes (
    id TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants(id),
    account_id TEXT NOT NULL REFERENCES accounts(id),
    code_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    revoked_at TEXT
);
CREATE UNIQUE INDEX enrolment_codes_hash ON enrolment_codes (code_hash);
CREATE INDEX enrolment_codes_grant ON enrolment_codes (grant_id);
