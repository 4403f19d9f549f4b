-- Comprehensive query 综合查询 (issue 16, postgres). Keep in step with the other engine's 0017.

-- Clear columns derived from the ID number for 左匹配 on it without opening sealed values:
-- the region code (characters 1-6) and the birth date as written in the number (characters
-- 7-14, which may differ from birth_date on a record kept with a contradiction). Neither is
-- personal on its own; both are written with every ID number (member::sort_keys::Derived) and
-- filled in at start for older rows.
ALTER TABLE members ADD COLUMN id_region TEXT;
ALTER TABLE members ADD COLUMN id_birth TEXT;
CREATE INDEX members_id_region ON members (id_region, id_birth);

-- Saved named queries 固定查询: per account and kind (members | orgs | units), the conditions
-- and order as JSON.
CREATE TABLE saved_queries (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX saved_queries_name_key ON saved_queries (account_id, kind, name);
