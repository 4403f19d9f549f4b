//! The pure part of the query: the field whitelist of each kind (key, Chinese label, the SQL
//! expression it reads, its type and so its modes), the shown columns and their orders, and
//! the translation of checked conditions into a WHERE fragment with bound values. Column
//! names come only from the tables below; user text is only ever bound. No IO.

use crate::crypto::{Column, Keys};
use crate::db::Sql;
use crate::error::ApiError;
use crate::fields::Problems;

use super::{Condition, Kind, Mode, SortSpec};

/// The type of a field, which decides its modes.
#[derive(Debug, Clone, Copy)]
pub enum Type {
    /// Free text: 模糊, 精准, 左匹配, 右匹配, 多选.
    Text,
    /// A code from a fixed list (stored as text): 精准, 多选.
    Code(&'static [(&'static str, &'static str)]),
    /// A code from a fixed list stored as an integer: 精准, 多选.
    IntCode(&'static [(&'static str, &'static str)]),
    /// A date YYYY-MM-DD: 时间区间, 精准.
    Date,
    /// A yes/no flag stored as 0/1: 精准.
    Flag,
    /// A whole number: 精准, 时间区间 (a numeric range).
    Number,
    /// A sealed value (AES-GCM): 模糊, 精准, 左匹配, 右匹配.
    Sealed(Column),
}

impl Type {
    pub fn modes(self) -> &'static [Mode] {
        match self {
            Type::Text => &[
                Mode::Fuzzy,
                Mode::Exact,
                Mode::Left,
                Mode::Right,
                Mode::Multi,
            ],
            Type::Code(_) | Type::IntCode(_) => &[Mode::Multi, Mode::Exact],
            Type::Date => &[Mode::Range, Mode::Exact],
            Type::Flag => &[Mode::Exact],
            Type::Number => &[Mode::Exact, Mode::Range],
            Type::Sealed(_) => &[Mode::Fuzzy, Mode::Exact, Mode::Left, Mode::Right],
        }
    }

    /// The choices of a coded field (flags: 是/否).
    pub fn choices(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Type::Code(c) | Type::IntCode(c) => c,
            Type::Flag => &[("1", "是"), ("0", "否")],
            _ => &[],
        }
    }
}

/// A field a condition may name.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    /// The SQL expression read (a column of the kind's FROM clause).
    pub column: &'static str,
    pub ty: Type,
}

