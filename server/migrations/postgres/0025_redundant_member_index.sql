-- `members_branch (branch_id)` is a prefix of `members_branch_pinyin (branch_id, sort_pinyin,
-- id)` and `members_branch_strokes`: every lookup by branch (and, on PostgreSQL, the check of
-- `members.branch_id` when an organisation is deleted) can use those. One index fewer to keep
-- on every member write and to build in a bulk load.
DROP INDEX IF EXISTS members_branch;

-- Columns of opaque ASCII (blind indexes, the clear parts of the ID number) compare byte by
-- byte. Under a database's default collation (C.UTF-8, en_US.UTF-8) every comparison goes
-- through strcoll, which made each insert into their indexes, and each index build of a bulk
-- load, dearer for no difference in order. org_code and the sort keys are "C" already (0009,
-- 0010). Only columns no query compares with a column of another collation: an equality
-- between two implicit collations is refused (members.id_number_idx is compared with
-- member_history's, so it stays).
ALTER TABLE members ALTER COLUMN id_suffix_idx TYPE TEXT COLLATE "C";
ALTER TABLE members ALTER COLUMN id_region TYPE TEXT COLLATE "C";
ALTER TABLE members ALTER COLUMN id_birth TYPE TEXT COLLATE "C";
ALTER TABLE realname_registry ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE realname_registry ALTER COLUMN id_number_idx TYPE TEXT COLLATE "C";
