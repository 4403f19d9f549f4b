//! Units 单位 (SPEC §3): the workplaces organisations are built in.

pub mod credit_code;
pub mod routes;
pub mod store;

/// 单位类别.
pub const UNIT_CATEGORIES: [(&str, &str); 6] = [
    ("1", "乡镇街道"),
    ("2", "企业"),
    ("3", "事业单位"),
    ("4", "机关"),
    ("5", "社会组织"),
    ("9", "其他"),
];

/// 单位建立党组织情况.
pub const PARTY_ORG_SITUATIONS: [(i64, &str); 4] = [
    (1, "单独建立基层党组织的"),
    (2, "建立联合党支部的"),
    (3, "应建未建立党组织的(3名及以上党员)"),
    (4, "未建立党组织的(不足3名党员)"),
];

pub fn category_label(code: &str) -> Option<&'static str> {
    UNIT_CATEGORIES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
}