/// A column the results show.
#[derive(Debug, Clone, Copy)]
pub struct Shown {
    pub key: &'static str,
    pub label: &'static str,
    /// The ORDER BY expression and whether ascending on it reads descending on the column
    /// (age orders by birth date reversed); none: not sortable.
    pub sort: Option<(&'static str, bool)>,
}

pub const SEXES: [(&str, &str); 2] = [("male", "男"), ("female", "女")];
pub const ORG_STATUSES: [(&str, &str); 2] = [("active", "正常"), ("revoked", "已撤销")];
pub const ORG_CATEGORIES: [(&str, &str); 10] = [
    ("1", "中共各级委员会"),
    ("2", "中共各级工作委员会"),
    ("3", "党组"),
    ("4", "政府工作部门党委(党工委、总支部、支部)"),
    ("5", "中共军队委员会"),
    ("611", "党委"),
    ("621", "党总支"),
    ("631", "党支部"),
    ("632", "联合党支部"),
    ("9", "临时基层党组织"),
];
pub const ORG_LEVELS: [(&str, &str); 4] = [
    ("county", "县级"),
    ("city", "市级"),
    ("province", "省级"),
    ("central", "中央"),
];
pub const UNIT_MODES: [(&str, &str); 3] = [
    ("same_as_parent", "与上级党组织相同"),
    ("legal_entity", "法人单位"),
    ("joint", "联合党支部"),
];
pub const PARTY_ORG_SITUATIONS: [(&str, &str); 4] = [
    ("1", "单独建立基层党组织的"),
    ("2", "建立联合党支部的"),
    ("3", "应建未建立党组织的(3名及以上党员)"),
    ("4", "未建立党组织的(不足3名党员)"),
];

use crate::member::dict::{CATEGORIES, EDUCATIONS, ETHNICITIES, JOBS, STATUSES};

const MEMBER_FIELDS: &[Field] = &[
    f("status", "党籍状态", "m.status", Type::Code(&STATUSES)),
    f("name", "姓名", "m.name", Type::Text),
    f("sex", "性别", "m.sex", Type::Code(&SEXES)),
    f("ethnicity", "民族", "m.ethnicity", Type::Code(&ETHNICITIES)),
    f(
        "id_number",
        "公民身份证号",
        "m.id_number",
        Type::Sealed(Column::MembersIdNumber),
    ),
    f("birth_date", "出生日期", "m.birth_date", Type::Date),
    f("education", "学历", "m.education", Type::Code(&EDUCATIONS)),
    f(
        "category",
        "人员类别",
        "m.category",
        Type::Code(&CATEGORIES),
    ),
    f("job", "工作岗位", "m.job", Type::Code(&JOBS)),
    f("joined_on", "入党日期", "m.joined_on", Type::Date),
    f("full_on", "转正日期", "m.full_on", Type::Date),
    f(
        "phone",
        "联系电话",
        "m.phone",
        Type::Sealed(Column::MembersPhone),
    ),
    f("address", "家庭住址", "m.address", Type::Text),
    f("lost_contact", "失联党员", "m.lost_contact", Type::Flag),
    f(
        "lost_contact_on",
        "失联日期",
        "m.lost_contact_on",
        Type::Date,
    ),
    f("floating", "流动党员", "m.floating", Type::Flag),
    f("floating_to", "外出流向", "m.floating_to", Type::Text),
    f("origin", "籍贯", "m.origin", Type::Text),
    f("title", "职称", "m.title", Type::Text),
    f(
        "new_social_stratum",
        "新社会阶层情况",
        "m.new_social_stratum",
        Type::Text,
    ),
    f("in_transfer", "组织关系转接中", "m.in_transfer", Type::Flag),
    f("completeness", "信息完整度", "m.completeness", Type::Number),
    f("branch", "所在党支部", "b.name", Type::Text),
];

/// The name of an organisation's unit (its default unit first).
macro_rules! org_unit_name {
    () => {
        "(SELECT un.name FROM org_units ou JOIN units un ON un.id = ou.unit_id \
         WHERE ou.org_id = o.id ORDER BY ou.is_default DESC, un.name LIMIT 1)"
    };
}
pub const ORG_UNIT_NAME: &str = org_unit_name!();

const ORG_FIELDS: &[Field] = &[
    f("name", "党组织名称", "o.name", Type::Text),
    f("short_name", "党组织简称", "o.short_name", Type::Text),
    f("code", "党组织代码", "o.code", Type::Text),
    f(
        "category",
        "党组织类别",
        "o.category",
        Type::Code(&ORG_CATEGORIES),
    ),
    f("level", "党组织级别", "o.level", Type::Code(&ORG_LEVELS)),
    f("status", "状态", "o.status", Type::Code(&ORG_STATUSES)),
    f("secretary", "书记", "o.secretary", Type::Text),
    f("contact_name", "联系人", "o.contact_name", Type::Text),
    f(
        "contact_phone",
        "联系电话",
        "o.contact_phone",
        Type::Sealed(Column::OrgsContactPhone),
    ),
    f(
        "subordination",
        "隶属关系",
        "o.subordination",
        Type::Code(&crate::org::rules::SUBORDINATIONS),
    ),
    f("founded_on", "成立日期", "o.founded_on", Type::Date),
    f(
        "unit_mode",
        "所在单位情况",
        "o.unit_mode",
        Type::Code(&UNIT_MODES),
    ),
    f("unit", "所在单位", ORG_UNIT_NAME, Type::Text),
    f("parent", "上级党组织", "p.name", Type::Text),
];

const UNIT_FIELDS: &[Field] = &[
    f("name", "单位名称", "u.name", Type::Text),
    f(
        "credit_code",
        "统一社会信用代码",
        "u.credit_code",
        Type::Text,
    ),
    f(
        "category",
        "单位类别",
        "u.category",
        Type::Code(&crate::unit::UNIT_CATEGORIES),
    ),
    f("subcategory", "单位子类别", "u.subcategory", Type::Text),
    f(
        "has_party_group",
        "是否建立党组",
        "u.has_party_group",
        Type::Flag,
    ),
    f(
        "party_org_situation",
        "建立党组织情况",
        "u.party_org_situation",
        Type::IntCode(&PARTY_ORG_SITUATIONS),
    ),
    f("owner", "隶属党组织", "ow.name", Type::Text),
];

const fn f(key: &'static str, label: &'static str, column: &'static str, ty: Type) -> Field {
    Field {
        key,
        label,
        column,
        ty,
    }
}

const fn s(key: &'static str, label: &'static str, sort: Option<(&'static str, bool)>) -> Shown {
    Shown { key, label, sort }
}

const MEMBER_SHOWN: &[Shown] = &[
    s("name", "姓名", Some(("m.sort_pinyin", false))),
    s("sex", "性别", Some(("m.sex", false))),
    s("age", "年龄", Some(("m.birth_date", true))),
    s("ethnicity", "民族", Some(("m.ethnicity", false))),
    s("education", "学历", Some(("m.education", false))),
    s("category", "人员类别", Some(("m.category", false))),
    s("branch", "所在党支部", Some(("b.name", false))),
    s("joined_on", "入党日期", Some(("m.joined_on", false))),
    s("status", "党籍状态", Some(("m.status", false))),
    s("id_number", "公民身份证号", None),
    s(
        "completeness",
        "信息完整度",
        Some(("m.completeness", false)),
    ),
];

const ORG_SHOWN: &[Shown] = &[
    s("name", "党组织名称", Some(("o.name", false))),
    s("code", "党组织代码", Some(("o.code", false))),
    s("category", "党组织类别", Some(("o.category", false))),
    s(
        "parent",
        "上级党组织",
        Some(("COALESCE(p.name, '')", false)),
    ),
    s(
        "unit",
        "所在单位",
        Some((concat!("COALESCE(", org_unit_name!(), ", '')"), false)),
    ),
    s("secretary", "书记", Some(("o.secretary", false))),
    s(
        "founded_on",
        "成立日期",
        Some(("COALESCE(o.founded_on, '')", false)),
    ),
    s("status", "状态", Some(("o.status", false))),
];

const UNIT_SHOWN: &[Shown] = &[
    s("name", "单位名称", Some(("u.name", false))),
    s(
        "credit_code",
        "统一社会信用代码",
        Some(("u.credit_code", false)),
    ),
    s("category", "单位类别", Some(("u.category", false))),
    s(
        "party_org_situation",
        "建立党组织情况",
        Some(("u.party_org_situation", false)),
    ),
    s(
        "has_party_group",
        "是否建立党组",
        Some(("u.has_party_group", false)),
    ),
    s("owner", "隶属党组织", Some(("ow.name", false))),
];

/// The fields of a kind, in the order the page offers them.
pub fn fields(kind: Kind) -> &'static [Field] {
    match kind {
        Kind::Members => MEMBER_FIELDS,
        Kind::Orgs => ORG_FIELDS,
        Kind::Units => UNIT_FIELDS,
    }
}

pub fn field(kind: Kind, key: &str) -> Option<&'static Field> {
    fields(kind).iter().find(|f| f.key == key)
}

