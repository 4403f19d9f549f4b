-- Transfer records 查看转接情况 and monitoring (postgres). Keep in step with the other engine's
-- 0016.

-- Subtree ranges compare unified codes bytewise, whatever the database's collation (as 0009
-- did for orgs, members and units).
ALTER TABLE transfers ALTER COLUMN from_org_code TYPE TEXT COLLATE "C";
ALTER TABLE transfers ALTER COLUMN to_org_code TYPE TEXT COLLATE "C";
ALTER TABLE transfers ALTER COLUMN current_org_code TYPE TEXT COLLATE "C";
ALTER TABLE transfers ALTER COLUMN created_org_code TYPE TEXT COLLATE "C";
ALTER TABLE transfer_nodes ALTER COLUMN org_code TYPE TEXT COLLATE "C";

-- Monitoring reads the open transfers by how long they have waited; the search by date.
CREATE INDEX transfers_waiting ON transfers (state, step_since);
CREATE INDEX transfers_date ON transfers (transfer_date);
