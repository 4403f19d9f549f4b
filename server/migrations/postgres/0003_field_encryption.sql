-- Field encryption at rest (SPEC §13, postgres). Keep in step with ../sqlite/0003_field_encryption.sql.
-- members.id_number, members.phone, members.registered_phone, accounts.id_number,
-- accounts.mobile and accounts.totp_secret now hold sealed values ('v<key id>:<base64>',
-- AES-256-GCM, keys in the data directory's keys.json, never here). Uniqueness and exact
-- lookup move to keyed blind indexes (HMAC-SHA256, 32 hex characters); the unknown ID number
-- placeholder has no index (NULL), so it may repeat. The unique indexes keep their names, so
-- constraint violations map to the same fields (error.rs on_constraint).
-- Rows written before this migration hold plaintext: `dangjian-server rotate-keys` encrypts
-- them and fills in their indexes.

DROP INDEX members_id_number_key;
DROP INDEX members_registered_phone_key;
DROP INDEX accounts_id_number_key;

ALTER TABLE members ADD COLUMN id_number_idx TEXT;
ALTER TABLE members ADD COLUMN registered_phone_idx TEXT;
ALTER TABLE accounts ADD COLUMN id_number_idx TEXT;

CREATE UNIQUE INDEX members_id_number_key ON members (id_number_idx) WHERE id_number_idx IS NOT NULL;
CREATE UNIQUE INDEX members_registered_phone_key ON members (registered_phone_idx) WHERE registered_phone_idx IS NOT NULL;
CREATE UNIQUE INDEX accounts_id_number_key ON accounts (id_number_idx);