/// The shown columns of a kind.
pub fn shown(kind: Kind) -> &'static [Shown] {
    match kind {
        Kind::Members => MEMBER_SHOWN,
        Kind::Orgs => ORG_SHOWN,
        Kind::Units => UNIT_SHOWN,
    }
}

/// The conditions the page starts with: 党籍状态, 姓名, 性别, 民族, 公民身份证号 for members;
/// the first fields for the other kinds.
pub fn default_conditions(kind: Kind) -> Vec<Condition> {
    let keys: &[&str] = match kind {
        Kind::Members => &["status", "name", "sex", "ethnicity", "id_number"],
        Kind::Orgs => &["name", "category", "code"],
        Kind::Units => &["name", "category", "credit_code"],
    };
    keys.iter()
        .filter_map(|k| field(kind, k))
        .map(|f| Condition {
            field: f.key.to_string(),
            mode: f.ty.modes()[0].as_str().to_string(),
            ..Condition::default()
        })
        .collect()
}

/// The sizes a page may have 每页显示.
pub const PAGE_SIZES: [i64; 4] = [10, 20, 50, 100];
/// Most conditions one query carries.
pub const MAX_CONDITIONS: usize = 50;
/// Most characters of a value.
pub const MAX_VALUE_CHARS: usize = 100;
/// Most choices of a 多选 condition.
pub const MAX_VALUES: usize = 100;

