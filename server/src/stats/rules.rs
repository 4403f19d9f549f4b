//! Pure rules of the statistics: age bands from a histogram of birth years, join-date bands.
//!
//! Ages are whole years on `today`. A member is at least `n` years old when born on or before
//! `today - n years`; the tally counts births per year, so the count of members at least `n`
//! is the years before that date's year plus the members born in that year up to the date —
//! or, when the date lies in the second half of its year, the years up to and including it
//! less the members born after the date in that year. That part of one year is read from the
//! members themselves (an index range). Join dates are counted per band by the triggers
//! (`JOIN_BANDS`, fixed periods).

use chrono::{Datelike, Months, NaiveDate};

/// Age bands: (key, label, lowest age); the next band's lowest age bounds it.
pub const AGE_BANDS: [(&str, &str, u32); 10] = [
    ("-30", "30岁及以下", 0),
    ("31-35", "31至35岁", 31),
    ("36-40", "36至40岁", 36),
    ("41-45", "41至45岁", 41),
    ("46-50", "46至50岁", 46),
    ("51-55", "51至55岁", 51),
    ("56-60", "56至60岁", 56),
    ("61-70", "61至70岁", 61),
    ("71-80", "71至80岁", 71),
    ("81-", "81岁及以上", 81),
];

/// Join-date bands 入党时间: (key, label, first month 'YYYY-MM' of the band).
pub const JOIN_BANDS: [(&str, &str, &str); 7] = [
    ("-1949.9", "1949年9月及以前", ""),
    ("1949.10-1966.4", "1949年10月至1966年4月", "1949-10"),
    ("1966.5-1976.10", "1966年5月至1976年10月", "1966-05"),
    ("1976.11-1978.12", "1976年11月至1978年12月", "1976-11"),
    ("1979.1-2002.10", "1979年1月至2002年10月", "1979-01"),
    ("2002.11-2012.10", "2002年11月至2012年10月", "2002-11"),
    ("2012.11-", "2012年11月及以后", "2012-11"),
];

/// The key and label of a missing or unreadable date.
pub const UNKNOWN: (&str, &str) = ("unknown", "未填");

/// The latest birth date of someone at least `years` old on `today`.
pub fn born_by(today: NaiveDate, years: u32) -> NaiveDate {
    today
        .checked_sub_months(Months::new(12 * years))
        .unwrap_or(NaiveDate::MIN)
}

/// Whole years from `born` to `on`.
pub fn age_on(born: NaiveDate, on: NaiveDate) -> i32 {
    let mut y = on.year() - born.year();
    if (on.month(), on.day()) < (born.month(), born.day()) {
        y -= 1;
    }
    y
}

/// A valid 'YYYY' key?
pub fn is_year(y: &str) -> bool {
    y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit())
}

/// The part of a boundary year read from members: births from `from` to `to` (inclusive,
/// 'YYYY-MM-DD'); `after`: the part after the boundary day (subtracted from the year).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    pub year: String,
    pub from: String,
    pub to: String,
    pub after: bool,
}

/// The boundaries of the age bands (each band but the first) on `today`.
pub fn age_boundaries(today: NaiveDate) -> Vec<Boundary> {
    AGE_BANDS[1..]
        .iter()
        .map(|(_, _, lowest)| {
            let d = born_by(today, *lowest);
            let year = d.year();
            if d.ordinal() <= 183 {
                Boundary {
                    year: format!("{year:04}"),
                    from: format!("{year:04}-01-01"),
                    to: d.format("%Y-%m-%d").to_string(),
                    after: false,
                }
            } else {
                let next = d.succ_opt().unwrap_or(d);
                Boundary {
                    year: format!("{year:04}"),
                    from: next.format("%Y-%m-%d").to_string(),
                    to: format!("{year:04}-12-31"),
                    after: true,
                }
            }
        })
        .collect()
}

/// The age bands from the birth-year histogram `years` ('YYYY', count) and, for each boundary
/// of [`age_boundaries`], the members born in its part of the year. Returns the count per
/// band of [`AGE_BANDS`] and the count of unknown birth dates.
pub fn age_bands(years: &[(String, i64)], partial: &[i64], today: NaiveDate) -> (Vec<i64>, i64) {
    let known: i64 = years.iter().filter(|(y, _)| is_year(y)).map(|x| x.1).sum();
    let unknown: i64 = years.iter().filter(|(y, _)| !is_year(y)).map(|x| x.1).sum();
    // at_least[i]: members at least AGE_BANDS[i + 1].2 years old.
    let at_least: Vec<i64> = age_boundaries(today)
        .iter()
        .zip(partial)
        .map(|(b, part)| {
            let upto: i64 = years
                .iter()
                .filter(|(y, _)| {
                    is_year(y) && (y.as_str() < b.year.as_str() || (b.after && *y == b.year))
                })
                .map(|x| x.1)
                .sum();
            if b.after {
                upto - part
            } else {
                upto + part
            }
        })
        .collect();
    let mut bands = Vec::with_capacity(AGE_BANDS.len());
    let mut above = known;
    for n in &at_least {
        bands.push(above - n);
        above = *n;
    }
    bands.push(above);
    (bands, unknown)
}

