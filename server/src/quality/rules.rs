//! The quality rules 信息质量管控 (SPEC §7's table): one function per rule over a [`Subject`]
//! (the clear fields a check needs, the opened ID number) and a [`Context`] (today and the
//! special-period minimum-age table). Pure: no IO.

use chrono::NaiveDate;

use super::{AgePeriod, Level, Rule};
use crate::fields::years_between;
use crate::member::idcard::{self, IdNumber};

/// The founding of the Party: nobody joined before it.
pub fn founding() -> NaiveDate {
    NaiveDate::from_ymd_opt(1921, 7, 1).expect("valid date")
}

/// What the rules look at for one member.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    /// The opened ID number.
    pub id_number: &'a str,
    /// male | female
    pub sex: &'a str,
    pub ethnicity: &'a str,
    pub education: &'a str,
    pub address: &'a str,
    /// The opened phone.
    pub phone: &'a str,
    /// YYYY-MM-DD or empty
    pub birth_date: &'a str,
    pub joined_on: &'a str,
    pub full_on: Option<&'a str>,
    /// full | probationary
    pub category: &'a str,
    pub lost_contact: bool,
    /// Another living member carries the same ID number (found through the blind index).
    pub id_duplicate: bool,
}

/// What every check shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub today: NaiveDate,
    /// 特殊时期特殊生日: periods of join dates and the minimum age in force then.
    pub periods: Vec<AgePeriod>,
}

/// A rule's finding for one member: the rule and its explanation in Chinese.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub explanation: String,
}

impl Finding {
    pub fn level(&self) -> Level {
        self.rule.level()
    }
}

