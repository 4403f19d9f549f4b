-- 党员统计 (SPEC §7): counts of living members ('normal') per branch code and dimension,
-- kept by triggers in the same transaction as every change to `members`, so statistics are
-- current on every request without scanning members. Births are counted per year ('YYYY'),
-- joins per join-date band (fixed periods, the keys of `stats::rules::JOIN_BANDS`); the
-- statistics derive age bands from the years, reading the part of each boundary year up to the
-- boundary day from `members_birth_normal`.
CREATE TABLE member_tally (
    org_code TEXT NOT NULL,
    dim TEXT NOT NULL,
    val TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (org_code, dim, val)
) WITHOUT ROWID;

CREATE INDEX members_birth_normal ON members (birth_date, org_code) WHERE status = 'normal';

INSERT INTO member_tally (org_code, dim, val, n)
SELECT org_code, dim, val, count(*) FROM (
    SELECT org_code, 'category' AS dim, category AS val FROM members WHERE status = 'normal'
    UNION ALL SELECT org_code, 'sex', sex FROM members WHERE status = 'normal'
    UNION ALL SELECT org_code, 'ethnicity', ethnicity FROM members WHERE status = 'normal'
    UNION ALL SELECT org_code, 'education', education FROM members WHERE status = 'normal'
    UNION ALL SELECT org_code, 'job', job FROM members WHERE status = 'normal'
    UNION ALL SELECT org_code, 'birth', substr(birth_date, 1, 4) FROM members WHERE status = 'normal'
    UNION ALL SELECT org_code, 'joined', CASE WHEN joined_on >= '2012-11' THEN '2012.11-' WHEN joined_on >= '2002-11' THEN '2002.11-2012.10' WHEN joined_on >= '1979-01' THEN '1979.1-2002.10' WHEN joined_on >= '1976-11' THEN '1976.11-1978.12' WHEN joined_on >= '1966-05' THEN '1966.5-1976.10' WHEN joined_on >= '1949-10' THEN '1949.10-1966.4' WHEN joined_on >= '0' THEN '-1949.9' ELSE 'unknown' END FROM members WHERE status = 'normal'
) GROUP BY org_code, dim, val;

CREATE TRIGGER member_tally_insert AFTER INSERT ON members WHEN NEW.status = 'normal'
BEGIN
    INSERT INTO member_tally (org_code, dim, val, n) VALUES
        (NEW.org_code, 'category', NEW.category, 1),
        (NEW.org_code, 'sex', NEW.sex, 1),
        (NEW.org_code, 'ethnicity', NEW.ethnicity, 1),
        (NEW.org_code, 'education', NEW.education, 1),
        (NEW.org_code, 'job', NEW.job, 1),
        (NEW.org_code, 'birth', substr(NEW.birth_date, 1, 4), 1),
        (NEW.org_code, 'joined', CASE WHEN NEW.joined_on >= '2012-11' THEN '2012.11-' WHEN NEW.joined_on >= '2002-11' THEN '2002.11-2012.10' WHEN NEW.joined_on >= '1979-01' THEN '1979.1-2002.10' WHEN NEW.joined_on >= '1976-11' THEN '1976.11-1978.12' WHEN NEW.joined_on >= '1966-05' THEN '1966.5-1976.10' WHEN NEW.joined_on >= '1949-10' THEN '1949.10-1966.4' WHEN NEW.joined_on >= '0' THEN '-1949.9' ELSE 'unknown' END, 1)
    ON CONFLICT (org_code, dim, val) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER member_tally_delete AFTER DELETE ON members WHEN OLD.status = 'normal'