/// A condition on a sealed value that the database cannot answer: checked on the opened
/// value of each candidate.
#[derive(Debug, Clone)]
pub struct SealedCheck {
    /// The sealed column read (a key of the kind's row).
    pub column: Column,
    pub mode: Mode,
    /// Normalised needle (ID numbers upper-case).
    pub needle: String,
}

impl SealedCheck {
    pub fn matches(&self, plain: &str) -> bool {
        let v = normalise(self.column, plain);
        match self.mode {
            Mode::Fuzzy => v.contains(&self.needle),
            Mode::Exact => v == self.needle,
            Mode::Left => v.starts_with(&self.needle),
            Mode::Right => v.ends_with(&self.needle),
            Mode::Multi | Mode::Range => false,
        }
    }
}

fn normalise(column: Column, v: &str) -> String {
    if column == Column::MembersIdNumber {
        v.trim().to_ascii_uppercase()
    } else {
        v.trim().to_string()
    }
}

/// The checked conditions: the WHERE fragment (each part `AND …`, values bound) and the
/// checks left for the opened values.
#[derive(Debug, Default)]
pub struct Plan {
    pub sql: Sql,
    pub sealed: Vec<SealedCheck>,
}

/// The checked order: ORDER BY text from the whitelist, ties by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub key: &'static str,
    pub desc: bool,
}

impl Order {
    pub fn default_for(kind: Kind) -> Order {
        Order {
            key: shown(kind)[0].key,
            desc: false,
        }
    }

    /// `expr ASC|DESC, <id> ASC`.
    pub fn sql(self, kind: Kind) -> String {
        let (expr, reversed) = shown(kind)
            .iter()
            .find(|s| s.key == self.key)
            .and_then(|s| s.sort)
            .unwrap_or(("''", false));
        let id = match kind {
            Kind::Members => "m.id",
            Kind::Orgs => "o.id",
            Kind::Units => "u.id",
        };
        let desc = self.desc != reversed;
        format!("{expr} {}, {id}", if desc { "DESC" } else { "ASC" })
    }
}

/// Checks an order: a sortable shown column and asc/desc.
pub fn check_sort(kind: Kind, sort: Option<&SortSpec>, p: &mut Problems) -> Order {
    let Some(spec) = sort else {
        return Order::default_for(kind);
    };
    let mut order = Order::default_for(kind);
    match shown(kind).iter().find(|s| s.key == spec.field) {
        Some(s) if s.sort.is_some() => order.key = s.key,
        Some(s) => p.add("sort.field", format!("不能按“{}”排序", s.label)),
        None => p.add("sort.field", "排序字段不正确"),
    }
    match spec.dir.as_deref().map(str::trim) {
        None | Some("") | Some("asc") => {}
        Some("desc") => order.desc = true,
        Some(_) => p.add("sort.dir", "排序方向只能是 asc 或 desc"),
    }
    order
}

