-- Chinese ordering and the ID-suffix search (sqlite). Keep in step with the other engine's 0010.

-- Sort keys of the member's name (ICU4X collator sort keys, hex): 姓氏拼音 (CLDR `zh`) and
-- 姓氏笔画 (CLDR `zh-u-co-stroke`). Written with every name; rows from before this migration, and
-- rows whose keys an older collator made, get them from the server at start.
ALTER TABLE members ADD COLUMN sort_pinyin TEXT;
ALTER TABLE members ADD COLUMN sort_strokes TEXT;

-- Keyed blind index of the last four characters of the ID number (the digits the list shows),
-- so the search finds a member by them without opening any sealed value. NULL for the unknown
-- ID number placeholder.
ALTER TABLE members ADD COLUMN id_suffix_idx TEXT;

CREATE INDEX members_sort_pinyin ON members (sort_pinyin, id);
CREATE INDEX members_sort_strokes ON members (sort_strokes, id);
CREATE INDEX members_branch_pinyin ON members (branch_id, sort_pinyin, id);
CREATE INDEX members_branch_strokes ON members (branch_id, sort_strokes, id);
CREATE INDEX members_id_suffix_idx ON members (id_suffix_idx);

-- Accounts (security pages: certificates by holder) order by the 姓氏拼音 key of their name.
ALTER TABLE accounts ADD COLUMN sort_pinyin TEXT;
CREATE INDEX accounts_sort_pinyin ON accounts (sort_pinyin, id);

-- Which collator made the stored keys (`collate::version`); a new one makes the server
-- recompute them.
CREATE TABLE sort_key_versions (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL
);
