-- Transfer letters 介绍信 (SPEC §6) (sqlite). Keep in step with the other engine's 0015.

-- The letter number's sequence: one row per month (YYYYMM), created by INSERT … ON CONFLICT DO
-- NOTHING and incremented in SQL (UPDATE … SET n = n + 1 … RETURNING n).
CREATE TABLE letter_sequences (
    month TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);

-- One row per letter issued. transfer_id names the transfer (no foreign key: transfers live in
-- their own migration). number: YYYYMM + 12 digits. state: issued (the live letter), superseded
-- (re-issued), withdrawn, received. fields: the letter's fields as JSON, sealed (crypto column
-- letters.fields). signature: base64 DER ECDSA P-256 SHA-256 over the canonical text
-- (dangjian_certs::letter); signer_certificate: the PEM certificate that signed it; verify_url:
-- the public verification address the QR code carries (with the digest d of the signed text).
CREATE TABLE letters (
    id TEXT PRIMARY KEY,
    transfer_id TEXT NOT NULL,
    number TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    issue_date TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    validity_days INTEGER NOT NULL,
    fields TEXT NOT NULL,
    signature TEXT NOT NULL,
    signer_certificate TEXT NOT NULL,
    verify_url TEXT NOT NULL,
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE INDEX letters_transfer ON letters (transfer_id, number);
-- At most one live letter per transfer.
CREATE UNIQUE INDEX letters_live ON letters (transfer_id) WHERE state = 'issued';
