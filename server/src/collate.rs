//! Chinese ordering of person names (issue 12 item 6): 姓氏拼音 (the default) and 姓氏笔画
//! (stroke count of the surname, then of the characters that follow, as official rosters are
//! ordered).
//!
//! Both orders come from ICU4X's collator (`icu_collator`, the Unicode Consortium's Rust ICU,
//! with CLDR's Chinese tailorings compiled in): `zh` is CLDR's pinyin order and
//! `zh-u-co-stroke` its stroke order. The collator writes a *sort key* whose bytes compare as
//! the names do, so the key is computed once when a name is written, stored hex-encoded beside
//! the name (`members.sort_pinyin`, `members.sort_strokes`) and ordered by the database with
//! plain byte comparison (`COLLATE "C"` on PostgreSQL, SQLite's default), through an index.
//!
//! CLDR files a character under its most common reading; a few surnames are read otherwise
//! (曾 zēng, 单 shàn, 解 xiè …), and the pinyin key reads them as surnames (`SURNAME_READINGS`).
//!
//! Sort keys are only valid for the collator and CLDR data that made them: [`version`] names
//! both (a fingerprint of the keys of a fixed probe text), and the server recomputes the
//! stored keys at start when it changes (`member::store_keys::backfill`).

use std::sync::LazyLock;

use icu_collator::{options::CollatorOptions, CollatorBorrowed};
use icu_locale_core::Locale;
use sha2::{Digest, Sha256};

/// How a list of names is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameOrder {
    /// 姓氏拼音
    #[default]
    Pinyin,
    /// 姓氏笔画
    Strokes,
}

impl NameOrder {
    /// `pinyin` | `strokes`.
    pub fn parse(s: &str) -> Option<NameOrder> {
        match s.trim() {
            "pinyin" => Some(NameOrder::Pinyin),
            "strokes" => Some(NameOrder::Strokes),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NameOrder::Pinyin => "pinyin",
            NameOrder::Strokes => "strokes",
        }
    }

    /// What the user reads: 姓氏拼音 / 姓氏笔画.
    pub fn label(self) -> &'static str {
        match self {
            NameOrder::Pinyin => "姓氏拼音",
            NameOrder::Strokes => "姓氏笔画",
        }
    }

    /// The other order (what a header link switches to).
    pub fn other(self) -> NameOrder {
        match self {
            NameOrder::Pinyin => NameOrder::Strokes,
            NameOrder::Strokes => NameOrder::Pinyin,
        }
    }

    /// The column that holds this order's key.
    pub fn column(self) -> &'static str {
        match self {
            NameOrder::Pinyin => "sort_pinyin",
            NameOrder::Strokes => "sort_strokes",
        }
    }

    /// The key of `name` in this order.
    pub fn key(self, name: &str) -> String {
        match self {
            NameOrder::Pinyin => pinyin_key(name),
            NameOrder::Strokes => strokes_key(name),
        }
    }
}

fn collator(locale: &str) -> CollatorBorrowed<'static> {
    let locale: Locale = locale.parse().expect("a valid locale");
    CollatorBorrowed::try_new((&locale).into(), CollatorOptions::default())
        .expect("the Chinese collations are compiled in")
}

static PINYIN: LazyLock<CollatorBorrowed<'static>> = LazyLock::new(|| collator("zh"));
static STROKES: LazyLock<CollatorBorrowed<'static>> = LazyLock::new(|| collator("zh-u-co-stroke"));

fn key_with(collator: &CollatorBorrowed<'static>, name: &str) -> String {
    let mut key = Vec::with_capacity(name.len() * 4);
    let Ok(()) = collator.write_sort_key_to(name.trim(), &mut key);
    hex::encode(key)
}

/// Surnames whose reading as a surname is not the character's most common reading, which is
/// the one CLDR's pinyin order files it under (曾 as céng would come before 丁): the key of the
/// name is taken with a character of the surname's reading in its place. Only unambiguous
/// surname readings are listed.
const SURNAME_READINGS: [(char, char); 17] = [
    ('曾', '增'), // zēng, not céng
    ('单', '善'), // shàn, not dān
    ('解', '谢'), // xiè, not jiě
    ('仇', '求'), // qiú, not chóu
    ('区', '欧'), // ōu, not qū
    ('朴', '瓢'), // piáo, not pǔ
    ('查', '渣'), // zhā, not chá
    ('盖', '葛'), // gě, not gài
    ('缪', '妙'), // miào, not móu
    ('翟', '宅'), // zhái, not dí
    ('覃', '秦'), // qín, not tán
    ('召', '邵'), // shào, not zhào
    ('繁', '婆'), // pó, not fán
    ('员', '运'), // yùn, not yuán
    ('秘', '必'), // bì, not mì
    ('种', '虫'), // chóng, not zhǒng
    ('折', '舌'), // shé, not zhé
];