/// The join-date band of a date ('YYYY-MM-DD' or 'YYYY-MM'), or `None` when it is missing —
/// the same periods as the triggers of migration 0019.
pub fn join_band(date: &str) -> Option<usize> {
    let ym = date.get(..7)?;
    if !(ym.as_bytes()[4] == b'-' && is_year(&ym[..4])) {
        return None;
    }
    JOIN_BANDS.iter().rposition(|(_, _, from)| ym >= *from)
}

/// The Beijing-time year as a half-open range of RFC 3339 UTC instants.
pub fn year_range(year: i32) -> (String, String) {
    let at = |y: i32| format!("{}-12-31T16:00:00Z", y - 1);
    (at(year), at(year + 1))
}

/// The job groups of seed 000's registration table (在职 / 学生 / 离退休): students and retired
/// members by their job code, everyone else 在职.
pub const JOB_GROUPS: [(&str, &str); 3] = [
    ("working", "在职"),
    ("student", "学生"),
    ("retired", "离退休"),
];

/// The job group (key) of a job code.
pub fn job_group(job: &str) -> &'static str {
    match job {
        "student" => "student",
        "retired" => "retired",
        _ => "working",
    }
}

/// The label of a job group key.
pub fn job_group_label(key: &str) -> &'static str {
    JOB_GROUPS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, l)| *l)
        .unwrap_or("在职")
}

#[cfg(test)]
mod tests {
    #[test]
    fn jobs_fall_into_the_seeds_three_groups() {
        assert_eq!(super::job_group("student"), "student");
        assert_eq!(super::job_group("retired"), "retired");
        assert_eq!(super::job_group("worker"), "working");
        assert_eq!(super::job_group("farmer"), "working");
        assert_eq!(super::job_group_label("retired"), "离退休");
    }

    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn bands_from_months_match_counting_each_member() {
        let today = d("2026-11-26");
        let births = [
            "1996-11-26",
            "1996-11-27",
            "1995-11-26",
            "1990-01-01",
            "1945-11-26",
            "1945-11-27",
            "2000-02-29",
            "1996-12-01",
            "1940-06-30",
            "1991-11-26",
            "1991-11-30",
            "1985-03-02",
            "1985-12-31",
            "1966-01-01",
            "1955-07-04",
            "1956-11-27",
        ];
        let mut months: Vec<(String, i64)> = Vec::new();
        for b in births {
            let m = b[..4].to_string();
            match months.iter_mut().find(|(k, _)| *k == m) {
                Some(e) => e.1 += 1,
                None => months.push((m, 1)),
            }
        }
        months.push((String::new(), 2));
        let partial: Vec<i64> = age_boundaries(today)
            .iter()
            .map(|b| {
                births
                    .iter()
                    .filter(|x| **x >= b.from.as_str() && **x <= b.to.as_str())
                    .count() as i64
            })
            .collect();
        let (bands, unknown) = age_bands(&months, &partial, today);
        assert_eq!(unknown, 2);
        let mut expect = vec![0i64; AGE_BANDS.len()];
        for b in births {
            let age = age_on(d(b), today) as u32;
            let i = AGE_BANDS.iter().rposition(|(_, _, lo)| age >= *lo).unwrap();
            expect[i] += 1;
        }
        assert_eq!(bands, expect);
        assert_eq!(age_on(d("1996-11-26"), today), 30);
        assert_eq!(age_on(d("1995-11-26"), today), 31);
    }

    #[test]
    fn join_bands_begin_on_the_first_of_a_month() {
        assert_eq!(join_band("1949-09"), Some(0));
        assert_eq!(join_band("1949-10"), Some(1));
        assert_eq!(join_band("1966-04"), Some(1));
        assert_eq!(join_band("1966-05"), Some(2));
        assert_eq!(join_band("1978-12"), Some(3));
        assert_eq!(join_band("1979-01"), Some(4));
        assert_eq!(join_band("2012-11"), Some(6));
        assert_eq!(join_band(""), None);
        assert_eq!(join_band("1978-12-31"), Some(3));
    }

    #[test]
    fn years_are_beijing_years() {
        assert_eq!(
            year_range(2026),
            (
                "2025-12-31T16:00:00Z".to_string(),
                "2026-12-31T16:00:00Z".to_string()
            )
        );
    }
}