/// Checks a page and a page size.
pub fn check_paging(page: Option<i64>, page_size: Option<i64>, p: &mut Problems) -> (i64, i64) {
    let page = match page {
        None => 1,
        Some(n) if n >= 1 => n,
        Some(_) => {
            p.add("page", "页码应为不小于1的整数");
            1
        }
    };
    let size = match page_size {
        None => 20,
        Some(n) if PAGE_SIZES.contains(&n) => n,
        Some(_) => {
            p.add("page_size", "每页显示条数只能是 10、20、50 或 100");
            20
        }
    };
    (page, size)
}

fn blank(v: &Option<String>) -> bool {
    v.as_deref().map(str::trim).unwrap_or("").is_empty()
}

/// Is the condition without content (and so ignored)?
pub fn is_empty(c: &Condition) -> bool {
    blank(&c.value)
        && c.values
            .as_deref()
            .is_none_or(|vs| vs.iter().all(|v| v.trim().is_empty()))
        && blank(&c.from)
        && blank(&c.to)
}

/// `LIKE` pattern text with its wildcards escaped (`ESCAPE '\'`).
pub fn like_escape(s: &str) -> String {
    crate::transfer::records::like_escape(s)
}

fn push_like(sql: &mut Sql, column: &str, pattern: String) {
    sql.push(" AND ")
        .push(column)
        .push(" LIKE ")
        .bind(pattern)
        .push(" ESCAPE '\\'");
}

