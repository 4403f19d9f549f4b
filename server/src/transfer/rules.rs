//! The pure rules of transfers 组织关系转接 (SPEC §6): the kinds, the states, the path from the
//! source branch up to the lowest common ancestor and down to the target branch, the walk over
//! auto-approving nodes, where a return goes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which way a transfer goes relative to the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// 转出: a member of the platform leaves its branch (to another branch or outside).
    Outbound,
    /// 省外转入登记: a member comes from outside the platform.
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        [Direction::Outbound, Direction::Inbound]
            .into_iter()
            .find(|d| d.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Direction::Outbound => "转出",
            Direction::Inbound => "转入登记",
        }
    }
}

/// The transfer types 转出类型 / 转入类型 of the seeds' forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 转往本县（市、区、旗）内其他单位
    County,
    /// 转往本地（市、州、盟、区）内其他县（市、区、旗）
    City,
    /// 转往本地（市、州、盟、区）直属的其他单位
    CityDirect,
    /// 转往本省（区、市）内其他地（市、州、盟、区）
    Province,
    /// 转往省（区、市）直属单位
    ProvinceDirect,
    /// 转往外省（区、市）
    OutOfProvince,
    /// 转往军队
    Military,
    /// 转往中央和国家机关、中央企业
    Central,
    /// 自外省（区、市）转入
    FromOtherProvince,
    /// 自军队转入
    FromMilitary,
    /// 自中央和国家机关、中央企业转入
    FromCentral,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::County,
        Kind::City,
        Kind::CityDirect,
        Kind::Province,
        Kind::ProvinceDirect,
        Kind::OutOfProvince,
        Kind::Military,
        Kind::Central,
        Kind::FromOtherProvince,
        Kind::FromMilitary,
        Kind::FromCentral,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::County => "county",
            Kind::City => "city",
            Kind::CityDirect => "city_direct",
            Kind::Province => "province",
            Kind::ProvinceDirect => "province_direct",
            Kind::OutOfProvince => "out_of_province",
            Kind::Military => "military",
            Kind::Central => "central",
            Kind::FromOtherProvince => "from_other_province",
            Kind::FromMilitary => "from_military",
            Kind::FromCentral => "from_central",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::County => "转往本县（市、区、旗）内其他单位",
            Kind::City => "转往本地（市、州、盟、区）内其他县（市、区、旗）",
            Kind::CityDirect => "转往本地（市、州、盟、区）直属的其他单位",
            Kind::Province => "转往本省（区、市）内其他地（市、州、盟、区）",
            Kind::ProvinceDirect => "转往省（区、市）直属单位",
            Kind::OutOfProvince => "转往外省（区、市）",
            Kind::Military => "转往军队",
            Kind::Central => "转往中央和国家机关、中央企业",
            Kind::FromOtherProvince => "自外省（区、市）转入",
            Kind::FromMilitary => "自军队转入",
            Kind::FromCentral => "自中央和国家机关、中央企业转入",
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            Kind::FromOtherProvince | Kind::FromMilitary | Kind::FromCentral => Direction::Inbound,
            _ => Direction::Outbound,
        }
    }

    /// Is the destination an organisation of the platform (picked from the tree), or free
    /// text outside it?
    pub fn destination_inside(self) -> bool {
        matches!(
            self,
            Kind::County | Kind::City | Kind::CityDirect | Kind::Province | Kind::ProvinceDirect
        )
    }

    pub fn of(direction: Direction) -> impl Iterator<Item = Kind> {
        Kind::ALL
            .into_iter()
            .filter(move |k| k.direction() == direction)
    }
}

