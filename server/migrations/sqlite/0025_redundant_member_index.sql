-- `members_branch (branch_id)` is a prefix of `members_branch_pinyin (branch_id, sort_pinyin,
-- id)` and `members_branch_strokes`: every lookup by branch (and, on PostgreSQL, the check of
-- `members.branch_id` when an organisation is deleted) can use those. One index fewer to keep
-- on every member write and to build in a bulk load.
DROP INDEX IF EXISTS members_branch;
