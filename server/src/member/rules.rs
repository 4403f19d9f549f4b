//! Field rules for members (SPEC §4), enforced on every write: each refusal names the field.
//! Pure: no IO.

use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::ToSchema;

use super::dict::{self, CATEGORIES, EDUCATIONS, ETHNICITIES, JOBS, STATUSES};
use super::idcard::{self, IdNumber};
use super::MemberRow;
use crate::error::ApiError;
use crate::fields::{self, years_between, Problems};

/// The earliest possible join date: the founding of the Party.
pub fn earliest_join_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1921, 7, 1).expect("valid date")
}

/// A member as submitted (direct entry or edit). Every field is optional here so that each
/// missing one is reported by name in Chinese.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, ToSchema)]
pub struct MemberInput {
    /// 姓名
    pub name: Option<String>,
    /// 公民身份证号: 18 characters; a lower-case x is accepted and stored as X
    pub id_number: Option<String>,
    /// male | female; derived from the ID number when absent
    pub sex: Option<String>,
    /// 民族 (GB/T 3304 code)
    pub ethnicity: Option<String>,
    /// derived from the ID number when absent
    pub birth_date: Option<String>,
    /// 学历 (GB/T 4658 code)
    pub education: Option<String>,
    /// full | probationary
    pub category: Option<String>,
    /// 所在党支部 (631/632/9)
    pub branch_id: Option<String>,
    /// 加入党组织日期
    pub joined_on: Option<String>,
    /// 转正日期 (full members)
    pub full_on: Option<String>,
    /// worker | farmer | student | retired | other
    pub job: Option<String>,
    /// 联系电话
    pub phone: Option<String>,
    /// 家庭住址
    pub address: Option<String>,
    /// 党籍状态 (normal)
    pub status: Option<String>,
    pub lost_contact: Option<bool>,
    pub lost_contact_on: Option<String>,
    pub floating: Option<bool>,
    pub floating_to: Option<String>,
    /// 注册手机号
    pub registered_phone: Option<String>,
    /// 籍贯
    pub origin: Option<String>,
    /// 职称
    pub title: Option<String>,
    /// 新社会阶层情况
    pub new_social_stratum: Option<String>,
    /// true: save even though the sex or birth date differs from the ID number, or the ID number
    /// is the all-zero placeholder 身份证号不明确 (each is answered 400 naming the field until
    /// confirmed; the record stays tagged)
    pub confirm_contradictions: Option<bool>,
}

/// A recorded fact that contradicts another: kept only when confirmed, and shown on the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction {
    /// the field that differs (sex, birth_date) or is a placeholder (id_number)
    pub field: &'static str,
    /// the tag shown on the record
    pub tag: &'static str,
    /// what is wrong, in Chinese
    pub message: String,
}

/// The contradictions between an ID number and the recorded sex and birth date: the all-zero
/// placeholder, a sex or a birth date other than the number's. A malformed number has none
/// here (it is refused as a field error).
pub fn contradictions(
    id_number: &str,
    sex: &str,
    birth_date: NaiveDate,
    today: NaiveDate,
) -> Vec<Contradiction> {
    match idcard::parse(id_number, today) {
        Ok(IdNumber::Unknown) => vec![Contradiction {
            field: "id_number",
            tag: "身份证号不明确",
            message: "公民身份证号为全零占位（身份证号不明确），请尽快补录".to_string(),
        }],
        Ok(IdNumber::Known {
            birth_date: id_birth,
            male,
            ..
        }) => {
            let mut out = Vec::new();
            let id_sex = if male { "male" } else { "female" };
            if sex != id_sex {
                out.push(Contradiction {
                    field: "sex",
                    tag: "性别与身份证号不一致",
                    message: format!(
                        "性别与公民身份证号不一致（身份证号为{}性）",
                        if male { "男" } else { "女" }
                    ),
                });
            }
            if birth_date != id_birth {
                out.push(Contradiction {
                    field: "birth_date",
                    tag: "出生日期与身份证号不一致",
                    message: format!("出生日期与公民身份证号不一致（身份证号为 {id_birth}）"),
                });
            }
            out
        }
        Err(_) => Vec::new(),
    }
}