/// The state of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// 办理中: at a node of its path (the last node: waiting for receipt).
    Active,
    /// 已退回: back with the source, which may resubmit or void it.
    Returned,
    /// 已办结: received (or, outside the platform, the member moved to history).
    Completed,
    /// 已撤销 by the source before the first approval.
    Withdrawn,
    /// 已废件: a returned transfer voided by the source.
    Voided,
    /// 异常办结 by a tier-1 admin.
    Abnormal,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Active,
        State::Returned,
        State::Completed,
        State::Withdrawn,
        State::Voided,
        State::Abnormal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Returned => "returned",
            State::Completed => "completed",
            State::Withdrawn => "withdrawn",
            State::Voided => "voided",
            State::Abnormal => "abnormal",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            State::Active => "办理中",
            State::Returned => "已退回",
            State::Completed => "已办结",
            State::Withdrawn => "已撤销",
            State::Voided => "已废件",
            State::Abnormal => "异常办结",
        }
    }

    pub fn open(self) -> bool {
        matches!(self, State::Active | State::Returned)
    }
}

/// An organisation as the path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathOrg {
    pub id: String,
    pub code: String,
    pub name: String,
    pub category: String,
    /// 自动审核: the node passes at once.
    pub auto: bool,
}

/// A computed path: the nodes in order and the index of the last node of the source side (the
/// letter is issued when it approves; `None` for an inbound registration from outside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPlan {
    pub nodes: Vec<PathOrg>,
    pub source_end: Option<usize>,
}

/// The path between two branches inside the platform. `from` and `to` are the chains from the
/// root down to each branch. Branches under one basic committee 基层党委 (the nearest common
/// ancestor of category 611) make a one-step transfer approved by that committee; otherwise
/// the path climbs from the source to the lowest common ancestor and descends to the target.
pub fn path_between(from: &[PathOrg], to: &[PathOrg]) -> Option<PathPlan> {
    let (src, dst) = (from.last()?, to.last()?);
    let common = from
        .iter()
        .zip(to)
        .take_while(|(a, b)| a.id == b.id)
        .count();
    if common == 0 || common == from.len() || common == to.len() {
        return None;
    }
    let lca = common - 1;
    if let Some(committee) = from[..=lca].iter().rev().find(|o| o.category == "611") {
        return Some(PathPlan {
            nodes: vec![src.clone(), committee.clone(), dst.clone()],
            source_end: Some(1),
        });
    }
    let mut nodes: Vec<PathOrg> = from[lca..].iter().rev().cloned().collect();
    let source_end = nodes.len() - 1;
    nodes.extend(to[common..].iter().cloned());
    Some(PathPlan {
        nodes,
        source_end: Some(source_end),
    })
}

/// The path of an outbound transfer to outside the platform: the source branch up to the root;
/// the whole path is the source side.
pub fn path_to_outside(from: &[PathOrg]) -> PathPlan {
    let nodes: Vec<PathOrg> = from.iter().rev().cloned().collect();
    PathPlan {
        source_end: Some(nodes.len().saturating_sub(1)),
        nodes,
    }
}

/// The path of an inbound registration from outside the platform: the root down to the target.
pub fn path_from_outside(to: &[PathOrg]) -> PathPlan {
    PathPlan {
        nodes: to.to_vec(),
        source_end: None,
    }
}

/// The remaining path of a re-route 改变转接路径: from the current node (`current`, the chain
/// from the root to it) to the new target (its chain), the current node excluded. Climbs to
/// the lowest common ancestor and descends.
pub fn reroute_tail(current: &[PathOrg], to: &[PathOrg]) -> Option<Vec<PathOrg>> {
    let common = current
        .iter()
        .zip(to)
        .take_while(|(a, b)| a.id == b.id)
        .count();
    if common == 0 || common == to.len() {
        return None;
    }
    let mut tail: Vec<PathOrg> = current[common - 1..current.len() - 1]
        .iter()
        .rev()
        .cloned()
        .collect();
    tail.extend(to[common..].iter().cloned());
    Some(tail)
}

