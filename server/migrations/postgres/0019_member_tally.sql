-- 党员统计 (SPEC §7): counts of living members ('normal') per branch code and dimension,
-- kept by statement-level triggers (transition tables: one grouped upsert per statement, so a
-- bulk insert pays once per distinct key, not per row) in the same transaction as every
-- change to `members`. Births are counted per year ('YYYY'), joins per
-- join-date band (fixed periods, the keys of `stats::rules::JOIN_BANDS`); the statistics derive
-- age bands from the years, reading the part of each boundary year from `members_birth_normal`. Upserts run in key order so
-- that concurrent writers queue rather than deadlock; net-zero keys are not touched.
CREATE TABLE member_tally (
    org_code TEXT COLLATE "C" NOT NULL,
    dim TEXT NOT NULL,
    val TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (org_code, dim, val)
);

CREATE INDEX members_birth_normal ON members (birth_date, org_code) WHERE status = 'normal';

CREATE FUNCTION member_tally_keys(m members) RETURNS TABLE (dim TEXT, val TEXT)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('category', m.category), ('sex', m.sex), ('ethnicity', m.ethnicity),
           ('education', m.education), ('job', m.job),
           ('birth', substr(m.birth_date, 1, 4)), ('joined', CASE WHEN m.joined_on COLLATE "C" >= '2012-11' THEN '2012.11-' WHEN m.joined_on COLLATE "C" >= '2002-11' THEN '2002.11-2012.10' WHEN m.joined_on COLLATE "C" >= '1979-01' THEN '1979.1-2002.10' WHEN m.joined_on COLLATE "C" >= '1976-11' THEN '1976.11-1978.12' WHEN m.joined_on COLLATE "C" >= '1966-05' THEN '1966.5-1976.10' WHEN m.joined_on COLLATE "C" >= '1949-10' THEN '1949.10-1966.4' WHEN m.joined_on COLLATE "C" >= '0' THEN '-1949.9' ELSE 'unknown' END)
$$;

INSERT INTO member_tally (org_code, dim, val, n)
SELECT m.org_code, k.dim, k.val, count(*)
FROM members m CROSS JOIN LATERAL member_tally_keys(m) k
WHERE m.status = 'normal'
GROUP BY m.org_code, k.dim, k.val;

CREATE FUNCTION member_tally_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO member_tally (org_code, dim, val, n)
    SELECT m.org_code, k.dim, k.val, count(*)
    FROM tally_new m CROSS JOIN LATERAL member_tally_keys(m::members) k
    WHERE m.status = 'normal'
    GROUP BY m.org_code, k.dim, k.val
    ORDER BY 1, 2, 3
    ON CONFLICT (org_code, dim, val) DO UPDATE SET n = member_tally.n + EXCLUDED.n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION member_tally_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO member_tally (org_code, dim, val, n)
    SELECT m.org_code, k.dim, k.val, -count(*)
    FROM tally_old m CROSS JOIN LATERAL member_tally_keys(m::members) k
    WHERE m.status = 'normal'
    GROUP BY m.org_code, k.dim, k.val
    ORDER BY 1, 2, 3
    ON CONFLICT (org_code, dim, val) DO UPDATE SET n = member_tally.n + EXCLUDED.n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION member_tally_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO member_tally (org_code, dim, val, n)
    SELECT org_code, dim, val, sum(d) FROM (
        SELECT m.org_code, k.dim, k.val, 1 AS d
        FROM tally_new m CROSS JOIN LATERAL member_tally_keys(m::members) k
        WHERE m.status = 'normal'
        UNION ALL
        SELECT m.org_code, k.dim, k.val, -1 AS d
        FROM tally_old m CROSS JOIN LATERAL member_tally_keys(m::members) k
        WHERE m.status = 'normal'
    ) t
    GROUP BY org_code, dim, val
    HAVING sum(d) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (org_code, dim, val) DO UPDATE SET n = member_tally.n + EXCLUDED.n;
    RETURN NULL;
END;
$$;

CREATE TRIGGER member_tally_ins AFTER INSERT ON members
    REFERENCING NEW TABLE AS tally_new FOR EACH STATEMENT EXECUTE FUNCTION member_tally_ins();
CREATE TRIGGER member_tally_del AFTER DELETE ON members
    REFERENCING OLD TABLE AS tally_old FOR EACH STATEMENT EXECUTE FUNCTION member_tally_del();
CREATE TRIGGER member_tally_upd AFTER UPDATE ON members
    REFERENCING OLD TABLE AS tally_old NEW TABLE AS tally_new
    FOR EACH STATEMENT EXECUTE FUNCTION member_tally_upd();

-- Subtree ranges over the ledger compare codes bytewise, as 0009 made the other code columns.
ALTER TABLE member_changes ALTER COLUMN org_code TYPE TEXT COLLATE "C";

-- The ledger by member, for the statistics: is a loss later recovered?
CREATE INDEX member_changes_member ON member_changes (member_id, at);
