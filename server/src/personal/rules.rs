//! Pure rules of registration and the member's page.

use sha2::{Digest, Sha256};

use crate::member::MemberRow;

/// What the mobile given at registration means for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MobileRule {
    /// No registered phone is recorded: the mobile becomes it.
    BecomesRegistered,
    /// The mobile is the registered phone.
    Matches,
    /// Another phone is registered: refused (the branch updates it first).
    Differs,
}

/// The mobile rule of SPEC §8 / issue 18.
pub fn mobile_rule(registered: Option<&str>, given: &str) -> MobileRule {
    match registered.map(str::trim).filter(|r| !r.is_empty()) {
        None => MobileRule::BecomesRegistered,
        Some(r) if r == given.trim() => MobileRule::Matches,
        Some(_) => MobileRule::Differs,
    }
}

/// Does the name given match the record's? Surrounding and inner blanks do not count (a name
/// typed 张 三 is 张三); otherwise exact.
pub fn name_matches(record: &str, given: &str) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let g = squeeze(given);
    !g.is_empty() && squeeze(record) == g
}

/// SHA-256 of a code, bound to what it belongs to (a mobile's blind index or an account).
pub fn code_hash(subject: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(subject.as_bytes());
    h.update([0x1f]);
    h.update(code.trim().as_bytes());
    hex::encode(h.finalize())
}

/// The fields of a record that `member::rules::completeness` counts and that are empty, with
/// their Chinese labels, in form order.
pub fn missing_fields(m: &MemberRow) -> Vec<String> {
    let mut out = Vec::new();
    let mut lack = |empty: bool, label: &str| {
        if empty {
            out.push(label.to_string());
        }
    };
    lack(
        m.id_number == crate::member::idcard::UNKNOWN_ID_NUMBER,
        "公民身份证号",
    );
    lack(m.education.is_empty(), "学历");
    lack(
        m.category == "full" && m.full_on.is_none(),
        "转为正式党员日期",
    );
    lack(m.job.is_empty(), "工作岗位");
    lack(m.phone.trim().is_empty(), "联系电话");
    lack(m.address.trim().is_empty(), "家庭住址");
    lack(
        m.registered_phone
            .as_deref()
            .is_none_or(|p| p.trim().is_empty()),
        "登记手机号",
    );
    lack(m.origin.trim().is_empty(), "籍贯");
    lack(m.title.trim().is_empty(), "职称");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mobile_becomes_registered_or_must_match() {
        assert_eq!(
            mobile_rule(None, "13800000000"),
            MobileRule::BecomesRegistered
        );
        assert_eq!(
            mobile_rule(Some(" "), "13800000000"),
            MobileRule::BecomesRegistered
        );
        assert_eq!(
            mobile_rule(Some("13800000000"), "13800000000"),
            MobileRule::Matches
        );
        assert_eq!(
            mobile_rule(Some("13800000000"), "13900000000"),
            MobileRule::Differs
        );
    }

    #[test]
    fn names_compare_without_blanks() {
        assert!(name_matches("张三", " 张 三 "));
        assert!(!name_matches("张三", "张四"));
        assert!(!name_matches("张三", ""));
    }

    #[test]
    fn codes_are_bound_to_their_subject() {
        assert_ne!(code_hash("a", "123456"), code_hash("b", "123456"));
        assert_eq!(code_hash("a", " 123456 "), code_hash("a", "123456"));
    }
}