/// The 姓氏拼音 sort key of a name: lower-case hex, compared bytewise. The surname is read as
/// a surname (`SURNAME_READINGS`).
pub fn pinyin_key(name: &str) -> String {
    let name = name.trim();
    let mut chars = name.chars();
    match chars
        .next()
        .and_then(|c| SURNAME_READINGS.iter().find(|(s, _)| *s == c))
    {
        Some((_, read_as)) => {
            let mut as_read = String::with_capacity(name.len());
            as_read.push(*read_as);
            as_read.push_str(chars.as_str());
            key_with(&PINYIN, &as_read)
        }
        None => key_with(&PINYIN, name),
    }
}

/// The 姓氏笔画 sort key of a name: lower-case hex, compared bytewise.
pub fn strokes_key(name: &str) -> String {
    key_with(&STROKES, name)
}

/// Names the collator and its data: stored keys made under another version are recomputed.
pub fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        // Surnames across the pinyin alphabet and stroke counts, a minority-name separator and
        // Latin letters: a change of the data that moves any of these changes the version.
        const PROBE: &str = "丁于王何张李赵钱孙周吴郑冯陈褚卫蒋沈韩杨朱秦尤许吕施曾单解区仇\
                             欧阳司马上官诸葛阿依古丽·买买提 Ab zz 0 9";
        let mut h = Sha256::new();
        for c in PROBE.chars() {
            let s = c.to_string();
            h.update(pinyin_key(&s));
            h.update([0]);
            h.update(strokes_key(&s));
            h.update([1]);
        }
        format!("icu4x-collator-zh-{}", &hex::encode(h.finalize())[..16])
    });
    &VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str], order: NameOrder) -> Vec<String> {
        let mut v: Vec<(String, String)> = names
            .iter()
            .map(|n| (order.key(n), n.to_string()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn code_point_order_is_neither() {
        // 丁 U+4E01, 于 U+4E8E, 何 U+4F55, 王 U+738B: code point order is 丁 于 何 王.
        let mut by_code_point = vec!["何", "王", "于", "丁"];
        by_code_point.sort();
        assert_eq!(by_code_point, ["丁", "于", "何", "王"]);
        // 姓氏拼音: ding < he < wang < yu.
        assert_eq!(
            sorted(&["何", "王", "于", "丁"], NameOrder::Pinyin),
            ["丁", "何", "王", "于"]
        );
        // 姓氏笔画: 丁 2 strokes, 于 3, 王 4, 何 7.
        assert_eq!(
            sorted(&["何", "王", "于", "丁"], NameOrder::Strokes),
            ["丁", "于", "王", "何"]
        );
    }

    #[test]
    fn surname_first_then_given_name() {
        // Same surname: the given name decides, in either order. 二 and 八 have 2 strokes
        // (二 starts with 横, 八 with 撇, and 横 comes first), 五 has 4.
        assert_eq!(
            sorted(&["王五", "王二", "王八"], NameOrder::Strokes),
            ["王二", "王八", "王五"]
        );
        assert_eq!(
            sorted(&["王五", "王二", "王八"], NameOrder::Pinyin),
            ["王八", "王二", "王五"]
        );
        // The surname decides before the given name: 丁 (2 strokes) before 王 (4) whatever follows.
        assert_eq!(
            sorted(&["王一", "丁鑫鑫"], NameOrder::Strokes),
            ["丁鑫鑫", "王一"]
        );
        // Surnames are read as surnames: 曾 zēng (not céng), 单 shàn (not dān).
        assert_eq!(
            sorted(&["张三", "曾三", "丁三", "单三"], NameOrder::Pinyin),
            ["丁三", "单三", "曾三", "张三"]
        );
        // ... which changes nothing in stroke order (曾 12 strokes, 单 8).
        assert_eq!(
            sorted(&["曾三", "单三", "丁三"], NameOrder::Strokes),
            ["丁三", "单三", "曾三"]
        );
        // A surname alone sorts before the same surname with a given name.
        assert_eq!(sorted(&["张三", "张"], NameOrder::Pinyin), ["张", "张三"]);
    }

    #[test]
    fn keys_are_hex_and_stable() {
        let k = pinyin_key("张三");
        assert!(!k.is_empty() && k.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k, pinyin_key(" 张三 "));
        assert_ne!(pinyin_key("张三"), strokes_key("张三"));
        assert_eq!(NameOrder::parse("strokes"), Some(NameOrder::Strokes));
        assert_eq!(NameOrder::parse("x"), None);
        assert!(version().starts_with("icu4x-collator-zh-"));
        assert_eq!(version(), version());
    }
}
