-- Transfer records 查看转接情况 and monitoring (sqlite). Keep in step with the other engine's
-- 0016. (SQLite compares text bytewise already: the postgres set also makes the code columns
-- COLLATE "C".)

-- Monitoring reads the open transfers by how long they have waited; the search by date.
CREATE INDEX transfers_waiting ON transfers (state, step_since);
CREATE INDEX transfers_date ON transfers (transfer_date);