BEGIN
    INSERT INTO member_tally (org_code, dim, val, n) VALUES
        (OLD.org_code, 'category', OLD.category, -1),
        (OLD.org_code, 'sex', OLD.sex, -1),
        (OLD.org_code, 'ethnicity', OLD.ethnicity, -1),
        (OLD.org_code, 'education', OLD.education, -1),
        (OLD.org_code, 'job', OLD.job, -1),
        (OLD.org_code, 'birth', substr(OLD.birth_date, 1, 4), -1),
        (OLD.org_code, 'joined', CASE WHEN OLD.joined_on >= '2012-11' THEN '2012.11-' WHEN OLD.joined_on >= '2002-11' THEN '2002.11-2012.10' WHEN OLD.joined_on >= '1979-01' THEN '1979.1-2002.10' WHEN OLD.joined_on >= '1976-11' THEN '1976.11-1978.12' WHEN OLD.joined_on >= '1966-05' THEN '1966.5-1976.10' WHEN OLD.joined_on >= '1949-10' THEN '1949.10-1966.4' WHEN OLD.joined_on >= '0' THEN '-1949.9' ELSE 'unknown' END, -1)
    ON CONFLICT (org_code, dim, val) DO UPDATE SET n = n - 1;
END;

CREATE TRIGGER member_tally_update_old
AFTER UPDATE OF status, org_code, category, sex, ethnicity, education, job, birth_date, joined_on
ON members WHEN OLD.status = 'normal'
BEGIN
    INSERT INTO member_tally (org_code, dim, val, n) VALUES
        (OLD.org_code, 'category', OLD.category, -1),
        (OLD.org_code, 'sex', OLD.sex, -1),
        (OLD.org_code, 'ethnicity', OLD.ethnicity, -1),
        (OLD.org_code, 'education', OLD.education, -1),
        (OLD.org_code, 'job', OLD.job, -1),
        (OLD.org_code, 'birth', substr(OLD.birth_date, 1, 4), -1),
        (OLD.org_code, 'joined', CASE WHEN OLD.joined_on >= '2012-11' THEN '2012.11-' WHEN OLD.joined_on >= '2002-11' THEN '2002.11-2012.10' WHEN OLD.joined_on >= '1979-01' THEN '1979.1-2002.10' WHEN OLD.joined_on >= '1976-11' THEN '1976.11-1978.12' WHEN OLD.joined_on >= '1966-05' THEN '1966.5-1976.10' WHEN OLD.joined_on >= '1949-10' THEN '1949.10-1966.4' WHEN OLD.joined_on >= '0' THEN '-1949.9' ELSE 'unknown' END, -1)
    ON CONFLICT (org_code, dim, val) DO UPDATE SET n = n - 1;
END;

CREATE TRIGGER member_tally_update_new
AFTER UPDATE OF status, org_code, category, sex, ethnicity, education, job, birth_date, joined_on
ON members WHEN NEW.status = 'normal'
BEGIN
    INSERT INTO member_tally (org_code, dim, val, n) VALUES
        (NEW.org_code, 'category', NEW.category, 1),
        (NEW.org_code, 'sex', NEW.sex, 1),
        (NEW.org_code, 'ethnicity', NEW.ethnicity, 1),
        (NEW.org_code, 'education', NEW.education, 1),
        (NEW.org_code, 'job', NEW.job, 1),
        (NEW.org_code, 'birth', substr(NEW.birth_date, 1, 4), 1),
        (NEW.org_code, 'joined', CASE WHEN NEW.joined_on >= '2012-11' THEN '2012.11-' WHEN NEW.joined_on >= '2002-11' THEN '2002.11-2012.10' WHEN NEW.joined_on >= '1979-01' THEN '1979.1-2002.10' WHEN NEW.joined_on >= '1976-11' THEN '1976.11-1978.12' WHEN NEW.joined_on >= '1966-05' THEN '1966.5-1976.10' WHEN NEW.joined_on >= '1949-10' THEN '1949.10-1966.4' WHEN NEW.joined_on >= '0' THEN '-1949.9' ELSE 'unknown' END, 1)
    ON CONFLICT (org_code, dim, val) DO UPDATE SET n = n + 1;
END;

-- The ledger by member, for the statistics: is a loss later recovered?
CREATE INDEX member_changes_member ON member_changes (member_id, at);
