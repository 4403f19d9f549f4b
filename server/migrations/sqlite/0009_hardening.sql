-- Hardening (sqlite). Keep in step with the other engine's 0009.

-- One row per throttle bucket and client address: a reservation first upserts it, which
-- holds its row lock (PostgreSQL) until the reservation commits, so concurrent attempts from
-- one address count the window one after another.
CREATE TABLE throttle_keys (
    bucket TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    touched_at TEXT NOT NULL,
    PRIMARY KEY (bucket, client_addr)
);

-- One audit record per bucket, client address and minute of throttled (429) refusals.
CREATE TABLE throttle_refusals (
    bucket TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    minute TEXT NOT NULL,
    PRIMARY KEY (bucket, client_addr, minute)
);

-- Three-role separation under concurrency: the role family an account's live grants belong
-- to, claimed with a conditional UPDATE (a row lock on PostgreSQL) before a grant is added,
-- reset when the last live grant is revoked.
ALTER TABLE accounts ADD COLUMN role_family TEXT;
UPDATE accounts SET role_family = (SELECT MIN(g.role) FROM grants g
    WHERE g.account_id = accounts.id AND g.revoked_at IS NULL);

-- One live grant per account and organisation, also under concurrent requests.
CREATE UNIQUE INDEX grants_live_account_org ON grants (account_id, org_id) WHERE revoked_at IS NULL;

-- Blind index of the sealed mobile number, so SMS requests find accounts without decrypting
-- every row (filled by the server at start for rows that lack it).
ALTER TABLE accounts ADD COLUMN mobile_idx TEXT;
CREATE INDEX accounts_mobile_idx ON accounts (mobile_idx);

