//! Pure rules for organisations (SPEC §2): categories and their ranks, what may contain what,
//! unit linkage, sibling codes. No IO here.

use serde::{Deserialize, Serialize};

/// 组织类别.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// 1 中共各级委员会
    Committee,
    /// 2 中共各级工作委员会
    WorkingCommittee,
    /// 3 党组
    PartyGroup,
    /// 4 政府工作部门党委(党工委、总支部、支部)
    GovernmentDepartment,
    /// 5 中共军队委员会
    Military,
    /// 611 党委
    BasicCommittee,
    /// 621 党总支
    GeneralBranch,
    /// 631 党支部
    Branch,
    /// 632 联合党支部
    JointBranch,
    /// 9 临时基层党组织
    Temporary,
}

pub const ALL_CATEGORIES: [Category; 10] = [
    Category::Committee,
    Category::WorkingCommittee,
    Category::PartyGroup,
    Category::GovernmentDepartment,
    Category::Military,
    Category::BasicCommittee,
    Category::GeneralBranch,
    Category::Branch,
    Category::JointBranch,
    Category::Temporary,
];

impl Category {
    pub fn code(self) -> &'static str {
        match self {
            Category::Committee => "1",
            Category::WorkingCommittee => "2",
            Category::PartyGroup => "3",
            Category::GovernmentDepartment => "4",
            Category::Military => "5",
            Category::BasicCommittee => "611",
            Category::GeneralBranch => "621",
            Category::Branch => "631",
            Category::JointBranch => "632",
            Category::Temporary => "9",
        }
    }

    pub fn parse(code: &str) -> Option<Category> {
        ALL_CATEGORIES.into_iter().find(|c| c.code() == code.trim())
    }

    pub fn label(self) -> &'static str {
        match self {
            Category::Committee => "中共各级委员会",
            Category::WorkingCommittee => "中共各级工作委员会",
            Category::PartyGroup => "党组",
            Category::GovernmentDepartment => "政府工作部门党委(党工委、总支部、支部)",
            Category::Military => "中共军队委员会",
            Category::BasicCommittee => "党委",
            Category::GeneralBranch => "党总支",
            Category::Branch => "党支部",
            Category::JointBranch => "联合党支部",
            Category::Temporary => "临时基层党组织",
        }
    }

    /// Higher rank may contain lower ranks only.
    pub fn rank(self) -> u8 {
        match self {
            Category::Committee => 6,
            Category::WorkingCommittee
            | Category::PartyGroup
            | Category::GovernmentDepartment
            | Category::Military => 5,
            Category::BasicCommittee => 4,
            Category::GeneralBranch => 3,
            Category::Branch | Category::JointBranch | Category::Temporary => 2,
        }
    }

    /// Basic organisations (6xx, 9) must link a unit.
    pub fn is_basic(self) -> bool {
        self.rank() <= 4
    }

    /// Branch-type organisations hold members and no child organisations.
    pub fn is_branch(self) -> bool {
        matches!(
            self,
            Category::Branch | Category::JointBranch | Category::Temporary
        )
    }
}

/// Level of a category-1 committee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    County,
    City,
    Province,
    Central,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::County => "county",
            Level::City => "city",
            Level::Province => "province",
            Level::Central => "central",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.trim() {
            "county" | "县" => Some(Level::County),
            "city" | "市" => Some(Level::City),
            "province" | "省" => Some(Level::Province),
            "central" | "中央" => Some(Level::Central),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Level::County => "县级",
            Level::City => "市级",
            Level::Province => "省级",
            Level::Central => "中央",
        }
    }
}

/// 所在单位情况.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitMode {
    /// 与上级党组织相同
    SameAsParent,
    /// 法人单位
    LegalEntity,
    /// 联合党支部
    Joint,
}

impl UnitMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitMode::SameAsParent => "same_as_parent",
            UnitMode::LegalEntity => "legal_entity",
            UnitMode::Joint => "joint",
        }
    }

    pub fn parse(s: &str) -> Option<UnitMode> {
        match s {
            "same_as_parent" => Some(UnitMode::SameAsParent),
            "legal_entity" => Some(UnitMode::LegalEntity),
            "joint" => Some(UnitMode::Joint),
            _ => None,
        }
    }
}

/// A refusal naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        field,
        message: message.into(),
    }
}