/// Checks every condition (each fault named, in Chinese, with its position) and writes the
/// plan. `keys` computes blind indexes of sealed values asked for exactly.
pub fn plan(
    kind: Kind,
    conditions: &[Condition],
    keys: &Keys,
    p: &mut Problems,
    base: Sql,
) -> Plan {
    let mut plan = Plan {
        sql: base,
        sealed: Vec::new(),
    };
    if conditions.len() > MAX_CONDITIONS {
        p.add("conditions", format!("查询条件不能超过{MAX_CONDITIONS}个"));
        return plan;
    }
    for (i, c) in conditions.iter().enumerate() {
        let at = |part: &str| format!("conditions[{i}].{part}");
        let n = i + 1;
        let Some(field) = field(kind, c.field.trim()) else {
            p.add(
                &at("field"),
                format!("第{n}个条件：没有“{}”这个查询项", c.field),
            );
            continue;
        };
        let label = field.label;
        let Some(mode) = Mode::parse(c.mode.trim()) else {
            p.add(
                &at("mode"),
                format!("第{n}个条件（{label}）：匹配方式不正确"),
            );
            continue;
        };
        if !field.ty.modes().contains(&mode) {
            let allowed: Vec<&str> = field.ty.modes().iter().map(|m| m.label()).collect();
            p.add(
                &at("mode"),
                format!(
                    "第{n}个条件（{label}）：不能使用“{}”，可用：{}",
                    mode.label(),
                    allowed.join("、")
                ),
            );
            continue;
        }
        if is_empty(c) {
            continue;
        }
        let too_long =
            |v: &str| v.chars().count() > MAX_VALUE_CHARS || v.chars().any(char::is_control);
        match mode {
            Mode::Fuzzy | Mode::Exact | Mode::Left | Mode::Right => {
                let v = c.value.as_deref().map(str::trim).unwrap_or("");
                if v.is_empty() {
                    p.add(
                        &at("value"),
                        format!("第{n}个条件（{label}）：请填写查询内容"),
                    );
                    continue;
                }
                if too_long(v) {
                    p.add(
                        &at("value"),
                        format!("第{n}个条件（{label}）：内容不能超过{MAX_VALUE_CHARS}个字，且不能含控制字符"),
                    );
                    continue;
                }
                match field.ty {
                    Type::Text => {
                        let e = like_escape(v);
                        match mode {
                            Mode::Exact => {
                                plan.sql
                                    .push(" AND ")
                                    .push(field.column)
                                    .push(" = ")
                                    .bind(v);
                            }
                            Mode::Fuzzy => push_like(&mut plan.sql, field.column, format!("%{e}%")),
                            Mode::Left => push_like(&mut plan.sql, field.column, format!("{e}%")),
                            _ => push_like(&mut plan.sql, field.column, format!("%{e}")),
                        }
                    }
                    Type::Code(_) | Type::IntCode(_) | Type::Flag => {
                        let Some(code) = code_of(field.ty, v) else {
                            p.add(
                                &at("value"),
                                format!("第{n}个条件（{label}）：“{v}”不是可选的值"),
                            );
                            continue;
                        };
                        push_code_eq(&mut plan.sql, field, code);
                    }
                    Type::Date => {
                        let Some(d) = check_date(v) else {
                            p.add(&at("value"), format!("第{n}个条件（{label}）：“{v}”不是有效日期，格式应为 YYYY-MM-DD"));
                            continue;
                        };
                        plan.sql
                            .push(" AND ")
                            .push(field.column)
                            .push(" = ")
                            .bind(d);
                    }
                    Type::Number => {
                        let Ok(x) = v.parse::<i64>() else {
                            p.add(&at("value"), format!("第{n}个条件（{label}）：应为整数"));
                            continue;
                        };
                        plan.sql
                            .push(" AND ")
                            .push(field.column)
                            .push(" = ")
                            .bind_int(x);
                    }
                    Type::Sealed(column) => sealed(&mut plan, field, column, mode, v, keys),
                }
            }
            Mode::Multi => {
                let vs: Vec<&str> = c
                    .values
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .collect();
                if vs.is_empty() {
                    p.add(
                        &at("values"),
                        format!("第{n}个条件（{label}）：请至少选择一项"),
                    );
                    continue;
                }
                if vs.len() > MAX_VALUES || vs.iter().any(|v| too_long(v)) {
                    p.add(
                        &at("values"),
                        format!("第{n}个条件（{label}）：可选项过多或过长"),
                    );
                    continue;
                }
                let mut codes = Vec::new();
                let mut bad = Vec::new();
                for v in &vs {
                    match field.ty {
                        Type::Text => codes.push(v.to_string()),
                        _ => match code_of(field.ty, v) {
                            Some(c) => codes.push(c.to_string()),
                            None => bad.push(*v),
                        },
                    }
                }
                if !bad.is_empty() {
                    p.add(
                        &at("values"),
                        format!("第{n}个条件（{label}）：“{}”不是可选的值", bad.join("、")),
                    );
                    continue;
                }
                plan.sql.push(" AND ").push(field.column).push(" IN (");
                for (j, code) in codes.iter().enumerate() {
                    if j > 0 {
                        plan.sql.push(", ");
                    }
                    if matches!(field.ty, Type::IntCode(_)) {
                        plan.sql.bind_int(code.parse().unwrap_or(-1));
                    } else {
                        plan.sql.bind(code.clone());
                    }
                }
                plan.sql.push(")");
            }
            Mode::Range => {
                let from = c.from.as_deref().map(str::trim).filter(|v| !v.is_empty());
                let to = c.to.as_deref().map(str::trim).filter(|v| !v.is_empty());
                if matches!(field.ty, Type::Number) {
                    let num = |v: Option<&str>,
                               part: &str,
                               p: &mut Problems|
                     -> Result<Option<i64>, ()> {
                        match v {
                            None => Ok(None),
                            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                                p.add(&at(part), format!("第{n}个条件（{label}）：“{v}”不是整数"));
                            }),
                        }
                    };
                    let (Ok(lo), Ok(hi)) = (num(from, "from", p), num(to, "to", p)) else {
                        continue;
                    };
                    if let (Some(a), Some(b)) = (lo, hi) {
                        if a > b {
                            p.add(
                                &at("to"),
                                format!("第{n}个条件（{label}）：上限不能小于下限"),
                            );
                            continue;
                        }
                    }
                    if let Some(a) = lo {
                        plan.sql
                            .push(" AND ")
                            .push(field.column)
                            .push(" >= ")
                            .bind_int(a);
                    }
                    if let Some(b) = hi {
                        plan.sql
                            .push(" AND ")
                            .push(field.column)
                            .push(" <= ")
                            .bind_int(b);
                    }
                } else {
                    let mut ok = true;
                    let mut date = |v: Option<&str>, part: &str| -> Option<String> {
                        let v = v?;
                        let d = check_date(v);
                        if d.is_none() {
                            ok = false;
                            p.add(&at(part), format!("第{n}个条件（{label}）：“{v}”不是有效日期，格式应为 YYYY-MM-DD"));
                        }
                        d
                    };
                    let lo = date(from, "from");
                    let hi = date(to, "to");
                    if !ok {
                        continue;
                    }
                    if let (Some(a), Some(b)) = (&lo, &hi) {
                        if a > b {
                            p.add(
                                &at("to"),
                                format!("第{n}个条件（{label}）：结束日期不能早于开始日期"),
                            );
                            continue;
                        }
                    }
                    if let Some(a) = lo {
                        plan.sql
                            .push(" AND ")
                            .push(field.column)
                            .push(" >= ")
                            .bind(a);
                    }
                    if let Some(b) = hi {
                        plan.sql
                            .push(" AND ")
                            .push(field.column)
                            .push(" <= ")
                            .bind(b);
                    }
                }
            }
        }
    }
    plan
}