/// Is `path` a walk along the tree (each node the parent or a child of the one before)?
/// `parents[i]` is the parent id of `path[i]`.
pub fn is_tree_walk(ids: &[String], parents: &[Option<String>]) -> bool {
    ids.windows(2).zip(parents.windows(2)).all(|(w, p)| {
        p[1].as_deref() == Some(w[0].as_str()) || p[0].as_deref() == Some(w[1].as_str())
    })
}

/// The index of the node that acts next, starting the search at `start` and skipping the
/// auto-approving nodes (returned in `passed`). With a receiver at the end (a branch of the
/// platform) the last node never passes on its own; without one, `None` means the whole path
/// has approved.
pub fn next_from(
    auto: &[bool],
    start: usize,
    receiver_at_end: bool,
) -> (Option<usize>, Vec<usize>) {
    let stop = if receiver_at_end {
        auto.len() - 1
    } else {
        auto.len()
    };
    let mut next = start;
    let mut passed = Vec::new();
    while next < stop && auto[next] {
        passed.push(next);
        next += 1;
    }
    (
        (next < auto.len()).then_some(next.min(auto.len() - 1)),
        passed,
    )
}

/// Where a return 退回 from `step` goes: the nearest earlier node that does not pass on its
/// own, or `None` when only the source is left (the transfer goes back to it). `first` is the
/// index of the first node that approves (1 outbound: node 0 is the source branch; 0 inbound).
pub fn return_to(auto: &[bool], step: usize, first: usize) -> Option<usize> {
    (first..step).rev().find(|&i| !auto[i])
}

/// The name a letter and the records give an organisation: its full name when it starts with
/// 中共, else the names from the nearest ancestor that does down to it (第一党支部 →
/// 中共某县实验中学委员会第一党支部), so that two branches of the same name are told apart.
pub fn display_name(chain: &[PathOrg]) -> String {
    let start = chain
        .iter()
        .rposition(|o| o.name.starts_with("中共"))
        .unwrap_or(chain.len().saturating_sub(1));
    chain[start..].iter().map(|o| o.name.as_str()).collect()
}

