//! What the agent asks of the person at the keyboard: the PIN (never echoed), the six-digit
//! code, and the PIN check on the card with the tries left shown before each try.

use std::io::{BufRead, IsTerminal, Write};

use crate::card::CardThread;
use crate::pin::{self, Pin, PinStatus};
use crate::PivError;

/// The PIN state in words.
pub fn describe(status: PinStatus) -> String {
    match status {
        PinStatus::Verified => "已验证".to_string(),
        PinStatus::TriesLeft(n) => format!("剩余 {n} 次尝试机会"),
        PinStatus::Blocked => "已锁定 —— 请联系安全保密员解锁".to_string(),
    }
}

/// The PIN for a session: `DANGJIAN_AGENT_PIN` (scripts, tests), else asked without echo on a
/// terminal, else one line of standard input.
pub fn ask_pin() -> anyhow::Result<Pin> {
    match std::env::var("DANGJIAN_AGENT_PIN") {
        Ok(mut typed) => {
            let pin = Pin::new(typed.trim());
            zeroize::Zeroize::zeroize(&mut typed);
            Ok(pin?)
        }
        Err(_) => {
            pin::read_pin("请输入 USB Key 的 PIN：").map_err(|e| match e.downcast::<PivError>() {
                Ok(p) => p.into(),
                Err(e) => e,
            })
        }
    }
}

/// The six-digit code: asked on a terminal, else one line of standard input.
pub fn ask_code() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("请输入六位动态码：");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let code = line.trim().to_string();
    anyhow::ensure!(!code.is_empty(), "未输入六位动态码");
    Ok(code)
}

/// Verifies the PIN on the card, showing the tries left before each try; a wrong PIN is asked
/// again (unless it came from the environment).
pub fn unlock(card: &CardThread) -> anyhow::Result<()> {
    loop {
        match card.pin_status()? {
            PinStatus::Verified => return Ok(()),
            PinStatus::Blocked => return Err(PivError::PinBlocked.into()),
            PinStatus::TriesLeft(n) => eprintln!("PIN：剩余 {n} 次尝试机会"),
        }
        let pin = ask_pin()?;
        match card.verify_pin(pin) {
            Ok(()) => return Ok(()),
            Err(e @ PivError::WrongPin { .. }) => {
                eprintln!("错误：{}", e.message_zh());
                if std::env::var_os("DANGJIAN_AGENT_PIN").is_some() {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