/// A date written exactly `YYYY-MM-DD`.
fn check_date(v: &str) -> Option<String> {
    let d = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?;
    (d.format("%Y-%m-%d").to_string() == v).then(|| v.to_string())
}

/// The stored code of a coded field's value, given as its code or its label.
fn code_of(ty: Type, v: &str) -> Option<&'static str> {
    let choices = ty.choices();
    choices
        .iter()
        .find(|(c, _)| *c == v)
        .or_else(|| choices.iter().find(|(_, l)| *l == v))
        .map(|(c, _)| *c)
        .or(match (ty, v) {
            (Type::Flag, "true") => Some("1"),
            (Type::Flag, "false") => Some("0"),
            _ => None,
        })
}

fn push_code_eq(sql: &mut Sql, field: &Field, code: &str) {
    sql.push(" AND ").push(field.column).push(" = ");
    match field.ty {
        Type::IntCode(_) | Type::Flag => sql.bind_int(code.parse().unwrap_or(-1)),
        _ => sql.bind(code),
    };
}

/// A condition on a sealed value: what the clear columns answer goes into SQL, the rest is
/// left for the opened value.
fn sealed(plan: &mut Plan, field: &Field, column: Column, mode: Mode, v: &str, keys: &Keys) {
    let needle = normalise(column, v);
    let check = SealedCheck {
        column,
        mode,
        needle: needle.clone(),
    };
    if column != Column::MembersIdNumber {
        // Phones: no clear derivative; every mode opens the candidates.
        plan.sealed.push(check);
        return;
    }
    let chars: Vec<char> = needle.chars().collect();
    match mode {
        Mode::Exact => match keys.id_number_index(column, &needle) {
            Some(idx) => {
                plan.sql.push(" AND m.id_number_idx = ").bind(idx);
            }
            // The unknown-number placeholder has no index; only it lacks one.
            None => {
                plan.sql.push(" AND m.id_number_idx IS NULL");
                plan.sealed.push(check);
            }
        },
        Mode::Left if chars.len() <= 6 => {
            push_like(
                &mut plan.sql,
                "m.id_region",
                format!("{}%", like_escape(&needle)),
            );
        }
        Mode::Left => {
            let region: String = chars[..6].iter().collect();
            let birth: String = chars[6..chars.len().min(14)].iter().collect();
            plan.sql.push(" AND m.id_region = ").bind(region);
            if chars.len() < 14 {
                push_like(
                    &mut plan.sql,
                    "m.id_birth",
                    format!("{}%", like_escape(&birth)),
                );
            } else {
                plan.sql.push(" AND m.id_birth = ").bind(birth);
                if chars.len() > 14 {
                    plan.sealed.push(check);
                }
            }
        }
        Mode::Right if chars.len() == 4 => {
            plan.sql
                .push(" AND m.id_suffix_idx = ")
                .bind(keys.id_suffix_index(&needle));
        }
        _ => plan.sealed.push(check),
    }
    let _ = field;
}

