-- Real-name registry and attachments (postgres). Keep in step with the other engine's 0012.

-- The local real-name registry (SPEC §9): people the organisation department's CSV names. The
-- ID number is sealed (crypto column realname_registry.id_number) with a keyed blind index of
-- kind id_number, like members.id_number; one row per person (an import upserts by the index).
CREATE TABLE realname_registry (
    id TEXT PRIMARY KEY,
    id_number_idx TEXT NOT NULL UNIQUE,
    id_number TEXT NOT NULL,
    name TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    batch TEXT NOT NULL
);

-- Uploaded files (SPEC §4 photo; documents of applications). The bytes live in
-- <data dir>/attachments/<id>, never under a served folder; org_code is the organisation whose
-- subtree may see the file; owner_kind/owner_id link it to what it belongs to (a member's photo).
CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    org_code TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    owner_kind TEXT,
    owner_id TEXT
);
CREATE INDEX attachments_owner ON attachments (owner_kind, owner_id);

-- The member's photo: an attachment of kind photo.
ALTER TABLE members ADD COLUMN photo_id TEXT;
