//! Synthetic demo province: organisations, units, members and demo accounts.
//!
//! Everything here is invented: place names are fictional, people are assembled from word lists
//! and random numbers (never real persons), ID numbers and credit codes are composed so that
//! their check characters are valid. The generator is seeded, so the same call builds the same
//! tree and the same people (only ids, timestamps, passwords and TOTP secrets differ).

use std::collections::HashSet;

use chrono::{Datelike, Duration, Months, NaiveDate};
use rand::distributions::{Distribution, WeightedIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::access::Role;
use crate::account::store::NewAccount;
use crate::crypto::Column;
use crate::db::{new_id, now_rfc3339, Db, Engine, Tx};
use crate::member::idcard;
use crate::org::store::NewOrg;
use crate::unit::credit_code;

/// One demo sign-in, printed by `dangjian-server demo` so that people can try the platform.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DemoAccount {
    /// `security`, `auditor` or `admin`.
    pub role: String,
    /// 1, 2 or 3 for admins.
    pub tier: Option<u8>,
    pub org_id: String,
    pub org_name: String,
    pub id_number: String,
    pub password: String,
    pub totp_secret: String,
    /// The category of the scope organisation (`621` marks the second tier-3 admin, on a
    /// general branch 党总支).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_category: Option<String>,
    /// The USB-key certificate (PEM file, 0600) of accounts that sign in with a card: tier-1
    /// and tier-2 admins, security officers, auditors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// The certificate's private key (PEM file, 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The seed that makes the demo reproducible.
const SEED: u64 = 20261123;

// ---------------------------------------------------------------------------------------------
// Word lists (fictional places, generic words).

/// A fictional city with its counties. Region codes are Shandong-like but the names are invented.
struct City {
    name: &'static str,
    short: &'static str,
    area_code: &'static str,
    counties: [County; 2],
}

struct County {
    name: &'static str,
    short: &'static str,
    region: &'static str,
}

const CITIES: [City; 2] = [
    City {
        name: "泉城市",
        short: "泉城",
        area_code: "0531",
        counties: [
            County {
                name: "东岭县",
                short: "东岭",
                region: "370124",
            },
            County {
                name: "青河县",
                short: "青河",
                region: "370126",
            },
        ],
    },
    City {
        name: "海川市",
        short: "海川",
        area_code: "0532",
        counties: [
            County {
                name: "云台县",
                short: "云台",
                region: "370283",
            },
            County {
                name: "北湖县",
                short: "北湖",
                region: "370285",
            },
        ],
    },
];

/// Region codes used for the birthplace part of synthetic ID numbers. Never 370102: the tests'
/// own people are born there, so a demo drawn on any day cannot hold their ID numbers.
const ID_REGIONS: &[&str] = &[
    "370181", "370103", "370104", "370105", "370112", "370202", "370203", "370211", "370212",
    "370302", "370303", "370602", "370613", "370681", "370702", "370705", "370881", "370882",
    "371002", "371082", "371102", "371202", "371302", "371402", "371502", "371602", "371702",
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹",
    "袁", "邓", "许", "傅", "沈", "曾", "彭", "吕", "苏", "卢", "蒋", "蔡", "贾", "丁", "魏", "薛",
    "叶", "阎", "孟", "崔", "田", "姜", "范", "石", "秦", "邵", "侯", "尹",
];

const GIVEN_MALE: &[&str] = &[
    "伟", "强", "磊", "军", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "鑫",
    "波", "斌", "宇", "浩", "凯", "健", "俊", "帆", "旭", "宁", "龙", "林", "国", "建", "志", "海",
    "东", "文", "振", "德", "新", "峰", "成", "松", "庆", "兴", "光", "春", "晨", "博", "立", "广",
];

const GIVEN_FEMALE: &[&str] = &[
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "丹", "萍", "红", "玉", "兰", "英",
    "梅", "莉", "婷", "雪", "琳", "洁", "慧", "颖", "倩", "佳", "欣", "月", "秀", "桂", "凤", "琴",
    "云", "晓", "文", "春", "宁", "晨", "华", "新",
];

const TOWNS: &[&str] = &[
    "石桥", "柳泉", "双山", "白沙", "南岗", "西营", "杏林", "龙泉", "桃园", "新集", "马庄", "青石",
    "安乐", "平原", "河口", "凤凰", "长岭", "清水", "黄岗", "梨园",
];

const VILLAGES: &[&str] = &[
    "前屯", "后屯", "东庄", "西庄", "小王", "大李", "南洼", "北坡", "河湾", "张家", "刘家", "上营",
    "下营", "柳树", "槐荫", "枣林",
];

const ROADS: &[&str] = &[
    "建设", "人民", "解放", "文化", "和平", "胜利", "新华", "光明", "振兴", "朝阳", "工业", "青年",
    "迎宾", "府前", "泉源", "滨河",
];

const BRANDS: &[&str] = &[
    "宏达", "华泰", "鑫源", "瑞丰", "恒通", "远航", "金桥", "盛世", "齐鲁", "泰和", "永兴", "海纳",
    "东方", "润丰", "嘉禾", "众诚", "中兴", "天成", "长城", "新星", "安泰", "福源", "汇通", "德隆",
];

const INDUSTRIES: &[&str] = &[
    "机械",
    "化工",
    "纺织",
    "食品",
    "建材",
    "物流",
    "电子",
    "医药",
    "汽车配件",
    "新材料",
    "轮胎",
    "钢结构",
    "农业科技",
    "信息技术",
    "商贸",
    "环保科技",
    "能源",
    "包装",
    "家具",
    "水产",
];

const COMPANY_SUFFIXES: &[&str] = &["有限公司", "有限公司", "股份有限公司", "集团有限公司"];

const INSTITUTIONS: &[&str] = &[
    "人民医院",
    "中医医院",
    "妇幼保健院",
    "实验小学",
    "实验中学",
    "职业中等专业学校",
    "疾病预防控制中心",
    "农业技术推广中心",
    "图书馆",
    "广播电视台",
    "林业发展中心",
    "水利事业服务中心",
];

const AGENCIES: &[&str] = &[
    "交通运输局",
    "自然资源和规划局",
    "教育和体育局",
    "卫生健康局",
    "市场监督管理局",
    "人力资源和社会保障局",
    "住房和城乡建设局",
    "农业农村局",
    "财政局",
    "民政局",
    "文化和旅游局",
    "应急管理局",
];

const SOCIETIES: &[&str] = &[
    "个体劳动者协会",
    "物流行业协会",
    "建筑业协会",
    "餐饮行业协会",
    "律师协会",
    "企业家协会",
    "社会工作者协会",
    "志愿者协会",
];

const PRODUCTS: &[&str] = &[
    "果蔬种植",
    "畜禽养殖",
    "粮食种植",
    "苗木花卉",
    "食用菌",
    "茶叶",
];

const TITLES: &[&str] = &[
    "高级工程师",
    "工程师",
    "助理工程师",
    "中学高级教师",
    "一级教师",
    "主治医师",
    "副主任医师",
    "主管护师",
    "会计师",
    "经济师",
    "高级农艺师",
    "讲师",
];

const NEW_SOCIAL_STRATA: &[&str] = &[
    "民营企业和外资企业管理技术人员",
    "中介组织和社会组织从业人员",
    "自由职业人员",
    "新媒体从业人员",
];

const ORIGIN_PROVINCES: &[(&str, u32)] = &[
    ("山东", 80),
    ("河北", 4),
    ("河南", 4),
    ("江苏", 3),
    ("安徽", 3),
    ("辽宁", 2),
    ("山西", 2),
    ("黑龙江", 2),
];

/// GB/T 3304 codes: 汉族 by far the most, then a few others.
const ETHNICITIES: &[(&str, u32)] = &[
    ("01", 950),
    ("03", 25),
    ("02", 6),
    ("08", 5),
    ("05", 3),
    ("06", 3),
    ("04", 2),
    ("10", 3),
    ("11", 3),
];

// ---------------------------------------------------------------------------------------------
// Small random helpers.

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn weighted<'a, T>(rng: &mut StdRng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut roll = rng.gen_range(0..total.max(1));
    for (item, w) in items {
        if roll < *w {
            return item;
        }
        roll -= *w;
    }
    &items[items.len() - 1].0
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

fn add_years(d: NaiveDate, years: u32) -> NaiveDate {
    d.checked_add_months(Months::new(years * 12))
        .unwrap_or(NaiveDate::MAX)
}

fn sub_years(d: NaiveDate, years: u32) -> NaiveDate {
    d.checked_sub_months(Months::new(years * 12))
        .unwrap_or(NaiveDate::MIN)
}

/// A uniformly random date in `lo..=hi` (`lo` when the range is empty).
fn date_between(rng: &mut StdRng, lo: NaiveDate, hi: NaiveDate) -> NaiveDate {
    let span = (hi - lo).num_days();
    if span <= 0 {
        return lo;
    }
    lo + Duration::days(rng.gen_range(0..=span))
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn mobile(rng: &mut StdRng) -> String {
    format!(
        "1{}{}{:08}",
        pick(rng, &['3', '5', '8']),
        rng.gen_range(0..10),
        rng.gen_range(0..100_000_000u32)
    )
}

fn landline(rng: &mut StdRng, area_code: &str) -> String {
    format!("{area_code}-8{:07}", rng.gen_range(0..10_000_000u32))
}

fn person_name(rng: &mut StdRng, male: bool) -> String {
    // Earlier surnames are more common.
    let n = SURNAMES.len();
    let weights: Vec<(usize, u32)> = (0..n).map(|i| (i, (n - i) as u32)).collect();
    let surname = SURNAMES[*weighted(rng, &weights)];
    let pool = if male { GIVEN_MALE } else { GIVEN_FEMALE };
    let mut name = surname.to_string();
    let first = *pick::<&str>(rng, pool);
    name.push_str(first);
    if rng.gen_bool(0.6) {
        let second = *pick::<&str>(rng, pool);
        name.push_str(second);
    }
    name
}

// ---------------------------------------------------------------------------------------------
// People.

/// A synthetic member before it is placed in a branch.
#[derive(Debug, Clone)]
struct Person {
    name: String,
    id_number: String,
    male: bool,
    ethnicity: &'static str,
    birth_date: NaiveDate,
    education: &'static str,
    probationary: bool,
    joined_on: NaiveDate,
    full_on: Option<NaiveDate>,
    job: &'static str,
    phone: String,
    address: String,
    registered_phone: Option<String>,
    origin: String,
    title: String,
    new_social_stratum: String,
    completeness: i64,
}

/// Whole years from `born` to `on` (the age on `on`).
fn years_between(born: NaiveDate, on: NaiveDate) -> i32 {
    let mut years = on.year() - born.year();
    if (on.month(), on.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    years
}

/// A unique, valid ID number for someone born on `birth_date`.
fn unique_id_number(
    rng: &mut StdRng,
    birth_date: NaiveDate,
    male: bool,
    ids: &mut HashSet<String>,
) -> String {
    loop {
        let region = pick(rng, ID_REGIONS);
        let sequence: u16 = if male {
            rng.gen_range(0..500u16) * 2 + 1
        } else {
            rng.gen_range(1..500u16) * 2
        };
        let id = idcard::compose(region, birth_date, sequence);
        if ids.insert(id.clone()) {
            return id;
        }
    }
}

fn unique_mobile(rng: &mut StdRng, used: &mut HashSet<String>) -> String {
    loop {
        let m = mobile(rng);
        if used.insert(m.clone()) {
            return m;
        }
    }
}

fn address(rng: &mut StdRng, city: &City, county: &County) -> String {
    if rng.gen_bool(0.65) {
        format!(
            "{}{}{}路{}号{}号楼{}单元{}{:02}室",
            city.name,
            county.name,
            pick(rng, ROADS),
            rng.gen_range(1..400),
            rng.gen_range(1..30),
            rng.gen_range(1..5),
            rng.gen_range(1..19),
            rng.gen_range(1..5)
        )
    } else {
        format!(
            "{}{}{}镇{}村{}号",
            city.name,
            county.name,
            pick(rng, TOWNS),
            pick(rng, VILLAGES),
            rng.gen_range(1..300)
        )
    }
}

/// Builds one synthetic member living in `county` that satisfies the field rules of SPEC §4 on
/// `today`: age ≥ 18, joined ≥ 18 years after birth and not before 1921-07-01, full ≥ 1 year
/// after joining, no date in the future, ID number consistent with sex and birth date.
fn person(
    rng: &mut StdRng,
    today: NaiveDate,
    city: &City,
    county: &County,
    ids: &mut HashSet<String>,
    registered_phones: &mut HashSet<String>,
) -> Person {
    let male = rng.gen_bool(0.7);

    // Birth date: 1935..=2006 and at least 18 today.
    let earliest_birth = date(1935, 1, 1);
    let latest_birth = sub_years(today, 18).min(date(2006, 12, 31));
    let age_bands: &[((u32, u32), u32)] = &[
        ((18, 30), 14),
        ((31, 45), 26),
        ((46, 60), 26),
        ((61, 75), 22),
        ((76, 92), 12),
    ];
    // Draw again when the age falls outside the allowed birth years (clamping would pile
    // people up on the bounds); clamp only as a last resort.
    let mut birth_date = earliest_birth;
    for _ in 0..20 {
        let (lo_age, hi_age) = *weighted(rng, age_bands);
        let age = rng.gen_range(lo_age..=hi_age);
        birth_date = sub_years(today, age) - Duration::days(rng.gen_range(0..365));
        if (earliest_birth..=latest_birth).contains(&birth_date) {
            break;
        }
    }
    let birth_date = birth_date.clamp(earliest_birth, latest_birth.max(earliest_birth));
    let age_today = years_between(birth_date, today);

    let id_number = unique_id_number(rng, birth_date, male, ids);
    let name = person_name(rng, male);
    let ethnicity = *weighted(rng, ETHNICITIES);

    // Dates of joining and of full membership.
    let join_lo = (add_years(birth_date, 18) + Duration::days(1)).max(date(1921, 7, 1));
    let join_hi_full = sub_years(today - Duration::days(1), 1);
    // About 8% probationary, most of them young.
    let probation_chance = match age_today {
        ..=35 => 0.28,
        36..=50 => 0.06,
        _ => 0.01,
    };
    let probationary = rng.gen_bool(probation_chance) || join_lo > join_hi_full;
    let (joined_on, full_on) = if probationary {
        let lo = join_lo.max(today - Duration::days(330)).min(today);
        (date_between(rng, lo, today), None)
    } else {
        let join_ages: &[((u32, u32), u32)] = &[
            ((18, 25), 40),
            ((26, 35), 35),
            ((36, 50), 20),
            ((51, 65), 5),
        ];
        let (a, b) = *weighted(rng, join_ages);
        let join_age = rng.gen_range(a..=b);
        let target = add_years(birth_date, join_age) + Duration::days(rng.gen_range(0..365));
        let joined = target.clamp(join_lo, join_hi_full);
        let anniversary = add_years(joined, 1);
        let room = (today - anniversary).num_days().clamp(1, 60);
        let full = anniversary + Duration::days(rng.gen_range(1..=room));
        (joined, Some(full))
    };

    // Job by age.
    let retirement_age = if male { 60 } else { 55 };
    let job = if age_today >= retirement_age {
        *weighted(rng, &[("retired", 85), ("other", 10), ("farmer", 5)])
    } else if age_today < 25 {
        *weighted(rng, &[("student", 65), ("worker", 25), ("other", 10)])
    } else {
        *weighted(rng, &[("worker", 60), ("farmer", 22), ("other", 18)])
    };

    // Education (GB/T 4658) by generation.
    let education = if job == "student" {
        *weighted(rng, &[("21", 70), ("14", 20), ("31", 10)])
    } else if birth_date.year() < 1955 {
        *weighted(
            rng,
            &[
                ("81", 20),
                ("71", 30),
                ("61", 25),
                ("41", 10),
                ("31", 8),
                ("21", 7),
            ],
        )
    } else if birth_date.year() < 1976 {
        *weighted(
            rng,
            &[
                ("71", 15),
                ("61", 20),
                ("41", 15),
                ("31", 22),
                ("21", 23),
                ("14", 5),
            ],
        )
    } else {
        *weighted(
            rng,
            &[
                ("61", 5),
                ("41", 5),
                ("31", 20),
                ("21", 50),
                ("14", 17),
                ("11", 3),
            ],
        )
    };

    let phone = mobile(rng);
    let address = address(rng, city, county);
    let registered_phone = if rng.gen_bool(0.15) {
        Some(unique_mobile(rng, registered_phones))
    } else {
        None
    };
    let origin = if rng.gen_bool(0.55) {
        let province = *weighted(rng, ORIGIN_PROVINCES);
        if province == "山东" {
            format!(
                "山东{}",
                pick(rng, &["泉城", "海川", "东岭", "青河", "云台", "北湖"])
            )
        } else {
            province.to_string()
        }
    } else {
        String::new()
    };
    let title = if job != "student" && rng.gen_bool(0.25) {
        pick(rng, TITLES).to_string()
    } else {
        String::new()
    };
    let new_social_stratum = if matches!(job, "worker" | "other") && rng.gen_bool(0.06) {
        pick(rng, NEW_SOCIAL_STRATA).to_string()
    } else {
        String::new()
    };
    let completeness = completeness(
        !origin.is_empty(),
        !title.is_empty(),
        registered_phone.is_some(),
    );

    Person {
        name,
        id_number,
        male,
        ethnicity,
        birth_date,
        education,
        probationary,
        joined_on,
        full_on,
        job,
        phone,
        address,
        registered_phone,
        origin,
        title,
        new_social_stratum,
        completeness,
    }
}

/// Completeness of a generated record: every required field is filled, so only the three
/// recommended ones (origin, title, registered phone) make a difference.
fn completeness(origin: bool, title: bool, registered_phone: bool) -> i64 {
    let set = [origin, title, registered_phone]
        .iter()
        .filter(|b| **b)
        .count() as i64;
    if set == 3 {
        100
    } else {
        (80 + 7 * set).min(100)
    }
}

// ---------------------------------------------------------------------------------------------
// Organisations and units.

/// An inserted organisation, as far as the generator needs it.
#[derive(Debug, Clone)]
struct OrgRef {
    id: String,
    code: String,
    name: String,
    work_category: Option<String>,
    founded: NaiveDate,
}

/// An inserted unit.
struct UnitRef {
    id: String,
    category: &'static str,
}

/// A branch that can hold members, with where its people live.
struct BranchSlot {
    id: String,
    code: String,
    city: usize,
    county: usize,
    /// The basic committee it belongs to (for picking the tier-3 demo scope).
    committee_id: String,
    /// Directly below that committee and category 631.
    direct_631: bool,
}

struct Gen {
    rng: StdRng,
    today: NaiveDate,
    now: String,
    unit_names: HashSet<String>,
    credit_codes: HashSet<String>,
}

/// Settings of one organisation to insert; the rest of `NewOrg` is filled in by `add_org`.
struct OrgSpec<'a> {
    name: String,
    short_name: String,
    category: &'static str,
    level: Option<&'static str>,
    subordination: &'static str,
    unit_mode: Option<&'static str>,
    work_category: Option<String>,
    may_approve_development: bool,
    /// Landline with this area code, or a mobile when `None`.
    landline_area: Option<&'a str>,
}

impl Gen {
    async fn add_org(
        &mut self,
        tx: &mut Tx,
        parent: &OrgRef,
        spec: OrgSpec<'_>,
    ) -> anyhow::Result<OrgRef> {
        let code = crate::org::store::next_child_code(
            tx,
            &crate::access::platform(),
            &parent.id,
            &parent.code,
        )
        .await?;
        let id = new_id();
        let founded = date_between(
            &mut self.rng,
            parent.founded,
            self.today - Duration::days(365),
        )
        .max(parent.founded);
        let secretary_male = self.rng.gen_bool(0.7);
        let secretary = person_name(&mut self.rng, secretary_male);
        let contact_male = self.rng.gen_bool(0.5);
        let contact_name = person_name(&mut self.rng, contact_male);
        let contact_phone = match spec.landline_area {
            Some(area) => landline(&mut self.rng, area),
            None => mobile(&mut self.rng),
        };
        let org = NewOrg {
            name: spec.name.clone(),
            short_name: spec.short_name,
            category: spec.category.to_string(),
            level: spec.level.map(str::to_string),
            secretary,
            contact_name,
            contact_phone,
            subordination: spec.subordination.to_string(),
            founded_on: Some(ymd(founded)),
            unit_mode: spec.unit_mode.map(str::to_string),
            work_category: spec.work_category.clone(),
            may_approve_development: spec.may_approve_development,
        };
        crate::org::store::insert(
            tx,
            &crate::access::platform(),
            &id,
            &code,
            Some(&parent.id),
            &org,
        )
        .await?;
        Ok(OrgRef {
            id,
            code,
            name: spec.name,
            work_category: spec.work_category,
            founded,
        })
    }

    /// A unit name that is not yet taken, of the given unit category, with the stem used for
    /// the names of its party organisations and a short form.
    fn unit_name(
        &mut self,
        category: &str,
        city: &City,
        county: &County,
    ) -> (String, String, String) {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let rng = &mut self.rng;
            let (mut name, mut stem, mut short) = match category {
                "1" => {
                    let town = pick(rng, TOWNS);
                    if rng.gen_bool(0.7) {
                        (
                            format!("{}{town}镇人民政府", county.name),
                            format!("{}{town}镇", county.name),
                            format!("{town}镇"),
                        )
                    } else {
                        (
                            format!("{}{town}街道办事处", county.name),
                            format!("{}{town}街道工作", county.name),
                            format!("{town}街道"),
                        )
                    }
                }
                "3" => {
                    let inst = if rng.gen_bool(0.3) {
                        format!(
                            "第{}中学",
                            pick(rng, &["一", "二", "三", "四", "五", "六", "七", "八"])
                        )
                    } else {
                        pick(rng, INSTITUTIONS).to_string()
                    };
                    let name = format!("{}{inst}", county.name);
                    (name.clone(), name, format!("{}{inst}", county.short))
                }
                "4" => {
                    let agency = pick(rng, AGENCIES);
                    (
                        format!("{}{agency}", county.name),
                        format!("{}{agency}机关", county.name),
                        format!("{}{agency}", county.short),
                    )
                }
                "5" => {
                    let society = pick(rng, SOCIETIES);
                    let name = format!("{}{society}", county.name);
                    (name.clone(), name, format!("{}{society}", county.short))
                }
                "9" => {
                    let village = pick(rng, VILLAGES);
                    let product = pick(rng, PRODUCTS);
                    let name = format!("{}{village}{product}专业合作社", county.name);
                    (name.clone(), name, format!("{village}{product}合作社"))
                }
                _ => {
                    let place = if rng.gen_bool(0.5) {
                        city.short
                    } else {
                        county.short
                    };
                    let brand = pick(rng, BRANDS);
                    let industry = pick(rng, INDUSTRIES);
                    let suffix = pick(rng, COMPANY_SUFFIXES);
                    let name = format!("山东{place}{brand}{industry}{suffix}");
                    (name.clone(), name, format!("{brand}{industry}"))
                }
            };
            if attempt > 40 {
                // Practically unreachable; guarantees termination.
                name = format!("{name}（{attempt}）");
                stem = format!("{stem}（{attempt}）");
                short = format!("{short}{attempt}");
            }
            if self.unit_names.insert(name.clone()) {
                return (name, stem, short);
            }
        }
    }

    fn credit_code(&mut self, category: &str, region: &str) -> String {
        const BODY: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
        let prefix = match category {
            "1" | "4" => "11",
            "3" => "12",
            "5" => "51",
            "9" => "93",
            _ => "91",
        };
        loop {
            let mut body = String::with_capacity(8);
            // Newer codes for companies start with MA; others use digits and letters.
            if prefix == "91" && self.rng.gen_bool(0.6) {
                body.push_str("MA");
            }
            while body.len() < 8 {
                body.push(BODY[self.rng.gen_range(0..BODY.len())] as char);
            }
            let code = credit_code::compose(prefix, region, &body);
            if self.credit_codes.insert(code.clone()) {
                return code;
            }
        }
    }

    /// Inserts a unit owned by `county_org`; returns it with its name stem and short form.
    async fn add_unit(
        &mut self,
        tx: &mut Tx,
        category: &'static str,
        situation: i64,
        city: &City,
        county: &County,
        county_org: &OrgRef,
    ) -> anyhow::Result<(UnitRef, String, String)> {
        let (name, stem, short) = self.unit_name(category, city, county);
        let credit_code = self.credit_code(category, county.region);
        let id = new_id();
        let has_party_group = i64::from(category == "4" && self.rng.gen_bool(0.5));
        sqlx::query(
            "INSERT INTO units (id, name, credit_code, category, subcategory, has_party_group, \
             party_org_situation, managing_org_id, owner_org_id, owner_code, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, '', $5, $6, NULL, $7, $8, $9, $9)",
        )
        .bind(&id)
        .bind(&name)
        .bind(&credit_code)
        .bind(category)
        .bind(has_party_group)
        .bind(situation)
        .bind(&county_org.id)
        .bind(&county_org.code)
        .bind(&self.now)
        .execute(&mut **tx)
        .await?;
        Ok((UnitRef { id, category }, stem, short))
    }
}

async fn link_unit(
    tx: &mut Tx,
    org_id: &str,
    unit_id: &str,
    is_default: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO org_units (org_id, unit_id, is_default) VALUES ($1, $2, $3)")
        .bind(org_id)
        .bind(unit_id)
        .bind(i64::from(is_default))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const ORDINALS: &[&str] = &["一", "二", "三", "四", "五", "六", "七", "八"];

fn branch_spec(name: String, work_category: &Option<String>) -> OrgSpec<'static> {
    OrgSpec {
        short_name: name.clone(),
        name,
        category: "631",
        level: None,
        subordination: "4",
        unit_mode: Some("same_as_parent"),
        work_category: work_category.clone(),
        may_approve_development: false,
        landline_area: None,
    }
}

/// What the tree builder hands back.
struct Tree {
    first_city: OrgRef,
    /// The county committee above the tier-2 committee: the nearest tier-1 organisation in
    /// its members' chain, which approves what is reserved to county level.
    county: OrgRef,
    tier2_committee: OrgRef,
    branches: Vec<BranchSlot>,
}

async fn build_tree(g: &mut Gen, tx: &mut Tx, root: &OrgRef) -> anyhow::Result<Tree> {
    let mut branches = Vec::new();
    let mut first_city = None;
    let mut tier2 = None;
    let mut tier2_county = None;
    for (ci, city) in CITIES.iter().enumerate() {
        let city_org = g
            .add_org(
                tx,
                root,
                OrgSpec {
                    name: format!("中共{}委员会", city.name),
                    short_name: format!("{}委", city.name),
                    category: "1",
                    level: Some("city"),
                    subordination: "2",
                    unit_mode: None,
                    work_category: None,
                    may_approve_development: false,
                    landline_area: Some(city.area_code),
                },
            )
            .await?;
        if first_city.is_none() {
            first_city = Some(city_org.clone());
        }
        for (ki, county) in city.counties.iter().enumerate() {
            let county_org = g
                .add_org(
                    tx,
                    &city_org,
                    OrgSpec {
                        name: format!("中共{}委员会", county.name),
                        short_name: format!("{}委", county.name),
                        category: "1",
                        level: Some("county"),
                        subordination: "3",
                        unit_mode: None,
                        work_category: None,
                        may_approve_development: false,
                        landline_area: Some(city.area_code),
                    },
                )
                .await?;

            // Three basic committees, each with its own legal-entity unit.
            for bi in 0..3 {
                let unit_category =
                    *weighted(&mut g.rng, &[("1", 30), ("2", 35), ("3", 20), ("4", 15)]);
                let (unit, stem, short) = g
                    .add_unit(tx, unit_category, 1, city, county, &county_org)
                    .await?;
                let committee = g
                    .add_org(
                        tx,
                        &county_org,
                        OrgSpec {
                            name: format!("中共{stem}委员会"),
                            short_name: format!("{short}党委"),
                            category: "611",
                            level: None,
                            subordination: "4",
                            unit_mode: Some("legal_entity"),
                            work_category: Some(unit.category.to_string()),
                            may_approve_development: bi < 2,
                            landline_area: Some(city.area_code),
                        },
                    )
                    .await?;
                link_unit(tx, &committee.id, &unit.id, true).await?;
                if bi == 0 && tier2.is_none() {
                    tier2 = Some(committee.clone());
                    tier2_county = Some(county_org.clone());
                }

                // A general branch with two or three branches.
                let general = g
                    .add_org(
                        tx,
                        &committee,
                        OrgSpec {
                            name: "机关党总支".to_string(),
                            short_name: "机关党总支".to_string(),
                            category: "621",
                            level: None,
                            subordination: "4",
                            unit_mode: Some("same_as_parent"),
                            work_category: committee.work_category.clone(),
                            may_approve_development: false,
                            landline_area: None,
                        },
                    )
                    .await?;
                let n = g.rng.gen_range(2..=3);
                for ordinal in ORDINALS.iter().take(n) {
                    let b = g
                        .add_org(
                            tx,
                            &general,
                            branch_spec(format!("机关第{ordinal}党支部"), &general.work_category),
                        )
                        .await?;
                    branches.push(BranchSlot {
                        id: b.id,
                        code: b.code,
                        city: ci,
                        county: ki,
                        committee_id: committee.id.clone(),
                        direct_631: false,
                    });
                }

                // Three to six branches directly below the committee.
                let n = g.rng.gen_range(3..=6);
                for (k, ordinal) in ORDINALS.iter().take(n).enumerate() {
                    let name = if k + 1 == n {
                        "离退休党支部".to_string()
                    } else {
                        format!("第{ordinal}党支部")
                    };
                    let b = g
                        .add_org(tx, &committee, branch_spec(name, &committee.work_category))
                        .await?;
                    branches.push(BranchSlot {
                        id: b.id,
                        code: b.code,
                        city: ci,
                        county: ki,
                        committee_id: committee.id.clone(),
                        direct_631: true,
                    });
                }

                // A joint branch of small units under the third committee of every county.
                if bi == 2 {
                    let n_units = g.rng.gen_range(2..=3);
                    let mut units = Vec::new();
                    for _ in 0..n_units {
                        let category = *weighted(&mut g.rng, &[("2", 60), ("5", 25), ("9", 15)]);
                        let (unit, _, _) = g
                            .add_unit(tx, category, 2, city, county, &county_org)
                            .await?;
                        units.push(unit);
                    }
                    let name = format!(
                        "{}联合党支部",
                        pick(
                            &mut g.rng,
                            &[
                                "非公企业第一",
                                "非公有制企业",
                                "小微企业",
                                "个体私营企业",
                                "商圈"
                            ]
                        )
                    );
                    let joint = g
                        .add_org(
                            tx,
                            &committee,
                            OrgSpec {
                                short_name: name.clone(),
                                name,
                                category: "632",
                                level: None,
                                subordination: "4",
                                unit_mode: Some("joint"),
                                work_category: Some(units[0].category.to_string()),
                                may_approve_development: false,
                                landline_area: None,
                            },
                        )
                        .await?;
                    for (i, unit) in units.iter().enumerate() {
                        link_unit(tx, &joint.id, &unit.id, i == 0).await?;
                    }
                    branches.push(BranchSlot {
                        id: joint.id,
                        code: joint.code,
                        city: ci,
                        county: ki,
                        committee_id: committee.id.clone(),
                        direct_631: false,
                    });
                }
            }

            // One general branch attached directly to the county committee, with two branches.
            let category = *weighted(&mut g.rng, &[("2", 50), ("3", 35), ("5", 15)]);
            let (unit, stem, short) = g
                .add_unit(tx, category, 1, city, county, &county_org)
                .await?;
            let general = g
                .add_org(
                    tx,
                    &county_org,
                    OrgSpec {
                        name: format!("中共{stem}总支部委员会"),
                        short_name: format!("{short}党总支"),
                        category: "621",
                        level: None,
                        subordination: "4",
                        unit_mode: Some("legal_entity"),
                        work_category: Some(unit.category.to_string()),
                        may_approve_development: false,
                        landline_area: Some(city.area_code),
                    },
                )
                .await?;
            link_unit(tx, &general.id, &unit.id, true).await?;
            for ordinal in ORDINALS.iter().take(2) {
                let b = g
                    .add_org(
                        tx,
                        &general,
                        branch_spec(format!("第{ordinal}党支部"), &general.work_category),
                    )
                    .await?;
                branches.push(BranchSlot {
                    id: b.id,
                    code: b.code,
                    city: ci,
                    county: ki,
                    committee_id: general.id.clone(),
                    direct_631: false,
                });
            }
        }
    }
    match (first_city, tier2, tier2_county) {
        (Some(first_city), Some(tier2_committee), Some(county)) => Ok(Tree {
            first_city,
            county,
            tier2_committee,
            branches,
        }),
        _ => anyhow::bail!("demo tree is incomplete"),
    }
}

// ---------------------------------------------------------------------------------------------
// Members.

struct MemberRow {
    person: Person,
    branch: usize,
}

/// The demo's people as validated members, inserted through `member::bulk` like an import.
async fn insert_members(
    tx: &mut Tx,
    engine: Engine,
    now: &str,
    branches: &[BranchSlot],
    rows: &[MemberRow],
) -> anyhow::Result<Vec<crate::member::bulk::NewMember>> {
    use crate::member::bulk::NewMember;
    use crate::member::rules::ValidMember;
    let mut ids = ascending_ids();
    let members: Vec<NewMember> = rows
        .iter()
        .map(|row| {
            let p = &row.person;
            let b = &branches[row.branch];
            NewMember {
                id: ids(),
                branch_id: b.id.clone(),
                branch_code: b.code.clone(),
                member: ValidMember {
                    name: p.name.clone(),
                    id_number: p.id_number.clone(),
                    sex: if p.male { "male" } else { "female" }.to_string(),
                    ethnicity: p.ethnicity.to_string(),
                    birth_date: p.birth_date,
                    education: p.education.to_string(),
                    category: if p.probationary {
                        "probationary"
                    } else {
                        "full"
                    }
                    .to_string(),
                    joined_on: p.joined_on,
                    full_on: p.full_on,
                    job: p.job.to_string(),
                    phone: p.phone.clone(),
                    address: p.address.clone(),
                    status: "normal".to_string(),
                    lost_contact: false,
                    lost_contact_on: None,
                    floating: false,
                    floating_to: None,
                    registered_phone: p.registered_phone.clone(),
                    origin: p.origin.clone(),
                    title: p.title.clone(),
                    new_social_stratum: p.new_social_stratum.clone(),
                    completeness: p.completeness,
                },
            }
        })
        .collect();
    crate::member::bulk::insert(tx, engine, now, &members, &crate::access::platform()).await?;
    Ok(members)
}

/// Identifiers for the rows of a bulk load: opaque 32 hexadecimal digits like [`new_id`]'s,
/// a random half and a counting half, so that each new row lands at the end of its table's
/// primary-key index instead of at a random place in it (a million random keys cost the
/// single SQLite writer, and PostgreSQL's backend, a page search and often a split each).
fn ascending_ids() -> impl FnMut() -> String {
    let prefix: u64 = rand::random();
    let mut n: u64 = 0;
    move || {
        n += 1;
        format!("{prefix:016x}{n:016x}")
    }
}

/// Counts `members` into the statistics tally (their triggers were dropped for the load).
async fn tally(tx: &mut Tx, members: &[crate::member::bulk::NewMember]) -> anyhow::Result<()> {
    let dates: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            (
                m.member.birth_date.to_string(),
                m.member.joined_on.to_string(),
            )
        })
        .collect();
    let living = members
        .iter()
        .zip(&dates)
        .filter(|(m, _)| m.member.status == "normal")
        .map(|(m, (birth, joined))| crate::stats::store::Tallied {
            org_code: &m.branch_code,
            category: &m.member.category,
            sex: &m.member.sex,
            ethnicity: &m.member.ethnicity,
            education: &m.member.education,
            job: &m.member.job,
            birth_date: birth,
            joined_on: Some(joined),
        });
    crate::stats::store::rebuild_tally(tx, &crate::access::platform(), living).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The entry point.

