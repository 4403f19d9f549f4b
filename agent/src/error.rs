//! `PivError`: everything that can go wrong between the agent and the key, carrying what the
//! user needs (tries left, which reader) and a Chinese message for people (`message_zh`).

use std::fmt;

use crate::apdu::StatusWord;

/// An error of the PIV layer. `Display` is a short English line for logs; `message_zh` is the
/// sentence to show the administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PivError {
    /// The PIN was wrong; the card allows `tries_left` more tries.
    #[error("wrong PIN, {tries_left} tries left")]
    WrongPin { tries_left: u8 },
    /// The PIN is blocked (no tries left); a security officer must reset it.
    #[error("PIN blocked")]
    PinBlocked,
    /// The PIN typed does not have the form the card accepts (6 to 8 characters).
    #[error("PIN must be 6 to 8 characters")]
    PinFormat,
    /// The PUK was wrong; the card allows `tries_left` more tries.
    #[error("wrong PUK, {tries_left} tries left")]
    WrongPuk { tries_left: u8 },
    /// The PUK is blocked: the PIN can no longer be unblocked; the key must be replaced.
    #[error("PUK blocked")]
    PukBlocked,
    /// The PUK typed does not have the form the card accepts (6 to 8 characters).
    #[error("PUK must be 6 to 8 characters")]
    PukFormat,
    /// The card refused the 9B management key (wrong key, or the witness did not decrypt).
    #[error("management key refused by the card")]
    WrongManagementKey,
    /// The card refused the management-key algorithm asked for.
    #[error("management key algorithm {0} refused by the card")]
    ManagementKeyAlgorithm(&'static str),
    /// The management key given is not hex of the algorithm's key length.
    #[error("management key must be {0} bytes of hex")]
    ManagementKeyFormat(usize),
    /// The card wants the 9B management key before this command (GENERATE, PUT DATA: 6982).
    #[error("management key authentication required")]
    ManagementKeyRequired,
    /// The card's answer to our challenge was wrong: it does not hold the key we hold.
    #[error("the card failed the management-key challenge")]
    ManagementKeyChallenge,
    /// The object or key asked for is not on the card (6A82).
    #[error("object or key not found on the card")]
    NotFound,
    /// The operation needs the PIN (or management key) first (6982).
    #[error("security status not satisfied")]
    SecurityStatusNotSatisfied,
    /// The card refused the command's parameters or data (6A80, 6A86, 6700, …).
    #[error("card refused the command: {0}")]
    Refused(StatusWord),
    /// Any other status word.
    #[error("unexpected status {0}")]
    Unexpected(StatusWord),
    /// The card's answer could not be understood.
    #[error("malformed card data: {0}")]
    Malformed(&'static str),
    /// The card has no PIV application.
    #[error("no PIV application on the card")]
    NoPivApplet,
    /// No reader is attached (or pcscd knows none).
    #[error("no smart-card reader")]
    NoReader,
    /// The named reader does not exist.
    #[error("reader not found: {0}")]
    ReaderNotFound(String),
    /// The reader is there but holds no card.
    #[error("no card in reader {0}")]
    NoCard(String),
    /// The card was pulled out during the operation.
    #[error("card removed")]
    CardRemoved,
    /// The card was reset by another program during the operation; the agent reconnected,
    /// but the operation's state (e.g. a verified PIN) is gone.
    #[error("card reset during the operation")]
    CardReset,
    /// Another program holds the card (a sharing violation).
    #[error("card in use by another program")]
    InUse,
    /// The PC/SC service (pcscd) is not running or not reachable.
    #[error("PC/SC service unavailable")]
    NoService,
    /// Any other PC/SC failure, with pcsc-lite's text.
    #[error("PC/SC: {0}")]
    Pcsc(String),
}

impl PivError {
    /// The sentence for people (Simplified Chinese), one line, no trailing period.
    pub fn message_zh(&self) -> String {
        match self {
            Self::WrongPin { tries_left } => {
                format!("PIN 错误，还剩 {tries_left} 次尝试机会；连续输错将锁定 USB Key")
            }
            Self::PinBlocked => "PIN 已锁定（连续输错次数过多），请联系安全保密员解锁".to_string(),
            Self::PinFormat => "PIN 应为 6 至 8 位".to_string(),
            Self::WrongPuk { tries_left: 0 } => {
                "PUK 错误，PUK 已锁定：这把 USB Key 无法再解锁，请联系安全保密员更换 USB Key"
                    .to_string()
            }
            Self::WrongPuk { tries_left } => format!(
                "PUK 错误，还剩 {tries_left} 次尝试机会；PUK 锁定后 USB Key 无法再解锁，只能更换"
            ),
            Self::PukBlocked => {
                "PUK 已锁定：这把 USB Key 无法再解锁，请联系安全保密员更换 USB Key".to_string()
            }
            Self::PukFormat => "PUK 应为 6 至 8 位".to_string(),
            Self::WrongManagementKey => {
                "管理密钥（9B）错误：USB Key 拒绝了管理密钥认证，请核对 --management-key 与 \
                 --management-key-algorithm（或联系安全保密员）"
                    .to_string()
            }
            Self::ManagementKeyAlgorithm(alg) => format!(
                "USB Key 不接受 {alg} 算法的管理密钥（9B），请用 --management-key-algorithm 指定正确的算法"
            ),
            Self::ManagementKeyFormat(len) => {
                format!("管理密钥（9B）格式错误：应为 {len} 字节的十六进制（{} 个字符）", len * 2)
            }
            Self::ManagementKeyRequired => {
                "USB Key 要求先通过管理密钥（9B）认证才能生成密钥或写入证书".to_string()
            }
            Self::ManagementKeyChallenge => {
                "USB Key 对管理密钥（9B）挑战的应答不正确：该 USB Key 可能不可信".to_string()
            }
            Self::NotFound => "USB Key 中没有所需的证书或密钥".to_string(),
            Self::SecurityStatusNotSatisfied => "需要先输入 PIN".to_string(),
            Self::Refused(sw) => format!("USB Key 拒绝了该操作（状态字 {sw}）"),
            Self::Unexpected(sw) => format!("USB Key 返回了意外的状态（状态字 {sw}）"),
            Self::Malformed(what) => format!("USB Key 返回的数据无法解析：{what}"),
            Self::NoPivApplet => "该卡片不是 PIV USB Key（未找到 PIV 应用）".to_string(),
            Self::NoReader => "未找到读卡器：请插入 USB Key".to_string(),
            Self::ReaderNotFound(name) => format!("未找到读卡器“{name}”"),
            Self::NoCard(reader) => format!("读卡器“{reader}”中没有 USB Key，请插入"),
            Self::CardRemoved => "USB Key 已拔出".to_string(),
            Self::CardReset => "USB Key 被其他程序重置，请重试".to_string(),
            Self::InUse => "USB Key 正被其他程序使用，请关闭该程序后重试".to_string(),
            Self::NoService => "智能卡服务（pcscd）未运行".to_string(),
            Self::Pcsc(text) => format!("读卡器错误：{text}"),
        }
    }

    /// Maps a status word that is not success to the error it means (SP 800-73-4 part 2 §5.6).
    pub fn from_status(sw: StatusWord) -> Self {
        match sw.0 {
            0x6983 => Self::PinBlocked,
            0x63C0..=0x63CF => Self::WrongPin {
                tries_left: (sw.0 & 0x0F) as u8,
            },
            0x6A82 => Self::NotFound,
            0x6982 => Self::SecurityStatusNotSatisfied,
            0x6700 | 0x6A80 | 0x6A81 | 0x6A84 | 0x6A86 | 0x6A88 | 0x6D00 | 0x6E00 | 0x6985
            | 0x6986 => Self::Refused(sw),
            _ => Self::Unexpected(sw),
        }
    }
}

impl From<pcsc::Error> for PivError {
    fn from(err: pcsc::Error) -> Self {
        match err {
            pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard => Self::CardRemoved,
            pcsc::Error::ResetCard => Self::CardReset,
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => Self::NoService,
            pcsc::Error::NoReadersAvailable => Self::NoReader,
            pcsc::Error::SharingViolation => Self::InUse,
            other => Self::Pcsc(other.to_string()),
        }
    }
}

/// Displays the status word as four hex digits, e.g. `6A82`.
impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_map_to_what_the_user_needs() {
        for (sw, expected) in [
            (0x63C2, PivError::WrongPin { tries_left: 2 }),
            (0x63C0, PivError::WrongPin { tries_left: 0 }),
            (0x6983, PivError::PinBlocked),
            (0x6A82, PivError::NotFound),
            (0x6982, PivError::SecurityStatusNotSatisfied),
            (0x6A80, PivError::Refused(StatusWord(0x6A80))),
            (0x6F00, PivError::Unexpected(StatusWord(0x6F00))),
        ] {
            assert_eq!(PivError::from_status(StatusWord(sw)), expected, "{sw:04X}");
        }
    }

    #[test]
    fn messages_are_chinese_and_carry_the_count() {
        let msg = PivError::WrongPin { tries_left: 2 }.message_zh();
        assert!(msg.contains("还剩 2 次"), "{msg}");
        assert!(PivError::PinBlocked.message_zh().contains("锁定"));
        assert!(!msg.ends_with('。'));
        let puk = PivError::WrongPuk { tries_left: 1 }.message_zh();
        assert!(puk.contains("PUK 错误，还剩 1 次"), "{puk}");
        assert!(PivError::PukBlocked.message_zh().contains("更换 USB Key"));
        assert!(PivError::WrongManagementKey
            .message_zh()
            .contains("管理密钥"));
    }
}