/// May an organisation of (`parent`, `parent_level`) contain one of (`child`, `child_level`)?
pub fn may_contain(
    parent: Category,
    parent_level: Option<Level>,
    child: Category,
    child_level: Option<Level>,
) -> Result<(), Refusal> {
    if parent.is_branch() {
        return Err(refuse(
            "category",
            format!("{}不能设立下级党组织", parent.label()),
        ));
    }
    if parent == Category::Committee && child == Category::Committee {
        return match (parent_level, child_level) {
            (Some(p), Some(c)) if c < p => Ok(()),
            _ => Err(refuse("level", "中共各级委员会下只能设立级别更低的委员会")),
        };
    }
    if child.rank() < parent.rank() {
        Ok(())
    } else {
        Err(refuse(
            "category",
            format!(
                "{}下不能设立{}（下级党组织的类别层级必须低于上级）",
                parent.label(),
                child.label()
            ),
        ))
    }
}

/// The categories that may be created under a parent (for forms).
pub fn allowed_children(parent: Category, parent_level: Option<Level>) -> Vec<Category> {
    ALL_CATEGORIES
        .into_iter()
        .filter(|&c| {
            let level = (c == Category::Committee).then_some(Level::County);
            may_contain(parent, parent_level, c, level).is_ok()
        })
        .collect()
}

/// The unit linkage a request asks for, checked against the category and the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linkage {
    pub mode: Option<UnitMode>,
    pub unit_ids: Vec<String>,
    pub default_unit_id: Option<String>,
}

/// Checks the shape of a linkage: which modes a category allows and how many units each needs.
/// `parent_has_legal_entity_unit` tells whether `same_as_parent` is possible.
pub fn check_linkage(
    category: Category,
    mode: Option<UnitMode>,
    unit_ids: &[String],
    default_unit_id: Option<&str>,
    parent_has_legal_entity_unit: bool,
) -> Result<Linkage, Refusal> {
    let mut ids: Vec<String> = Vec::new();
    for id in unit_ids {
        let id = id.trim().to_string();
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    let Some(mode) = mode else {
        if category.is_basic() {
            return Err(refuse(
                "unit_mode",
                format!("{}必须填写所在单位情况并关联单位", category.label()),
            ));
        }
        if !ids.is_empty() {
            return Err(refuse("unit_mode", "关联单位时须选择所在单位情况"));
        }
        return Ok(Linkage {
            mode: None,
            unit_ids: vec![],
            default_unit_id: None,
        });
    };
    if category == Category::JointBranch && mode != UnitMode::Joint {
        return Err(refuse(
            "unit_mode",
            "联合党支部的所在单位情况必须为“联合党支部”",
        ));
    }
    if mode == UnitMode::Joint && category != Category::JointBranch {
        return Err(refuse(
            "unit_mode",
            "只有联合党支部的所在单位情况可以选择“联合党支部”",
        ));
    }
    match mode {
        UnitMode::SameAsParent => {
            if !parent_has_legal_entity_unit {
                return Err(refuse(
                    "unit_mode",
                    "上级党组织没有法人单位，不能选择“与上级党组织相同”",
                ));
            }
            Ok(Linkage {
                mode: Some(mode),
                unit_ids: vec![],
                default_unit_id: None,
            })
        }
        UnitMode::LegalEntity => {
            let unit = match (ids.as_slice(), default_unit_id) {
                ([one], _) => one.clone(),
                ([], Some(d)) if !d.trim().is_empty() => d.trim().to_string(),
                ([], _) => return Err(refuse("unit_ids", "请选择党组织所在的法人单位")),
                _ => return Err(refuse("unit_ids", "法人单位只能关联一个单位")),
            };
            Ok(Linkage {
                mode: Some(mode),
                unit_ids: vec![unit.clone()],
                default_unit_id: Some(unit),
            })
        }
        UnitMode::Joint => {
            if ids.len() < 2 {
                return Err(refuse("unit_ids", "联合党支部必须关联两个及以上单位"));
            }
            let Some(default) = default_unit_id.map(str::trim).filter(|d| !d.is_empty()) else {
                return Err(refuse("default_unit_id", "请在关联单位中指定一个主要单位"));
            };
            if !ids.iter().any(|i| i == default) {
                return Err(refuse("default_unit_id", "主要单位必须是已关联的单位之一"));
            }
            Ok(Linkage {
                mode: Some(mode),
                default_unit_id: Some(default.to_string()),
                unit_ids: ids,
            })
        }
    }
}

/// The sibling segment for the `seq`-th child (1-based): `01`..`99`, then `A000`..`Z999`.
/// Segments are prefix-free, so a code is a materialised path and a subtree is one range.
/// 党组织隶属关系 codes with their labels, as the national system lists them.
pub const SUBORDINATIONS: [(&str, &str); 6] = [
    ("1", "中央"),
    ("2", "省(区、市)"),
    ("3", "市(地、州、盟)"),
    ("4", "县(市、区、旗)"),
    ("5", "乡(镇、街道)"),
    ("9", "其他"),
];

/// The code of a 隶属关系 given as its code or its label.
pub fn subordination_code(v: &str) -> Option<&'static str> {
    let v = v.trim();
    SUBORDINATIONS
        .iter()
        .find(|(code, label)| *code == v || *label == v)
        .map(|(code, _)| *code)
}