/// Builds the demo province below the root organisation (`root_id`, `root_code`, inserted by
/// `init`): 2 cities, 4 counties, 12 basic committees with general branches, branches and
/// joint branches, their units, `members` synthetic members and eight demo accounts (security
/// officer, auditor, admins of tiers 1, 2 and 3; a second security officer and auditor of the first city), all in one transaction. Returns the accounts
/// with their one-time shown passwords and TOTP secrets.
pub async fn generate(
    db: &Db,
    root_id: &str,
    root_code: &str,
    members: usize,
    realname: bool,
) -> anyhow::Result<Vec<DemoAccount>> {
    let today = crate::db::today();
    let mut g = Gen {
        rng: StdRng::seed_from_u64(SEED),
        today,
        now: now_rfc3339(),
        unit_names: HashSet::new(),
        credit_codes: HashSet::new(),
    };
    let mut tx = db.begin().await?;
    crate::db::widen_cache(&mut tx, db.engine).await?;
    crate::db::keep_dirty_pages(&mut tx, db.engine).await?;

    let root_row = crate::org::store::get(&mut *tx, root_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("root organisation {root_id} not found"))?;
    let root = OrgRef {
        id: root_id.to_string(),
        code: root_code.to_string(),
        name: root_row.name.clone(),
        work_category: root_row.work_category.clone(),
        founded: date(1949, 10, 1),
    };

    let phase = std::time::Instant::now();
    let tree = build_tree(&mut g, &mut tx, &root).await?;

    // Demo accounts' ID numbers first, so that no member shares one.
    let mut ids: HashSet<String> = HashSet::new();
    let mut registered_phones: HashSet<String> = HashSet::new();
    let mut account_people = Vec::new();
    for _ in 0..5 {
        let male = g.rng.gen_bool(0.6);
        let birth = date_between(&mut g.rng, date(1970, 1, 1), date(1992, 12, 31));
        let id_number = unique_id_number(&mut g.rng, birth, male, &mut ids);
        let name = person_name(&mut g.rng, male);
        let mobile = unique_mobile(&mut g.rng, &mut registered_phones);
        account_people.push((name, id_number, mobile));
    }

    // Members, spread over the branches with uneven sizes.
    let mut rows = Vec::with_capacity(members);
    if !tree.branches.is_empty() && members > 0 {
        let weights: Vec<u32> = tree
            .branches
            .iter()
            .map(|_| g.rng.gen_range(4..=24))
            .collect();
        let spread = WeightedIndex::new(&weights)?;
        for i in 0..members {
            // The first member goes to the tier-3 demo branch so that it is never empty.
            let branch = if i == 0 {
                tree.branches
                    .iter()
                    .position(|b| b.direct_631 && b.committee_id == tree.tier2_committee.id)
                    .unwrap_or(0)
            } else {
                spread.sample(&mut g.rng)
            };
            let slot = &tree.branches[branch];
            let city = &CITIES[slot.city];
            let county = &city.counties[slot.county];
            let person = person(
                &mut g.rng,
                today,
                city,
                county,
                &mut ids,
                &mut registered_phones,
            );
            rows.push(MemberRow { person, branch });
        }
    }
    // Stored organisation by organisation (a stable sort: the people stay the same), as a
    // migration from the old systems loads them: the members of a subtree then share pages of
    // the table. Spread in random order, a 100,000-member subtree of a million touched 57,000
    // of the table's 67,000 pages, and a PostgreSQL count over it read them all (290 ms
    // instead of 40; docs/benchmarks.md §7c).
    rows.sort_by(|a, b| {
        tree.branches[a.branch]
            .code
            .cmp(&tree.branches[b.branch].code)
    });
    // The members table is empty here (`demo` needs a fresh data directory): its indexes are
    // built once after the rows are in rather than kept through a million inserts.
    let present: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM members LIMIT 1) AS m")
            .fetch_one(&mut *tx)
            .await?;
    let empty = present == 0;
    // Likewise the statistics tally: recounted once by a GROUP BY instead of seven upserts per
    // row through its triggers.
    // And its foreign key (PostgreSQL checks it row by row, locking the parent each time):
    // added back, and so checked for every row at once, before the commit.
    let (indexes, triggers, foreign_keys) = if empty {
        (
            crate::db::drop_indexes(&mut tx, db.engine, "members").await?,
            crate::db::drop_triggers(&mut tx, db.engine, "members", "member_tally").await?,
            crate::db::drop_foreign_keys(&mut tx, db.engine, "members").await?,
        )
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        "demo: tree and people made"
    );
    let phase = std::time::Instant::now();
    let inserted = insert_members(&mut tx, db.engine, &g.now, &tree.branches, &rows).await?;
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        "demo: members inserted"
    );
    // The real-name registry holds every member and some people who are not members yet
    // (`demo_extras`, so that a tour can enter one): sealed on another core while the
    // database builds the indexes.
    let registry = realname.then(|| {
        let mut people: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.person.id_number.clone(), r.person.name.clone()))
            .collect();
        people.extend(crate::realname::local::demo_extras());
        tokio::task::spawn_blocking(move || {
            let n = people.len();
            (
                crate::realname::local::seal_entries(&people, ascending_ids()),
                n,
            )
        })
    });
    let phase = std::time::Instant::now();
    crate::db::build_indexes(&mut tx, db.engine, &indexes).await?;
    crate::db::restore_indexes(&mut tx, &foreign_keys).await?;
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        "demo: indexes built"
    );
    let phase = std::time::Instant::now();
    if empty {
        tally(&mut tx, &inserted).await?;
    }
    drop(inserted);
    crate::db::restore_indexes(&mut tx, &triggers).await?;
    crate::member::sort_keys::record_version(&mut *tx).await?;
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        "demo: tally counted"
    );
    if let Some(sealing) = registry {
        let phase = std::time::Instant::now();
        let (entries, n) = sealing.await?;
        let allowed = crate::access::platform();
        // A new data directory's registry is empty.
        crate::realname::local::insert_entries(
            &mut tx,
            &allowed,
            &entries,
            "demo",
            crate::realname::local::Existing::Absent,
        )
        .await?;
        crate::audit::append(
            &mut tx,
            &crate::audit::Who::system(),
            crate::audit::Event::ok("realname.import", "demo")
                .with_detail(format!("演示数据：{n} 人")),
        )
        .await?;
        tracing::info!(
            seconds = phase.elapsed().as_secs_f64(),
            "demo: real-name registry written"
        );
    }

    // The tier-3 scope: a branch directly below the tier-2 committee that holds members.
    let mut counts = vec![0usize; tree.branches.len()];
    for r in &rows {
        counts[r.branch] += 1;
    }
    let tier3_index = tree
        .branches
        .iter()
        .enumerate()
        .filter(|(_, b)| b.direct_631 && b.committee_id == tree.tier2_committee.id)
        .max_by_key(|(i, _)| (counts[*i] > 0, std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
        .ok_or_else(|| anyhow::anyhow!("no branch below the tier-2 demo committee"))?;
    let tier3_slot = &tree.branches[tier3_index];
    let tier3_name: String = sqlx::query_scalar("SELECT name FROM orgs WHERE id = $1")
        .bind(&tier3_slot.id)
        .fetch_one(&mut *tx)
        .await?;
    let tier3 = OrgRef {
        id: tier3_slot.id.clone(),
        code: tier3_slot.code.clone(),
        name: tier3_name,
        work_category: None,
        founded: today,
    };

    // A second tier-3 admin on a general branch 党总支 below the tier-2 committee: it may
    // create branches in the browser (tiers 1 and 2 sign in with the USB key only). Made after
    // the members so that the seeded people above stay the same.
    let general: (String, String, String) = sqlx::query_as(
        "SELECT id, code, name FROM orgs WHERE category = '621' AND code > $1 AND code < $2 \
         ORDER BY code LIMIT 1",
    )
    .bind(&tree.tier2_committee.code)
    .bind(crate::db::subtree_upper(&tree.tier2_committee.code))
    .fetch_one(&mut *tx)
    .await?;
    let general = OrgRef {
        id: general.0,
        code: general.1,
        name: general.2,
        work_category: None,
        founded: today,
    };
    // The general branch's admin, then a security officer and an auditor of the first city
    // (officers and auditors below the root, whose reach stops at their subtree).
    // Then the county's tier-1 admin (approvals reserved to county level).
    for _ in 0..4 {
        let male = g.rng.gen_bool(0.6);
        let birth = date_between(&mut g.rng, date(1970, 1, 1), date(1992, 12, 31));
        let id_number = unique_id_number(&mut g.rng, birth, male, &mut ids);
        let name = person_name(&mut g.rng, male);
        let mobile = unique_mobile(&mut g.rng, &mut registered_phones);
        account_people.push((name, id_number, mobile));
    }

    let scopes: [(Role, &OrgRef, Option<u8>, &str); 9] = [
        (Role::Security, &root, None, "1"),
        (Role::Auditor, &root, None, "1"),
        (Role::Admin, &tree.first_city, Some(1), "1"),
        (Role::Admin, &tree.tier2_committee, Some(2), "611"),
        (Role::Admin, &tier3, Some(3), "631"),
        (Role::Admin, &general, Some(3), "621"),
        (Role::Security, &tree.first_city, None, "1"),
        (Role::Auditor, &tree.first_city, None, "1"),
        (Role::Admin, &tree.county, Some(1), "1"),
    ];
    let mut accounts = Vec::with_capacity(scopes.len());
    for ((role, org, tier, category), (name, id_number, mobile)) in
        scopes.into_iter().zip(account_people)
    {
        let password = crate::account::password::generate();
        let totp_secret = crate::account::totp::new_secret();
        let account_id = crate::account::store::create_account(
            &mut tx,
            &NewAccount {
                name: &name,
                id_number: &id_number,
                mobile: &mobile,
                password: &password,
                totp_secret: &totp_secret,
                totp_confirmed: true,
                must_change_password: false,
            },
        )
        .await?;
        crate::account::store::create_grant(
            &mut tx,
            &crate::access::platform(),
            &account_id,
            role,
            &org.id,
            tier,
            true,
            None,
        )
        .await?;
        accounts.push(DemoAccount {
            role: role.as_str().to_string(),
            tier,
            org_id: org.id.clone(),
            org_name: org.name.clone(),
            id_number,
            password,
            totp_secret,
            org_category: Some(category.to_string()),
            cert: None,
            key: None,
        });
    }

    let n = rows.len();
    crate::audit::append(
        &mut tx,
        &crate::audit::Who::system(),
        crate::audit::Event::ok("demo.generate", root_id).with_detail(format!("{n} members")),
    )
    .await?;
    let phase = std::time::Instant::now();
    tx.commit().await?;
    crate::db::narrow_cache(db).await?;
    crate::db::after_bulk_load(db, "members").await?;
    tracing::info!(seconds = phase.elapsed().as_secs_f64(), "demo: committed");
    Ok(accounts)
}

/// Issues USB-key certificates (key made here) for the demo accounts that sign in with a
/// card — tier-1 and tier-2 admins, security officers, auditors — and writes them into
/// `cards_dir` (PEM, mode 0600), naming them in each account's `cert` and `key`.
pub async fn issue_cards(
    db: &Db,
    data_dir: &std::path::Path,
    cards_dir: &std::path::Path,
    accounts: &mut [DemoAccount],
) -> anyhow::Result<()> {
    let mut stems = HashSet::new();
    for a in accounts.iter_mut() {
        let role = Role::parse(&a.role).ok_or_else(|| anyhow::anyhow!("role {}", a.role))?;
        if !crate::access::needs_card(role, a.tier) {
            continue;
        }
        let index = crate::crypto::index(Column::AccountsIdNumber, &a.id_number);
        let grant_id: String = sqlx::query_scalar(
            "SELECT g.id FROM grants g JOIN accounts ac ON ac.id = g.account_id \
             WHERE ac.id_number_idx = $1 AND g.org_id = $2 AND g.revoked_at IS NULL",
        )
        .bind(index)
        .bind(&a.org_id)
        .fetch_one(db.read())
        .await?;
        let mut stem = match a.tier {
            Some(t) => format!("{}-tier{t}", a.role),
            None => a.role.clone(),
        };
        // The first of a role keeps the plain name; the city's officer and auditor get theirs.
        if !stems.insert(stem.clone()) {
            stem = format!("{stem}-city");
        }
        let (cert, key) =
            crate::card::issue_card_files(db, data_dir, &grant_id, cards_dir, &stem).await?;
        a.cert = Some(cert.display().to_string());
        a.key = Some(key.display().to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        date(2026, 11, 23)
    }

    fn people(n: usize, today: NaiveDate) -> Vec<Person> {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut ids = HashSet::new();
        let mut phones = HashSet::new();
        (0..n)
            .map(|i| {
                let city = &CITIES[i % 2];
                let county = &city.counties[(i / 2) % 2];
                person(&mut rng, today, city, county, &mut ids, &mut phones)
            })
            .collect()
    }

    #[test]
    fn generated_people_satisfy_the_member_rules() {
        for today in [today(), date(2028, 2, 29), date(2027, 3, 1)] {
            for p in people(20_000, today) {
                assert!(years_between(p.birth_date, today) >= 18, "{p:?}");
                assert!(
                    p.birth_date >= date(1935, 1, 1) && p.birth_date <= date(2006, 12, 31),
                    "{p:?}"
                );
                assert!(years_between(p.birth_date, p.joined_on) >= 18, "{p:?}");
                assert!(
                    p.joined_on >= date(1921, 7, 1) && p.joined_on <= today,
                    "{p:?}"
                );
                match p.full_on {
                    Some(full) => {
                        assert!(!p.probationary);
                        assert!(years_between(p.joined_on, full) >= 1, "{p:?}");
                        assert!((full - add_years(p.joined_on, 1)).num_days() <= 61, "{p:?}");
                        assert!(full <= today, "{p:?}");
                    }
                    None => {
                        assert!(p.probationary);
                        assert!((today - p.joined_on).num_days() <= 335, "{p:?}");
                    }
                }
                assert!((60..=100).contains(&p.completeness));
                assert!(
                    p.phone.len() == 11 && p.phone.starts_with('1'),
                    "{}",
                    p.phone
                );
                let name_len = p.name.chars().count();
                assert!((2..=3).contains(&name_len), "{}", p.name);
            }
        }
    }

    #[test]
    fn id_numbers_are_valid_unique_and_consistent() {
        let today = today();
        let all = people(20_000, today);
        let unique: HashSet<&str> = all.iter().map(|p| p.id_number.as_str()).collect();
        assert_eq!(unique.len(), all.len());
        let registered: Vec<&String> = all
            .iter()
            .filter_map(|p| p.registered_phone.as_ref())
            .collect();
        let unique_registered: HashSet<&String> = registered.iter().copied().collect();
        assert_eq!(registered.len(), unique_registered.len());
        for p in &all {
            // The tests' own people are born in 370102 (see ID_REGIONS).
            assert!(!p.id_number.starts_with("370102"), "{}", p.id_number);
            match idcard::parse(&p.id_number, today) {
                Ok(idcard::IdNumber::Known {
                    birth_date, male, ..
                }) => {
                    assert_eq!(birth_date, p.birth_date);
                    assert_eq!(male, p.male);
                }
                other => panic!("{} gave {other:?}", p.id_number),
            }
        }
    }

    #[test]
    fn the_mix_is_realistic() {
        let all = people(20_000, today());
        let n = all.len() as f64;
        let share = |f: &dyn Fn(&Person) -> bool| all.iter().filter(|p| f(p)).count() as f64 / n;
        let male = share(&|p| p.male);
        assert!((0.65..0.75).contains(&male), "{male}");
        let probationary = share(&|p| p.probationary);
        assert!((0.05..0.11).contains(&probationary), "{probationary}");
        let han = share(&|p| p.ethnicity == "01");
        assert!(han > 0.9, "{han}");
        let retired_old = all
            .iter()
            .filter(|p| years_between(p.birth_date, today()) >= 65)
            .filter(|p| p.job == "retired")
            .count();
        let old = all
            .iter()
            .filter(|p| years_between(p.birth_date, today()) >= 65)
            .count();
        assert!(retired_old * 10 > old * 7);
    }

    #[test]
    fn completeness_rule() {
        assert_eq!(completeness(false, false, false), 80);
        assert_eq!(completeness(true, false, false), 87);
        assert_eq!(completeness(true, true, false), 94);
        assert_eq!(completeness(true, true, true), 100);
    }

    #[test]
    fn composed_unit_codes_validate() {
        let mut g = Gen {
            rng: StdRng::seed_from_u64(SEED),
            today: today(),
            now: String::new(),
            unit_names: HashSet::new(),
            credit_codes: HashSet::new(),
        };
        for category in ["1", "2", "3", "4", "5", "9"] {
            for _ in 0..50 {
                let code = g.credit_code(category, "370124");
                assert_eq!(credit_code::validate(&code), Ok(code.clone()));
                let (name, stem, short) = g.unit_name(category, &CITIES[0], &CITIES[0].counties[0]);
                assert!(!name.is_empty() && !stem.is_empty() && !short.is_empty());
            }
        }
        assert_eq!(g.unit_names.len(), 300);
    }
}