/// Every bad condition at once, as the API answers it.
pub fn check(
    kind: Kind,
    conditions: &[Condition],
    sort: Option<&SortSpec>,
    keys: &Keys,
    base: Sql,
) -> Result<(Plan, Order), ApiError> {
    let mut p = Problems::default();
    let plan = plan(kind, conditions, keys, &mut p, base);
    let order = check_sort(kind, sort, &mut p);
    p.finish()?;
    Ok((plan, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(field: &str, mode: &str, value: &str) -> Condition {
        Condition {
            field: field.into(),
            mode: mode.into(),
            value: Some(value.into()),
            ..Condition::default()
        }
    }

    #[test]
    fn empty_conditions_are_ignored() {
        let keys = Keys::ephemeral();
        let (plan, _) = check(
            Kind::Members,
            &[c("name", "fuzzy", "  ")],
            None,
            &keys,
            Sql::new(""),
        )
        .unwrap();
        assert!(plan.sql.text.is_empty());
    }

    #[test]
    fn every_bad_condition_is_named() {
        let keys = Keys::ephemeral();
        let conds = [
            c("nope", "fuzzy", "x"),
            c("sex", "fuzzy", "男"),
            Condition {
                field: "joined_on".into(),
                mode: "range".into(),
                from: Some("2020-13-01".into()),
                ..Condition::default()
            },
            c("name", "fuzzy", "张"),
        ];
        let e = check(Kind::Members, &conds, None, &keys, Sql::new("")).unwrap_err();
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "conditions[0].field",
                "conditions[1].mode",
                "conditions[2].from"
            ]
        );
    }

    #[test]
    fn user_text_is_bound_and_wildcards_escaped() {
        let keys = Keys::ephemeral();
        let (plan, _) = check(
            Kind::Members,
            &[c("name", "left", "a%_'; --")],
            None,
            &keys,
            Sql::new(""),
        )
        .unwrap();
        assert_eq!(plan.sql.text, " AND m.name LIKE $1 ESCAPE '\\'");
        assert!(matches!(&plan.sql.args[0], crate::db::Arg::Text(t) if t == "a\\%\\_'; --%"));
    }

    #[test]
    fn id_number_left_match_uses_clear_columns() {
        let keys = Keys::ephemeral();
        let (plan, _) = check(
            Kind::Members,
            &[c("id_number", "left", "3701")],
            None,
            &keys,
            Sql::new(""),
        )
        .unwrap();
        assert!(plan.sql.text.contains("m.id_region LIKE"));
        assert!(plan.sealed.is_empty());
        let (plan, _) = check(
            Kind::Members,
            &[c("id_number", "left", "37010219900")],
            None,
            &keys,
            Sql::new(""),
        )
        .unwrap();
        assert!(plan
            .sql
            .text
            .contains("m.id_region = $1 AND m.id_birth LIKE $2"));
        let (plan, _) = check(
            Kind::Members,
            &[c("id_number", "left", "3701021990010112")],
            None,
            &keys,
            Sql::new(""),
        )
        .unwrap();
        assert_eq!(plan.sealed.len(), 1);
        assert!(plan.sealed[0].matches("370102199001011234"));
        assert!(!plan.sealed[0].matches("370102199001011334"));
    }

    #[test]
    fn sorting_is_whitelisted() {
        let mut p = Problems::default();
        let o = check_sort(
            Kind::Members,
            Some(&SortSpec {
                field: "age".into(),
                dir: Some("asc".into()),
            }),
            &mut p,
        );
        assert_eq!(o.sql(Kind::Members), "m.birth_date DESC, m.id");
        check_sort(
            Kind::Members,
            Some(&SortSpec {
                field: "m.name; DROP".into(),
                dir: None,
            }),
            &mut p,
        );
        assert!(p.has("sort.field"));
    }
}