/// The contradictions of a stored record (shown as tags on it).
pub fn record_contradictions(row: &MemberRow, today: NaiveDate) -> Vec<Contradiction> {
    match NaiveDate::parse_from_str(&row.birth_date, "%Y-%m-%d") {
        Ok(birth) => contradictions(&row.id_number, &row.sex, birth, today),
        Err(_) => Vec::new(),
    }
}

/// A member that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ValidMember {
    pub name: String,
    pub id_number: String,
    pub sex: String,
    pub ethnicity: String,
    pub birth_date: NaiveDate,
    pub education: String,
    pub category: String,
    pub joined_on: NaiveDate,
    pub full_on: Option<NaiveDate>,
    pub job: String,
    pub phone: String,
    pub address: String,
    pub status: String,
    pub lost_contact: bool,
    pub lost_contact_on: Option<NaiveDate>,
    pub floating: bool,
    pub floating_to: Option<String>,
    pub registered_phone: Option<String>,
    pub origin: String,
    pub title: String,
    pub new_social_stratum: String,
    pub completeness: i64,
}

fn coded(
    field: &str,
    label: &str,
    table: &[(&str, &str)],
    value: Option<&str>,
) -> Result<String, ApiError> {
    let v = value.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(ApiError::field(field, format!("请选择{label}")));
    }
    dict::code_of(table, v)
        .map(str::to_string)
        .ok_or_else(|| ApiError::field(field, format!("{label}“{v}”不在代码表中")))
}

/// Checks every field rule and reports every field at fault at once. `today` is the
/// platform's calendar date.
pub fn validate(m: &MemberInput, today: NaiveDate) -> Result<ValidMember, ApiError> {
    validate_accepting(m, today, &[])
}

