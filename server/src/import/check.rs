//! Validation of the rows of a summary sheet (pure): every row through the member rules
//! (`member::rules::validate`, as `POST /members`), its branch from the organisation code
//! column, and the uniqueness of ID numbers and registered phones against the database (sets
//! of blind indexes fetched once) and within the file. Every problem of a row is reported.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::sheet::SheetRow;
use super::{label_of, RowProblem, COLUMNS};
use crate::crypto::{Column, Keys};
use crate::member::idcard::UNKNOWN_ID_NUMBER;
use crate::member::rules::{self, MemberInput, ValidMember};

/// An organisation below the import's target, by its code.
#[derive(Debug, Clone)]
pub struct Branch {
    pub id: String,
    pub code: String,
    pub name: String,
    /// 631/632/9
    pub is_branch: bool,
    pub active: bool,
}

/// The blind indexes already taken in the database.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    /// `members.id_number_idx`
    pub id_numbers: HashSet<String>,
    /// `members.registered_phone_idx`
    pub registered_phones: HashSet<String>,
    /// `member_history.registered_phone_idx` not yet cancelled 注销
    pub held_phones: HashSet<String>,
}

/// A row that passed: kept (sealed) until the import is confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoodRow {
    pub row: u32,
    pub branch_id: String,
    pub branch_code: String,
    pub member: ValidMember,
}

/// What the validation of some rows found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub good: Vec<GoodRow>,
    pub problems: Vec<RowProblem>,
    pub bad_rows: u64,
}

/// The rows seen so far in the file: blind index → first row holding it.
#[derive(Debug, Default)]
pub struct Seen {
    id_numbers: HashMap<String, u32>,
    registered_phones: HashMap<String, u32>,
}

/// The member input of a sheet row.
pub fn input_of(r: &SheetRow) -> MemberInput {
    let opt = |key: &str| {
        let v = r.get(key);
        (!v.is_empty()).then(|| v.to_string())
    };
    MemberInput {
        name: opt("name"),
        id_number: opt("id_number"),
        sex: opt("sex"),
        ethnicity: opt("ethnicity"),
        birth_date: opt("birth_date"),
        education: opt("education"),
        category: opt("category"),
        joined_on: opt("joined_on"),
        full_on: opt("full_on"),
        job: opt("job"),
        phone: opt("phone"),
        address: opt("address"),
        registered_phone: opt("registered_phone"),
        origin: opt("origin"),
        title: opt("title"),
        new_social_stratum: opt("new_social_stratum"),
        ..MemberInput::default()
    }
}