/// Age in whole years on `on` for a birth date.
pub fn age_on(birth: chrono::NaiveDate, on: chrono::NaiveDate) -> u32 {
    use chrono::Datelike;
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years.max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str, category: &str) -> PathOrg {
        PathOrg {
            id: id.into(),
            code: id.into(),
            name: id.into(),
            category: category.into(),
            auto: false,
        }
    }

    fn ids(p: &[PathOrg]) -> Vec<&str> {
        p.iter().map(|o| o.id.as_str()).collect()
    }

    #[test]
    fn two_cities_climb_to_the_province_and_descend() {
        let root = org("P", "1");
        let from = [
            root.clone(),
            org("C1", "1"),
            org("K1", "1"),
            org("B1", "611"),
            org("S1", "631"),
        ];
        let to = [
            root,
            org("C2", "1"),
            org("K2", "1"),
            org("B2", "611"),
            org("S2", "631"),
        ];
        let plan = path_between(&from, &to).unwrap();
        assert_eq!(
            ids(&plan.nodes),
            ["S1", "B1", "K1", "C1", "P", "C2", "K2", "B2", "S2"]
        );
        assert_eq!(plan.source_end, Some(4));
    }

    #[test]
    fn one_county_meets_at_the_county() {
        let from = [
            org("P", "1"),
            org("K", "1"),
            org("B1", "611"),
            org("S1", "631"),
        ];
        let to = [org("P", "1"), org("K", "1"), org("S2", "631")];
        let plan = path_between(&from, &to).unwrap();
        assert_eq!(ids(&plan.nodes), ["S1", "B1", "K", "S2"]);
        assert_eq!(plan.source_end, Some(2));
    }

    #[test]
    fn branches_under_one_basic_committee_take_one_step() {
        let from = [
            org("K", "1"),
            org("B", "611"),
            org("G1", "621"),
            org("S1", "631"),
        ];
        let to = [
            org("K", "1"),
            org("B", "611"),
            org("G1", "621"),
            org("S2", "631"),
        ];
        let plan = path_between(&from, &to).unwrap();
        assert_eq!(ids(&plan.nodes), ["S1", "B", "S2"]);
        assert_eq!(plan.source_end, Some(1));
        let to_direct = [org("K", "1"), org("B", "611"), org("S3", "631")];
        assert_eq!(
            ids(&path_between(&from, &to_direct).unwrap().nodes),
            ["S1", "B", "S3"]
        );
    }

    #[test]
    fn the_same_branch_or_a_disjoint_tree_has_no_path() {
        let from = [org("K", "1"), org("S1", "631")];
        assert_eq!(path_between(&from, &from), None);
        let other = [org("X", "1"), org("S9", "631")];
        assert_eq!(path_between(&from, &other), None);
    }

    #[test]
    fn outside_ends_stop_at_the_root() {
        let from = [org("P", "1"), org("K", "1"), org("S1", "631")];
        let out = path_to_outside(&from);
        assert_eq!(ids(&out.nodes), ["S1", "K", "P"]);
        assert_eq!(out.source_end, Some(2));
        let inb = path_from_outside(&from);
        assert_eq!(ids(&inb.nodes), ["P", "K", "S1"]);
        assert_eq!(inb.source_end, None);
    }

    #[test]
    fn auto_nodes_pass_but_the_receiver_never_does() {
        let auto = [false, true, true, false, true];
        assert_eq!(next_from(&auto, 1, true), (Some(3), vec![1, 2]));
        assert_eq!(next_from(&auto, 4, true), (Some(4), vec![]));
        assert_eq!(next_from(&auto, 4, false), (None, vec![4]));
        assert_eq!(next_from(&[false, true], 1, false), (None, vec![1]));
        assert_eq!(return_to(&auto, 3, 1), None);
        assert_eq!(return_to(&[false, false, true, false], 3, 1), Some(1));
        assert_eq!(return_to(&[false, false], 1, 0), Some(0));
    }

    #[test]
    fn reroute_climbs_from_the_current_node() {
        let current = [org("P", "1"), org("C2", "1"), org("K2", "1")];
        let to = [
            org("P", "1"),
            org("C2", "1"),
            org("K3", "1"),
            org("S3", "631"),
        ];
        assert_eq!(
            ids(&reroute_tail(&current, &to).unwrap()),
            ["C2", "K3", "S3"]
        );
        let below = [
            org("P", "1"),
            org("C2", "1"),
            org("K2", "1"),
            org("S4", "631"),
        ];
        assert_eq!(ids(&reroute_tail(&current, &below).unwrap()), ["S4"]);
        assert!(reroute_tail(&current, &current).is_none());
    }

    #[test]
    fn a_walk_along_the_tree_is_recognised() {
        let ids_ = ["S1", "B", "S2"].map(String::from);
        let parents = [Some("B".to_string()), None, Some("B".to_string())];
        assert!(is_tree_walk(&ids_, &parents));
        let parents = [Some("B".to_string()), None, Some("X".to_string())];
        assert!(!is_tree_walk(&ids_, &parents));
    }

    #[test]
    fn branches_are_named_from_their_committee() {
        let mut k = org("K", "1");
        k.name = "中共东岭县委员会".into();
        let mut b = org("B", "611");
        b.name = "中共东岭县实验中学委员会".into();
        let mut g = org("G", "621");
        g.name = "机关党总支".into();
        let mut s = org("S", "631");
        s.name = "机关第一党支部".into();
        assert_eq!(
            display_name(&[k.clone(), b.clone(), g, s]),
            "中共东岭县实验中学委员会机关党总支机关第一党支部"
        );
        assert_eq!(display_name(&[k, b]), "中共东岭县实验中学委员会");
    }

    #[test]
    fn ages_count_whole_years() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(age_on(d("1990-06-15"), d("2026-06-14")), 35);
        assert_eq!(age_on(d("1990-06-15"), d("2026-06-15")), 36);
    }
}