/// The label of a stored 隶属关系: a code's label, or text recorded before the code list.
pub fn subordination_label(stored: &str) -> String {
    SUBORDINATIONS
        .iter()
        .find(|(code, _)| *code == stored)
        .map(|(_, label)| label.to_string())
        .unwrap_or_else(|| stored.to_string())
}

pub fn sibling_segment(seq: i64) -> Option<String> {
    match seq {
        1..=99 => Some(format!("{seq:02}")),
        100..=26_099 => {
            let n = seq - 100;
            let letter = char::from(b'A' + (n / 1000) as u8);
            Some(format!("{letter}{:03}", n % 1000))
        }
        _ => None,
    }
}

/// A root code as configured: 1 to 12 digits.
pub fn valid_root_code(code: &str) -> bool {
    (1..=12).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    #[test]
    fn branch_under_branch_is_refused() {
        assert!(may_contain(Branch, None, Branch, None).is_err());
        assert!(may_contain(JointBranch, None, Temporary, None).is_err());
    }

    #[test]
    fn committee_under_general_branch_is_refused() {
        let e = may_contain(GeneralBranch, None, BasicCommittee, None).unwrap_err();
        assert_eq!(e.field, "category");
        assert!(may_contain(BasicCommittee, None, GeneralBranch, None).is_ok());
        assert!(may_contain(GeneralBranch, None, Branch, None).is_ok());
    }

    #[test]
    fn committees_contain_lower_level_committees() {
        assert!(may_contain(
            Committee,
            Some(Level::Province),
            Committee,
            Some(Level::City)
        )
        .is_ok());
        assert!(may_contain(Committee, Some(Level::City), Committee, Some(Level::City)).is_err());
        assert!(may_contain(Committee, Some(Level::County), BasicCommittee, None).is_ok());
        assert!(may_contain(WorkingCommittee, None, Committee, Some(Level::County)).is_err());
    }

    #[test]
    fn allowed_children_of_a_general_branch() {
        assert_eq!(
            allowed_children(GeneralBranch, None),
            vec![Branch, JointBranch, Temporary]
        );
        assert!(allowed_children(Branch, None).is_empty());
    }

    #[test]
    fn linkage_rules() {
        let two = vec!["a".to_string(), "b".to_string()];
        assert!(check_linkage(Branch, None, &[], None, true).is_err());
        assert!(check_linkage(Branch, Some(UnitMode::SameAsParent), &[], None, false).is_err());
        assert!(check_linkage(Branch, Some(UnitMode::SameAsParent), &[], None, true).is_ok());
        assert!(check_linkage(
            JointBranch,
            Some(UnitMode::Joint),
            &two[..1],
            Some("a"),
            true
        )
        .is_err());
        assert!(check_linkage(JointBranch, Some(UnitMode::Joint), &two, None, true).is_err());
        let ok = check_linkage(JointBranch, Some(UnitMode::Joint), &two, Some("b"), true).unwrap();
        assert_eq!(ok.default_unit_id.as_deref(), Some("b"));
        assert!(check_linkage(Branch, Some(UnitMode::Joint), &two, Some("a"), true).is_err());
        assert!(check_linkage(Committee, None, &[], None, false).is_ok());
        let le = check_linkage(
            BasicCommittee,
            Some(UnitMode::LegalEntity),
            &two[..1],
            None,
            false,
        )
        .unwrap();
        assert_eq!(le.unit_ids, vec!["a".to_string()]);
    }

    #[test]
    fn sibling_segments_are_prefix_free_and_ordered() {
        assert_eq!(sibling_segment(1).as_deref(), Some("01"));
        assert_eq!(sibling_segment(99).as_deref(), Some("99"));
        assert_eq!(sibling_segment(100).as_deref(), Some("A000"));
        assert_eq!(sibling_segment(2100).as_deref(), Some("C000"));
        assert_eq!(sibling_segment(26_099).as_deref(), Some("Z999"));
        assert_eq!(sibling_segment(26_100), None);
        assert_eq!(sibling_segment(0), None);
        assert!(sibling_segment(99).unwrap() < sibling_segment(100).unwrap());
    }
}