/// `YYYY-MM-DD` (anything else reads as missing).
pub fn date(s: &str) -> Option<NaiveDate> {
    let b = s.trim().as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn fmt(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Applies one rule.
pub fn check(rule: Rule, s: &Subject<'_>, cx: &Context) -> Option<String> {
    let birth = date(s.birth_date);
    let joined = date(s.joined_on);
    let full = s.full_on.and_then(date);
    match rule {
        // 入党日期(错误): members not marked lost-contact.
        Rule::JoinDateMissing => (!s.lost_contact && joined.is_none())
            .then(|| "缺少入党日期（加入党组织日期）".to_string()),
        // 失联党员入党日期(警告)
        Rule::LostContactJoinDateMissing => (s.lost_contact && joined.is_none())
            .then(|| "失联党员缺少入党日期（加入党组织日期）".to_string()),
        // 党员出生日期（不含失联党员）(错误)
        Rule::BirthDateMissing => {
            (!s.lost_contact && birth.is_none()).then(|| "缺少出生日期".to_string())
        }
        // 转正日期(错误): missing for a full member, or less than a year after joining (a
        // date before the join date is 先入组织, its own rule).
        Rule::FullDate => {
            if s.category != "full" {
                return None;
            }
            match (full, joined) {
                (None, _) => Some("正式党员缺少转正日期".to_string()),
                (Some(f), Some(j)) if f >= j && years_between(j, f) < 1 => {
                    Some(format!("转正日期{}距入党日期{}不满一年", fmt(f), fmt(j)))
                }
                _ => None,
            }
        }
        Rule::EthnicityMissing => blank(s.ethnicity).then(|| "缺少民族".to_string()),
        Rule::EducationMissing => blank(s.education).then(|| "缺少学历".to_string()),
        Rule::AddressMissing => blank(s.address).then(|| "缺少家庭住址".to_string()),
        Rule::PhoneMissing => blank(s.phone).then(|| "缺少联系电话".to_string()),
        // 先入组织(错误)
        Rule::FullBeforeJoin => match (full, joined) {
            (Some(f), Some(j)) if f < j => {
                Some(format!("转正日期{}早于入党日期{}", fmt(f), fmt(j)))
            }
            _ => None,
        },
        // 小于18岁入党(警告)
        Rule::JoinedUnder18 => {
            let age = years_between(birth?, joined?);
            (age < 18).then(|| format!("入党时年龄{age}岁，不满18岁"))
        }
        // 1921年7月1日前入党(错误)
        Rule::JoinedBefore1921 => {
            let j = joined?;
            (j < founding()).then(|| format!("入党日期{}早于1921年7月1日", fmt(j)))
        }
        // 年龄不符合规定（不含预备党员）(警告)
        Rule::AgeOutOfRange => {
            if s.category == "probationary" {
                return None;
            }
            let age = years_between(birth?, cx.today);
            if age < 18 {
                Some(format!("现年{age}岁，不满18岁"))
            } else if age > 110 {
                Some(format!("现年{age}岁，超过110岁"))
            } else {
                None
            }
        }
        // 特殊时期特殊生日不符合当时规定(警告)
        Rule::SpecialPeriodAge => {
            let (b, j) = (birth?, joined?);
            let age = years_between(b, j);
            cx.periods
                .iter()
                .find(|p| p.from <= j && j <= p.to && age < p.min_age)
                .map(|p| {
                    format!(
                        "入党日期{}在{}至{}期间，当时规定入党年龄不低于{}岁，入党时年龄{}岁",
                        fmt(j),
                        fmt(p.from),
                        fmt(p.to),
                        p.min_age,
                        age
                    )
                })
        }
        // 出生日期与身份证号码不符(错误)
        // The dates are not named: beside the masked number lists show, the birth date would
        // rebuild the whole number.
        Rule::BirthDateVsId => match idcard::parse(s.id_number, cx.today) {
            // A missing birth date is its own finding (党员出生日期).
            Ok(IdNumber::Known { birth_date, .. }) if birth.is_some_and(|b| b != birth_date) => {
                Some("出生日期与身份证号码中的出生日期不符".to_string())
            }
            _ => None,
        },
        // 性别与身份证不符(错误)
        Rule::SexVsId => match idcard::parse(s.id_number, cx.today) {
            Ok(IdNumber::Known { male, .. }) if s.sex != if male { "male" } else { "female" } => {
                Some(format!(
                    "性别与身份证号码不符（身份证号码为{}性）",
                    if male { "男" } else { "女" }
                ))
            }
            _ => None,
        },
        // 身份证不符合规定(警告): check digit or date invalid, or the all-zero placeholder.
        Rule::IdNumberInvalid => match idcard::parse(s.id_number, cx.today) {
            Ok(IdNumber::Known { .. }) => None,
            Ok(IdNumber::Unknown) => Some("身份证号码为全零占位（身份证号不明确）".to_string()),
            Err(e) => Some(format!("身份证号码不符合规定：{}", e.message())),
        },
        // 党内身份证重复(错误)
        Rule::IdNumberDuplicate => s
            .id_duplicate
            .then(|| "党员库中另有党员使用相同的身份证号码".to_string()),
    }
}

/// Applies the chosen rules (in table order) to one member.
pub fn check_all(rules: &[Rule], s: &Subject<'_>, cx: &Context) -> Vec<Finding> {
    rules
        .iter()
        .filter_map(|r| {
            check(*r, s, cx).map(|explanation| Finding {
                rule: *r,
                explanation,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        date(s).unwrap()
    }

    fn cx() -> Context {
        Context {
            today: d("2026-11-26"),
            periods: super::super::default_periods(),
        }
    }

    /// A member every rule passes: a valid ID number (born 1980-05-01, male), full member
    /// since 2001 after joining 2000.
    fn clean() -> Subject<'static> {
        Subject {
            id_number: "11010519800501003X",
            sex: "male",
            ethnicity: "01",
            education: "21",
            address: "泉城市东岭县一路1号",
            phone: "13800000000",
            birth_date: "1980-05-01",
            joined_on: "2000-07-01",
            full_on: Some("2001-07-01"),
            category: "full",
            lost_contact: false,
            id_duplicate: false,
        }
    }

    fn fires(rule: Rule, s: &Subject<'_>) -> Option<String> {
        check(rule, s, &cx())
    }

    #[test]
    fn the_clean_member_passes_every_rule() {
        let s = clean();
        assert_eq!(
            idcard::parse(s.id_number, cx().today).map(|_| ()),
            Ok(()),
            "fixture ID number must be valid"
        );
        assert!(check_all(&Rule::ALL, &s, &cx()).is_empty());
    }

    #[test]
    fn join_date_missing() {
        let s = Subject {
            joined_on: "",
            ..clean()
        };
        assert!(fires(Rule::JoinDateMissing, &s).is_some());
        assert!(fires(Rule::JoinDateMissing, &clean()).is_none());
        let lost = Subject {
            lost_contact: true,
            ..s
        };
        assert!(fires(Rule::JoinDateMissing, &lost).is_none());
    }

    #[test]
    fn lost_contact_join_date_missing() {
        let s = Subject {
            joined_on: "",
            lost_contact: true,
            ..clean()
        };
        assert!(fires(Rule::LostContactJoinDateMissing, &s).is_some());
        let found = Subject {
            lost_contact: false,
            ..s
        };
        assert!(fires(Rule::LostContactJoinDateMissing, &found).is_none());
    }

    #[test]
    fn birth_date_missing() {
        let s = Subject {
            birth_date: "",
            ..clean()
        };
        assert_eq!(fires(Rule::BirthDateMissing, &s).unwrap(), "缺少出生日期");
        let lost = Subject {
            lost_contact: true,
            ..s
        };
        assert!(fires(Rule::BirthDateMissing, &lost).is_none());
    }

    #[test]
    fn full_date() {
        let missing = Subject {
            full_on: None,
            ..clean()
        };
        assert!(fires(Rule::FullDate, &missing).is_some());
        let soon = Subject {
            full_on: Some("2001-03-01"),
            ..clean()
        };
        assert_eq!(
            fires(Rule::FullDate, &soon).unwrap(),
            "转正日期2001-03-01距入党日期2000-07-01不满一年"
        );
        let probationary = Subject {
            full_on: None,
            category: "probationary",
            ..clean()
        };
        assert!(fires(Rule::FullDate, &probationary).is_none());
        assert!(fires(Rule::FullDate, &clean()).is_none());
    }

    #[test]
    fn ethnicity_missing() {
        let s = Subject {
            ethnicity: "",
            ..clean()
        };
        assert!(fires(Rule::EthnicityMissing, &s).is_some());
        assert!(fires(Rule::EthnicityMissing, &clean()).is_none());
    }

    #[test]
    fn education_missing() {
        let s = Subject {
            education: " ",
            ..clean()
        };
        assert!(fires(Rule::EducationMissing, &s).is_some());
        assert!(fires(Rule::EducationMissing, &clean()).is_none());
    }

    #[test]
    fn address_missing() {
        let s = Subject {
            address: "",
            ..clean()
        };
        assert!(fires(Rule::AddressMissing, &s).is_some());
        assert!(fires(Rule::AddressMissing, &clean()).is_none());
    }

    #[test]
    fn phone_missing() {
        let s = Subject {
            phone: "",
            ..clean()
        };
        assert!(fires(Rule::PhoneMissing, &s).is_some());
        assert!(fires(Rule::PhoneMissing, &clean()).is_none());
    }

    #[test]
    fn full_before_join() {
        let s = Subject {
            full_on: Some("1999-07-01"),
            ..clean()
        };
        assert_eq!(
            fires(Rule::FullBeforeJoin, &s).unwrap(),
            "转正日期1999-07-01早于入党日期2000-07-01"
        );
        // Only 先入组织, not also 转正日期.
        assert!(fires(Rule::FullDate, &s).is_none());
        assert!(fires(Rule::FullBeforeJoin, &clean()).is_none());
    }

    #[test]
    fn joined_under_18() {
        let s = Subject {
            joined_on: "1996-07-01",
            full_on: Some("1997-07-01"),
            ..clean()
        };
        assert_eq!(
            fires(Rule::JoinedUnder18, &s).unwrap(),
            "入党时年龄16岁，不满18岁"
        );
        // The day of the 18th birthday is 18.
        let birthday = Subject {
            joined_on: "1998-05-01",
            full_on: Some("1999-05-01"),
            ..clean()
        };
        assert!(fires(Rule::JoinedUnder18, &birthday).is_none());
    }

    #[test]
    fn joined_before_1921() {
        let s = Subject {
            birth_date: "1900-01-01",
            joined_on: "1921-06-30",
            full_on: Some("1922-07-01"),
            ..clean()
        };
        assert!(fires(Rule::JoinedBefore1921, &s).is_some());
        let founding_day = Subject {
            joined_on: "1921-07-01",
            ..s
        };
        assert!(fires(Rule::JoinedBefore1921, &founding_day).is_none());
    }

    #[test]
    fn age_out_of_range() {
        let old = Subject {
            birth_date: "1910-01-01",
            ..clean()
        };
        assert_eq!(
            fires(Rule::AgeOutOfRange, &old).unwrap(),
            "现年116岁，超过110岁"
        );
        let young = Subject {
            birth_date: "2010-01-01",
            ..clean()
        };
        assert!(fires(Rule::AgeOutOfRange, &young).is_some());
        let probationary = Subject {
            category: "probationary",
            full_on: None,
            ..young
        };
        assert!(fires(Rule::AgeOutOfRange, &probationary).is_none());
        assert!(fires(Rule::AgeOutOfRange, &clean()).is_none());
    }

    #[test]
    fn special_period_age() {
        // After 1945-06-11 at 17: flagged by the shipped default.
        let s = Subject {
            birth_date: "1930-01-01",
            joined_on: "1947-03-01",
            full_on: Some("1948-03-01"),
            ..clean()
        };
        let e = fires(Rule::SpecialPeriodAge, &s).unwrap();
        assert!(e.contains("入党时年龄17岁"), "{e}");
        // Before it, at 16: not flagged by the default (only 小于18岁入党).
        let war = Subject {
            birth_date: "1924-01-01",
            joined_on: "1940-03-01",
            full_on: Some("1941-03-01"),
            ..clean()
        };
        assert!(fires(Rule::SpecialPeriodAge, &war).is_none());
        assert!(fires(Rule::JoinedUnder18, &war).is_some());
        // A configured period applies its own minimum age.
        let strict = Context {
            today: cx().today,
            periods: vec![AgePeriod {
                from: d("1930-01-01"),
                to: d("1945-06-11"),
                min_age: 17,
            }],
        };
        assert!(check(Rule::SpecialPeriodAge, &war, &strict).is_some());
        assert!(fires(Rule::SpecialPeriodAge, &clean()).is_none());
    }

    #[test]
    fn birth_date_vs_id() {
        let s = Subject {
            birth_date: "1980-05-02",
            ..clean()
        };
        assert_eq!(
            fires(Rule::BirthDateVsId, &s).unwrap(),
            "出生日期与身份证号码中的出生日期不符"
        );
        assert!(fires(Rule::BirthDateVsId, &clean()).is_none());
    }

    #[test]
    fn sex_vs_id() {
        let s = Subject {
            sex: "female",
            ..clean()
        };
        assert!(fires(Rule::SexVsId, &s).unwrap().contains("男性"));
        assert!(fires(Rule::SexVsId, &clean()).is_none());
    }

    #[test]
    fn id_number_invalid() {
        let zeros = Subject {
            id_number: "000000000000000000",
            ..clean()
        };
        assert!(fires(Rule::IdNumberInvalid, &zeros)
            .unwrap()
            .contains("全零"));
        let check_digit = Subject {
            id_number: "110105198005010031",
            ..clean()
        };
        assert!(fires(Rule::IdNumberInvalid, &check_digit)
            .unwrap()
            .contains("校验位"));
        let bad_date = Subject {
            id_number: "110105198013010036",
            ..clean()
        };
        assert!(fires(Rule::IdNumberInvalid, &bad_date).is_some());
        assert!(fires(Rule::IdNumberInvalid, &clean()).is_none());
    }

    #[test]
    fn id_number_duplicate() {
        let s = Subject {
            id_duplicate: true,
            ..clean()
        };
        assert!(fires(Rule::IdNumberDuplicate, &s).is_some());
        assert!(fires(Rule::IdNumberDuplicate, &clean()).is_none());
    }

    #[test]
    fn rule_ids_round_trip_and_every_rule_has_a_test_member() {
        for r in Rule::ALL {
            assert_eq!(Rule::parse(r.id()), Some(r));
            // The API's JSON spells the same id.
            assert_eq!(serde_json::to_value(r).unwrap(), r.id());
        }
        assert_eq!(Rule::ALL.len(), 17);
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(date("2000-02-29"), NaiveDate::from_ymd_opt(2000, 2, 29));
        assert_eq!(date("2001-02-29"), None);
        assert_eq!(date(""), None);
        assert_eq!(date("2000-1-01"), None);
    }
}