/// As [`validate`], with the contradictions already on the record (`accepted`: their fields)
/// needing no new confirmation.
pub fn validate_accepting(
    m: &MemberInput,
    today: NaiveDate,
    accepted: &[&str],
) -> Result<ValidMember, ApiError> {
    let mut p = Problems::default();
    let name = p.take(fields::required_text("name", "姓名", m.name.as_deref(), 30));
    if name
        .as_deref()
        .is_some_and(|n| n.chars().any(|c| c.is_ascii_digit()))
    {
        p.add("name", "姓名不能包含数字");
    }
    let raw_id = m.id_number.as_deref().unwrap_or("");
    let id = if raw_id.trim().is_empty() {
        p.add("id_number", "请填写公民身份证号");
        None
    } else {
        p.take(idcard::parse(raw_id, today).map_err(|e| ApiError::field("id_number", e.message())))
    };
    let (derived_birth, derived_sex) = match &id {
        Some(IdNumber::Known {
            birth_date, male, ..
        }) => (
            Some(*birth_date),
            Some(if *male { "male" } else { "female" }),
        ),
        _ => (None, None),
    };
    // An ID number at fault says nothing about sex and birth date: no second error for them.
    let id_known_missing = matches!(id, Some(IdNumber::Unknown));
    let sex = match m.sex.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some("male") | Some("男") => Some("male"),
        Some("female") | Some("女") => Some("female"),
        Some(other) => {
            p.add("sex", format!("性别“{other}”无效，应为男或女"));
            None
        }
        None => {
            if id_known_missing {
                p.add("sex", "身份证号未知时须填写性别");
            }
            derived_sex
        }
    }
    .map(str::to_string);
    let birth_date = match m
        .birth_date
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(v) => p.take(fields::date("birth_date", "出生日期", v)),
        None => {
            if id_known_missing {
                p.add("birth_date", "身份证号未知时须填写出生日期");
            }
            derived_birth
        }
    };
    let birth_date = birth_date.and_then(|b| {
        let b = p.take(fields::not_future("birth_date", "出生日期", b, today))?;
        if years_between(b, today) < 18 {
            p.add("birth_date", "党员年龄应满18周岁");
        }
        Some(b)
    });
    if let (Some(id), Some(sex), Some(birth)) = (&id, &sex, birth_date) {
        if m.confirm_contradictions != Some(true) {
            for c in contradictions(id.as_str(), sex, birth, today) {
                if !accepted.contains(&c.field) {
                    p.add(
                        c.field,
                        format!("{}；如已核实无误，请勾选“已核实”后保存", c.message),
                    );
                }
            }
        }
    }
    let ethnicity = p.take(coded(
        "ethnicity",
        "民族",
        &ETHNICITIES,
        m.ethnicity.as_deref(),
    ));
    let education = p.take(coded(
        "education",
        "学历",
        &EDUCATIONS,
        m.education.as_deref(),
    ));
    if education.as_deref().is_some_and(dict::is_education_group) {
        p.add("education", "学历类别不能选择，请选择具体学历");
    }
    let category = p.take(coded(
        "category",
        "人员类别",
        &CATEGORIES,
        m.category.as_deref(),
    ));
    let joined_on = match p.take(fields::optional_date(
        "joined_on",
        "加入党组织日期",
        m.joined_on.as_deref(),
    )) {
        Some(None) => {
            p.add("joined_on", "请填写加入党组织日期");
            None
        }
        parsed => parsed.flatten(),
    };
    let joined_on = joined_on.and_then(|j| {
        let j = p.take(fields::not_future("joined_on", "加入党组织日期", j, today))?;
        if j < earliest_join_date() {
            p.add("joined_on", "加入党组织日期不能早于1921年7月1日");
        } else if birth_date.is_some_and(|b| years_between(b, j) < 16) {
            p.add("joined_on", "加入党组织日期与出生日期相差不足16年，请核对");
        }
        Some(j)
    });
    let full_parsed = p.take(fields::optional_date(
        "full_on",
        "转正日期",
        m.full_on.as_deref(),
    ));
    let full_on = match (category.as_deref(), full_parsed) {
        (_, None) => None,
        (Some("full"), Some(None)) => {
            p.add("full_on", "正式党员须填写转正日期");
            None
        }
        (Some("full"), Some(Some(d))) => {
            p.take(fields::not_future("full_on", "转正日期", d, today));
            if let Some(j) = joined_on {
                if d < j {
                    p.add("full_on", "转正日期不能早于加入党组织日期");
                } else if years_between(j, d) < 1 {
                    p.add("full_on", "转正日期与加入党组织日期相差不足1年");
                }
            }
            Some(d)
        }
        (Some(_), Some(Some(_))) => {
            p.add("full_on", "预备党员不填写转正日期");
            None
        }
        (Some(_), Some(None)) => None,
        (None, Some(d)) => d,
    };
    let job = p.take(coded("job", "工作岗位", &JOBS, m.job.as_deref()));
    let phone = p.take(fields::phone("phone", "联系电话", m.phone.as_deref()));
    let address = p.take(fields::required_text(
        "address",
        "家庭住址",
        m.address.as_deref(),
        200,
    ));
    let status = match m.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Some("normal".to_string()),
        Some(s) => {
            let code = dict::code_of(&STATUSES, s).map(str::to_string);
            if code.is_none() {
                p.add("status", format!("党籍状态“{s}”无效"));
            }
            code
        }
    };
    let lost_contact = m.lost_contact.unwrap_or(false);
    let lost_contact_on = if lost_contact {
        match p.take(fields::optional_date(
            "lost_contact_on",
            "失联日期",
            m.lost_contact_on.as_deref(),
        )) {
            Some(None) => {
                p.add("lost_contact_on", "失联党员须填写失联日期");
                None
            }
            Some(Some(d)) => p.take(fields::not_future("lost_contact_on", "失联日期", d, today)),
            None => None,
        }
    } else {
        None
    };
    let floating = m.floating.unwrap_or(false);
    let floating_to = if floating {
        p.take(fields::required_text(
            "floating_to",
            "外出流向",
            m.floating_to.as_deref(),
            100,
        ))
    } else {
        None
    };
    let registered_phone = match m
        .registered_phone
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(v) => p.take(fields::mobile("registered_phone", "注册手机号", Some(v))),
    };
    let origin = p.take(fields::optional_text(
        "origin",
        "籍贯",
        m.origin.as_deref(),
        50,
    ));
    let title = p.take(fields::optional_text(
        "title",
        "职称",
        m.title.as_deref(),
        50,
    ));
    let new_social_stratum = p.take(fields::optional_text(
        "new_social_stratum",
        "新社会阶层情况",
        m.new_social_stratum.as_deref(),
        50,
    ));
    p.finish()?;
    let (
        Some(name),
        Some(id),
        Some(sex),
        Some(birth_date),
        Some(ethnicity),
        Some(education),
        Some(category),
        Some(joined_on),
        Some(job),
        Some(phone),
        Some(address),
        Some(status),
        Some(origin),
        Some(title),
        Some(new_social_stratum),
    ) = (
        name,
        id,
        sex,
        birth_date,
        ethnicity,
        education,
        category,
        joined_on,
        job,
        phone,
        address,
        status,
        origin,
        title,
        new_social_stratum,
    )
    else {
        return Err(fields::unset());
    };
    let mut v = ValidMember {
        name,
        id_number: id.as_str().to_string(),
        sex,
        ethnicity,
        birth_date,
        education,
        category,
        joined_on,
        full_on,
        job,
        phone,
        address,
        status,
        lost_contact,
        lost_contact_on,
        floating,
        floating_to,
        registered_phone,
        origin,
        title,
        new_social_stratum,
        completeness: 0,
    };
    v.completeness = completeness(&v);
    Ok(v)
}