/// Validates `rows` in order, adding to `out`. `seen` carries the file's earlier rows across
/// calls (rows are checked in batches to report progress).
pub fn check(
    rows: &[SheetRow],
    branches: &HashMap<String, Branch>,
    taken: &Taken,
    seen: &mut Seen,
    keys: &Keys,
    today: NaiveDate,
    out: &mut Outcome,
) {
    for r in rows {
        let mut problems: Vec<RowProblem> = Vec::new();
        let mut add = |field: &str, reason: String| {
            problems.push(RowProblem {
                row: r.row,
                field: label_of(field),
                reason,
            })
        };
        let code = r.get("org_code");
        let branch = if code.is_empty() {
            add("org_code", "请填写党组织代码".to_string());
            None
        } else {
            match branches.get(code) {
                None => {
                    add(
                        "org_code",
                        format!("党组织代码“{code}”不存在或不在本次导入的党组织之下"),
                    );
                    None
                }
                Some(b) if !b.is_branch => {
                    add(
                        "org_code",
                        format!(
                            "“{}”不是党支部，党员只能隶属于党支部、联合党支部或临时基层党组织",
                            b.name
                        ),
                    );
                    None
                }
                Some(b) if !b.active => {
                    add(
                        "org_code",
                        format!("党组织“{}”已撤销，不能录入党员", b.name),
                    );
                    None
                }
                Some(b) => Some(b),
            }
        };
        let valid = match rules::validate(&input_of(r), today) {
            Ok(v) => Some(v),
            Err(e) => {
                if e.errors.is_empty() {
                    add(e.field.as_deref().unwrap_or(""), e.message);
                }
                for f in e.errors {
                    // The direct-entry form's hint has no checkbox here.
                    let reason = f
                        .message
                        .replace("；如已核实无误，请勾选“已核实”后保存", "");
                    add(&f.field, reason);
                }
                None
            }
        };
        if let Some(v) = &valid {
            if v.id_number != UNKNOWN_ID_NUMBER {
                let ix = keys.index(Column::MembersIdNumber, &v.id_number);
                if taken.id_numbers.contains(&ix) {
                    add(
                        "id_number",
                        "该公民身份证号已存在于党员信息库中".to_string(),
                    );
                } else if let Some(first) = seen.id_numbers.get(&ix) {
                    add("id_number", format!("与第{first}行的公民身份证号重复"));
                } else {
                    seen.id_numbers.insert(ix, r.row);
                }
            }
            if let Some(p) = &v.registered_phone {
                let ix = keys.index(Column::MembersRegisteredPhone, p);
                if taken.registered_phones.contains(&ix) {
                    add(
                        "registered_phone",
                        "该注册手机号已被其他党员使用".to_string(),
                    );
                } else if taken.held_phones.contains(&ix) {
                    add(
                        "registered_phone",
                        "该注册手机号仍登记在历史党员名下，须先注销手机号".to_string(),
                    );
                } else if let Some(first) = seen.registered_phones.get(&ix) {
                    add("registered_phone", format!("与第{first}行的注册手机号重复"));
                } else {
                    seen.registered_phones.insert(ix, r.row);
                }
            }
        }
        match (problems.is_empty(), branch, valid) {
            (true, Some(b), Some(member)) => out.good.push(GoodRow {
                row: r.row,
                branch_id: b.id.clone(),
                branch_code: b.code.clone(),
                member,
            }),
            _ => {
                out.bad_rows += 1;
                // In the template's column order.
                problems.sort_by_key(|p| {
                    COLUMNS
                        .iter()
                        .position(|c| c.label == p.field)
                        .unwrap_or(COLUMNS.len())
                });
                for p in problems {
                    if out.problems.len() < super::MAX_PROBLEMS {
                        out.problems.push(p);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::idcard;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    fn row(n: u32, id: &str, name: &str, phone: Option<&str>) -> SheetRow {
        let mut cells = vec![String::new(); COLUMNS.len()];
        let mut set = |k: &str, v: &str| {
            let i = COLUMNS.iter().position(|c| c.key == k).unwrap();
            cells[i] = v.to_string();
        };
        set("org_code", "63101");
        set("name", name);
        set("id_number", id);
        set("ethnicity", "汉族");
        set("education", "大学本科毕业");
        set("category", "正式党员");
        set("joined_on", "2005-07-01");
        set("full_on", "2006-07-01");
        set("job", "在岗职工");
        set("phone", "13800000000");
        set("address", "某市某路1号");
        if let Some(p) = phone {
            set("registered_phone", p);
        }
        SheetRow { row: n, cells }
    }

    #[test]
    fn every_problem_of_a_row_is_named_and_duplicates_found() {
        let keys = crate::crypto::Keys::from_file(&crate::crypto::KeyFile::generate()).unwrap();
        let birth = NaiveDate::from_ymd_opt(1980, 5, 17).unwrap();
        let a = idcard::compose("370102", birth, 217);
        let b = idcard::compose("370102", birth, 219);
        let c = idcard::compose("370102", birth, 221);
        let mut branches = HashMap::new();
        branches.insert(
            "63101".to_string(),
            Branch {
                id: "b1".into(),
                code: "63101".into(),
                name: "第一党支部".into(),
                is_branch: true,
                active: true,
            },
        );
        let mut taken = Taken::default();
        taken
            .id_numbers
            .insert(keys.index(Column::MembersIdNumber, &c));
        let mut bad = row(3, &a, "王2", Some("13900000001"));
        bad.cells[0] = "99999".into();
        let rows = vec![
            row(2, &a, "王一", Some("13900000001")),
            bad,
            row(4, &b, "王二", Some("13900000001")),
            row(5, &c, "王三", None),
        ];
        let mut out = Outcome::default();
        check(
            &rows,
            &branches,
            &taken,
            &mut Seen::default(),
            &keys,
            today(),
            &mut out,
        );
        assert_eq!(out.good.len(), 1);
        assert_eq!(out.bad_rows, 3);
        let got: Vec<(u32, &str)> = out
            .problems
            .iter()
            .map(|p| (p.row, p.field.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (3, "党组织代码"),
                (3, "姓名"),
                (4, "注册手机号"),
                (5, "公民身份证号")
            ]
        );
        assert!(out.problems[2].reason.contains("第2行"));
    }
}
