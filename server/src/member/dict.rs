//! Code tables for member fields: ethnicity (GB/T 3304), education (GB/T 4658), job.

/// 民族 (GB/T 3304).
pub const ETHNICITIES: [(&str, &str); 58] = [
    ("01", "汉族"),
    ("02", "蒙古族"),
    ("03", "回族"),
    ("04", "藏族"),
    ("05", "维吾尔族"),
    ("06", "苗族"),
    ("07", "彝族"),
    ("08", "壮族"),
    ("09", "布依族"),
    ("10", "朝鲜族"),
    ("11", "满族"),
    ("12", "侗族"),
    ("13", "瑶族"),
    ("14", "白族"),
    ("15", "土家族"),
    ("16", "哈尼族"),
    ("17", "哈萨克族"),
    ("18", "傣族"),
    ("19", "黎族"),
    ("20", "傈僳族"),
    ("21", "佤族"),
    ("22", "畲族"),
    ("23", "高山族"),
    ("24", "拉祜族"),
    ("25", "水族"),
    ("26", "东乡族"),
    ("27", "纳西族"),
    ("28", "景颇族"),
    ("29", "柯尔克孜族"),
    ("30", "土族"),
    ("31", "达斡尔族"),
    ("32", "仫佬族"),
    ("33", "羌族"),
    ("34", "布朗族"),
    ("35", "撒拉族"),
    ("36", "毛南族"),
    ("37", "仡佬族"),
    ("38", "锡伯族"),
    ("39", "阿昌族"),
    ("40", "普米族"),
    ("41", "塔吉克族"),
    ("42", "怒族"),
    ("43", "乌孜别克族"),
    ("44", "俄罗斯族"),
    ("45", "鄂温克族"),
    ("46", "德昂族"),
    ("47", "保安族"),
    ("48", "裕固族"),
    ("49", "京族"),
    ("50", "塔塔尔族"),
    ("51", "独龙族"),
    ("52", "鄂伦春族"),
    ("53", "赫哲族"),
    ("54", "门巴族"),
    ("55", "珞巴族"),
    ("56", "基诺族"),
    ("97", "其他"),
    ("98", "外国血统中国籍人士"),
];

/// 学历 (GB/T 4658-2006).
pub const EDUCATIONS: [(&str, &str); 36] = [
    ("10", "研究生教育"),
    ("11", "博士研究生毕业"),
    ("12", "博士研究生结业"),
    ("13", "博士研究生肄业"),
    ("14", "硕士研究生毕业"),
    ("15", "硕士研究生结业"),
    ("16", "硕士研究生肄业"),
    ("17", "研究生班毕业"),
    ("18", "研究生班结业"),
    ("19", "研究生班肄业"),
    ("20", "大学本科教育"),
    ("21", "大学本科毕业"),
    ("22", "大学本科结业"),
    ("23", "大学本科肄业"),
    ("28", "大学普通班毕业"),
    ("30", "大学专科教育"),
    ("31", "大学专科毕业"),
    ("32", "大学专科结业"),
    ("33", "大学专科肄业"),
    ("40", "中等职业教育"),
    ("41", "中等专科毕业"),
    ("42", "中等专科结业"),
    ("43", "中等专科肄业"),
    ("44", "职业高中毕业"),
    ("47", "技工学校毕业"),
    ("60", "普通高级中学教育"),
    ("61", "普通高中毕业"),
    ("62", "普通高中结业"),
    ("63", "普通高中肄业"),
    ("70", "初级中学教育"),
    ("71", "初中毕业"),
    ("73", "初中肄业"),
    ("80", "小学教育"),
    ("81", "小学毕业"),
    ("83", "小学肄业"),
    ("90", "其他"),
];

/// Is this 学历 code a group heading (研究生教育, 大学本科教育 …) rather than a choice? The
/// headings end in 0; 90 其他 is a choice.
pub fn is_education_group(code: &str) -> bool {
    code.len() == 2 && code.ends_with('0') && code != "90"
}

/// 学历 as the form lists it: each heading with the choices below it (codes of the same
/// first digit; 28 大学普通班毕业 belongs to 大学本科教育), then 其他 on its own.
pub fn education_groups() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let mut groups: Vec<(&'static str, Vec<(&'static str, &'static str)>)> = Vec::new();
    for (code, label) in EDUCATIONS {
        if is_education_group(code) {
            groups.push((label, Vec::new()));
        } else if code == "90" {
            groups.push(("", vec![(code, label)]));
        } else if let Some(last) = groups.last_mut() {
            last.1.push((code, label));
        }
    }
    groups
}

/// 工作岗位 (SPEC §4), keyed by the API's values.
pub const JOBS: [(&str, &str); 5] = [
    ("worker", "在岗职工"),
    ("farmer", "农牧渔民"),
    ("student", "学生"),
    ("retired", "离退休人员"),
    ("other", "其他"),
];

/// 人员类别.
pub const CATEGORIES: [(&str, &str); 2] = [("full", "正式党员"), ("probationary", "预备党员")];

/// 党籍状态.
pub const STATUSES: [(&str, &str); 1] = [("normal", "正常")];

pub fn label<'a>(table: &'a [(&'a str, &'a str)], code: &str) -> Option<&'a str> {
    table.iter().find(|(c, _)| *c == code).map(|(_, l)| *l)
}

/// Accepts a code or its Chinese label; returns the code.
pub fn code_of<'a>(table: &'a [(&'a str, &'a str)], value: &str) -> Option<&'a str> {
    let v = value.trim();
    table
        .iter()
        .find(|(c, l)| *c == v || *l == v)
        .map(|(c, _)| *c)
}