/// 信息完整度: the percentage of required plus recommended fields filled.
pub fn completeness(v: &ValidMember) -> i64 {
    let filled = [
        !v.name.is_empty(),
        v.id_number != idcard::UNKNOWN_ID_NUMBER,
        !v.sex.is_empty(),
        !v.ethnicity.is_empty(),
        true, // birth date
        !v.education.is_empty(),
        !v.category.is_empty(),
        true, // join date
        v.category != "full" || v.full_on.is_some(),
        !v.job.is_empty(),
        !v.phone.is_empty(),
        !v.address.is_empty(),
        v.registered_phone.is_some(),
        !v.origin.is_empty(),
        !v.title.is_empty(),
    ];
    let n = filled.iter().filter(|&&f| f).count() as i64;
    (n * 100 + filled.len() as i64 / 2) / filled.len() as i64
}

/// The fields a letter of transfer carries: refused while a transfer is in progress.
pub const LETTER_FIELDS: [&str; 6] = [
    "name",
    "sex",
    "ethnicity",
    "birth_date",
    "category",
    "id_number",
];

/// An edit merged over the stored record. Changing the person category to probationary clears
/// the full-membership date that depends on it.
pub fn merge(current: &MemberRow, patch: &MemberInput) -> MemberInput {
    let keep = |p: &Option<String>, c: &str| p.clone().or_else(|| Some(c.to_string()));
    let keep_opt = |p: &Option<String>, c: &Option<String>| p.clone().or_else(|| c.clone());
    let becomes_probationary = patch.category.as_deref().map(str::trim) == Some("probationary")
        || patch.category.as_deref().map(str::trim) == Some("预备党员");
    MemberInput {
        name: keep(&patch.name, &current.name),
        id_number: keep(&patch.id_number, &current.id_number),
        sex: keep(&patch.sex, &current.sex),
        ethnicity: keep(&patch.ethnicity, &current.ethnicity),
        birth_date: keep(&patch.birth_date, &current.birth_date),
        education: keep(&patch.education, &current.education),
        category: keep(&patch.category, &current.category),
        branch_id: keep(&patch.branch_id, &current.branch_id),
        joined_on: keep(&patch.joined_on, &current.joined_on),
        full_on: if becomes_probationary && patch.full_on.is_none() {
            None
        } else {
            keep_opt(&patch.full_on, &current.full_on)
        },
        job: keep(&patch.job, &current.job),
        phone: keep(&patch.phone, &current.phone),
        address: keep(&patch.address, &current.address),
        status: keep(&patch.status, &current.status),
        lost_contact: patch.lost_contact.or(Some(current.lost_contact != 0)),
        lost_contact_on: keep_opt(&patch.lost_contact_on, &current.lost_contact_on),
        floating: patch.floating.or(Some(current.floating != 0)),
        floating_to: keep_opt(&patch.floating_to, &current.floating_to),
        registered_phone: keep_opt(&patch.registered_phone, &current.registered_phone),
        origin: keep(&patch.origin, &current.origin),
        title: keep(&patch.title, &current.title),
        new_social_stratum: keep(&patch.new_social_stratum, &current.new_social_stratum),
        confirm_contradictions: patch.confirm_contradictions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    fn good() -> MemberInput {
        let birth = NaiveDate::from_ymd_opt(1980, 5, 17).unwrap();
        MemberInput {
            name: Some("王测试".into()),
            id_number: Some(idcard::compose("370102", birth, 217)),
            ethnicity: Some("01".into()),
            education: Some("21".into()),
            category: Some("full".into()),
            joined_on: Some("2005-07-01".into()),
            full_on: Some("2006-07-01".into()),
            job: Some("worker".into()),
            phone: Some("13800000000".into()),
            address: Some("某市某区某路1号".into()),
            ..MemberInput::default()
        }
    }

    fn field_of(m: &MemberInput) -> Option<String> {
        validate(m, today()).err().and_then(|e| e.field)
    }

    fn fields_of(m: &MemberInput) -> Vec<String> {
        validate(m, today())
            .err()
            .map(|e| e.errors.into_iter().map(|f| f.field).collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_field_at_fault_is_named_at_once_in_form_order() {
        let mut m = good();
        m.name = Some("王2".into());
        m.phone = Some("12345".into());
        m.joined_on = Some("2005/07/01".into());
        m.education = None;
        assert_eq!(fields_of(&m), ["name", "education", "joined_on", "phone"]);
        let e = validate(&m, today()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        assert!(e.message.starts_with("共有4处需要修改"), "{}", e.message);
        // An empty form: every required field, but no second error for sex and birth date.
        assert_eq!(
            fields_of(&MemberInput::default()),
            [
                "name",
                "id_number",
                "ethnicity",
                "education",
                "category",
                "joined_on",
                "job",
                "phone",
                "address"
            ]
        );
    }

    #[test]
    fn contradictions_with_the_id_number_need_confirmation() {
        let mut m = good();
        m.sex = Some("female".into());
        m.birth_date = Some("1980-05-18".into());
        assert_eq!(fields_of(&m), ["sex", "birth_date"]);
        m.confirm_contradictions = Some(true);
        let v = validate(&m, today()).unwrap();
        assert_eq!(v.sex, "female");
        let tags: Vec<&str> = contradictions(&v.id_number, &v.sex, v.birth_date, today())
            .iter()
            .map(|c| c.tag)
            .collect();
        assert_eq!(tags, ["性别与身份证号不一致", "出生日期与身份证号不一致"]);
        // Already on the record: an edit needs no new confirmation for them.
        m.confirm_contradictions = None;
        assert!(validate_accepting(&m, today(), &["sex", "birth_date"]).is_ok());
        // The all-zero placeholder too.
        let mut m = good();
        m.id_number = Some(idcard::UNKNOWN_ID_NUMBER.into());
        m.sex = Some("male".into());
        m.birth_date = Some("1980-01-01".into());
        assert_eq!(fields_of(&m), ["id_number"]);
    }

    #[test]
    fn education_group_headings_cannot_be_chosen() {
        let mut m = good();
        m.education = Some("20".into());
        assert_eq!(fields_of(&m), ["education"]);
        m.education = Some("90".into());
        assert!(validate(&m, today()).is_ok());
    }

    #[test]
    fn a_good_member_passes_with_derived_sex_and_birth_date() {
        let v = validate(&good(), today()).unwrap();
        assert_eq!(v.sex, "male");
        assert_eq!(v.birth_date, NaiveDate::from_ymd_opt(1980, 5, 17).unwrap());
        assert!(v.completeness > 50 && v.completeness < 100);
    }

    #[test]
    fn join_less_than_16_years_after_birth_is_refused() {
        let mut m = good();
        m.joined_on = Some("1995-01-01".into());
        m.full_on = Some("1996-02-01".into());
        assert_eq!(field_of(&m).as_deref(), Some("joined_on"));
    }

    #[test]
    fn full_date_less_than_a_year_after_joining_is_refused() {
        let mut m = good();
        m.full_on = Some("2006-06-30".into());
        assert_eq!(field_of(&m).as_deref(), Some("full_on"));
    }

    #[test]
    fn future_dates_are_refused() {
        let mut m = good();
        m.joined_on = Some("2027-01-01".into());
        assert_eq!(field_of(&m).as_deref(), Some("joined_on"));
        let mut m = good();
        m.full_on = Some("2030-01-01".into());
        assert_eq!(field_of(&m).as_deref(), Some("full_on"));
    }

    #[test]
    fn probationary_members_have_no_full_date() {
        let mut m = good();
        m.category = Some("probationary".into());
        assert_eq!(field_of(&m).as_deref(), Some("full_on"));
        m.full_on = None;
        assert!(validate(&m, today()).is_ok());
    }

    #[test]
    fn under_18_is_refused() {
        let mut m = good();
        let birth = NaiveDate::from_ymd_opt(2010, 1, 1).unwrap();
        m.id_number = Some(idcard::compose("370102", birth, 11));
        assert_eq!(field_of(&m).as_deref(), Some("birth_date"));
    }

    #[test]
    fn unknown_id_needs_sex_and_birth_date() {
        let mut m = good();
        m.id_number = Some(idcard::UNKNOWN_ID_NUMBER.into());
        assert_eq!(fields_of(&m), ["sex", "birth_date"]);
        m.sex = Some("female".into());
        assert_eq!(field_of(&m).as_deref(), Some("birth_date"));
        m.birth_date = Some("1980-01-01".into());
        assert_eq!(field_of(&m).as_deref(), Some("id_number"));
        m.confirm_contradictions = Some(true);
        assert!(validate(&m, today()).is_ok());
    }

    #[test]
    fn bad_codes_name_their_field() {
        let mut m = good();
        m.ethnicity = Some("99".into());
        assert_eq!(field_of(&m).as_deref(), Some("ethnicity"));
        let mut m = good();
        m.phone = Some("12345".into());
        assert_eq!(field_of(&m).as_deref(), Some("phone"));
        let mut m = good();
        m.joined_on = Some("1920-01-01".into());
        m.id_number = Some(idcard::compose(
            "370102",
            NaiveDate::from_ymd_opt(1900, 1, 1).unwrap(),
            1,
        ));
        m.full_on = Some("1921-01-01".into());
        assert_eq!(field_of(&m).as_deref(), Some("joined_on"));
    }
}
