//! Pure rules of the statistics: age bands and join-date bands from year-month histograms.
//!
//! Ages are whole years on `today`. A member is at least `n` years old when born on or before
//! `today - n years`; the tally counts births per month, so the count of members at least `n`
//! is the months before that date's month plus the members born in that month up to the date
//! (read from the members themselves: one month of births, an index range). Join-date bands
//! begin on the first of a month, so the monthly histogram gives them exactly.

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

/// A valid 'YYYY-MM' key?
pub fn is_month(ym: &str) -> bool {
    ym.len() == 7
        && NaiveDate::parse_from_str(&format!("{ym}-01"), "%Y-%m-%d").is_ok()
        && ym.as_bytes()[4] == b'-'
}

/// The age boundaries to read from members: for each band but the first, the first day of
/// the month and the latest birth date of its lowest age (both 'YYYY-MM-DD').
pub fn age_boundaries(today: NaiveDate) -> Vec<(String, String)> {
    AGE_BANDS[1..]
        .iter()
        .map(|(_, _, lowest)| {
            let d = born_by(today, *lowest);
            (
                d.with_day(1).unwrap_or(d).format("%Y-%m-%d").to_string(),
                d.format("%Y-%m-%d").to_string(),
            )
        })
        .collect()
}

/// The age bands from the monthly birth histogram `months` ('YYYY-MM', count) and, for each
/// boundary of [`age_boundaries`], the members born in its month up to its date. Returns the
/// count per band of [`AGE_BANDS`] and the count of unknown birth dates.
pub fn age_bands(months: &[(String, i64)], partial: &[i64], today: NaiveDate) -> (Vec<i64>, i64) {
    let known: i64 = months
        .iter()
        .filter(|(m, _)| is_month(m))
        .map(|x| x.1)
        .sum();
    let unknown: i64 = months
        .iter()
        .filter(|(m, _)| !is_month(m))
        .map(|x| x.1)
        .sum();
    // at_least[i]: members at least AGE_BANDS[i + 1].2 years old.
    let at_least: Vec<i64> = AGE_BANDS[1..]
        .iter()
        .zip(partial)
        .map(|((_, _, lowest), part)| {
            let month = born_by(today, *lowest).format("%Y-%m").to_string();
            let before: i64 = months
                .iter()
                .filter(|(m, _)| is_month(m) && m.as_str() < month.as_str())
                .map(|x| x.1)
                .sum();
            before + part
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

/// The join-date band of a 'YYYY-MM' key, or `None` when the date is missing.
pub fn join_band(ym: &str) -> Option<usize> {
    if !is_month(ym) {
        return None;
    }
    JOIN_BANDS.iter().rposition(|(_, _, from)| ym >= *from)
}

/// The Beijing-time year as a half-open range of RFC 3339 UTC instants.
pub fn year_range(year: i32) -> (String, String) {
    let at = |y: i32| format!("{}-12-31T16:00:00Z", y - 1);
    (at(year), at(year + 1))
}

#[cfg(test)]
mod tests {
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
        ];
        let mut months: Vec<(String, i64)> = Vec::new();
        for b in births {
            let m = b[..7].to_string();
            match months.iter_mut().find(|(k, _)| *k == m) {
                Some(e) => e.1 += 1,
                None => months.push((m, 1)),
            }
        }
        months.push((String::new(), 2));
        let partial: Vec<i64> = age_boundaries(today)
            .iter()
            .map(|(from, to)| {
                births
                    .iter()
                    .filter(|b| **b >= from.as_str() && **b <= to.as_str())
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
