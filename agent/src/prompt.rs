//! What the agent asks of the person at the keyboard: the PIN (never echoed), the six-digit
//! code, and the PIN check on the card with the tries left shown before each try.
//!
//! Everything the agent says on the terminal goes through one writer ([`say`] for standard
//! error, [`show`] for the links on standard output, [`ask`] for a prompt): each message is
//! written whole under one lock and flushed, so a prompt never lands in the middle of another
//! line. While `connect` runs, one console thread ([`start_console`]) is the only reader of
//! standard input: a line typed while the session is open asks for a fresh one-time link; lines
//! typed while the USB key is out (or asked for) are the PIN and the code of the new session.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, OnceLock};

use crate::card::CardThread;
use crate::pin::{Pin, PinStatus};
use crate::PivError;

/// The one lock every terminal message is written under.
static WRITER: Mutex<()> = Mutex::new(());

fn write_whole(to_stdout: bool, text: &str) {
    let _held = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    // Anything half-written on the other stream goes first.
    if to_stdout {
        let _ = std::io::stderr().flush();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    } else {
        let _ = std::io::stdout().flush();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

/// One line for people, on standard error.
pub fn say(line: &str) {
    write_whole(false, &format!("{line}\n"));
}

/// One line on standard output (the links, "已恢复会话": what scripts read).
pub fn show(line: &str) {
    write_whole(true, &format!("{line}\n"));
}

/// A prompt on standard error, without a line ending, flushed.
pub fn ask(prompt: &str) {
    write_whole(false, prompt);
}

/// `say!("…{x}")`: [`say`] with `format!` arguments.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::prompt::say(&format!($($arg)*)) };
}

/// The PIN state in words.
pub fn describe(status: PinStatus) -> String {
    match status {
        PinStatus::Verified => "已验证".to_string(),
        PinStatus::TriesLeft(n) => format!("剩余 {n} 次尝试机会"),
        PinStatus::Blocked => "已锁定 —— 请联系安全保密员解锁".to_string(),
    }
}

/// Standard input once the console thread reads it.
struct Console {
    lines: Mutex<Receiver<String>>,
    /// Someone waits for a line (a PIN or code prompt is on screen).
    waiting: AtomicBool,
    /// The line awaited is a PIN: on a terminal the console thread reads it without echo.
    secret: AtomicBool,
}

static CONSOLE: OnceLock<Console> = OnceLock::new();

/// Starts the console thread: from now on it alone reads standard input. A line typed while
/// `link_wanted()` says yes and nobody waits for a PIN or code asks for a fresh link
/// (`on_link`); other lines are kept for the next prompt (empty lines and `l` are dropped then:
/// they were meant as link requests and would spend a PIN try).
pub fn start_console(
    link_wanted: impl Fn() -> bool + Send + 'static,
    on_link: impl Fn() + Send + 'static,
) {
    let (tx, rx) = mpsc::channel();
    let console = CONSOLE.get_or_init(|| Console {
        lines: Mutex::new(rx),
        waiting: AtomicBool::new(false),
        secret: AtomicBool::new(false),
    });
    let terminal = std::io::stdin().is_terminal();
    std::thread::spawn(move || loop {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => return, // no more input: links are no longer asked for
            Ok(_) => {}
        }
        let typed = line.trim_end_matches(['\r', '\n']).to_string();
        zeroize::Zeroize::zeroize(&mut line);
        let waiting = console.waiting.load(Ordering::SeqCst);
        if !waiting && link_wanted() {
            on_link();
            continue;
        }
        if !waiting && (typed.is_empty() || typed.eq_ignore_ascii_case("l")) {
            say("当前没有可用的会话，暂不能生成新的一次性链接。");
            continue;
        }
        // On a terminal the PIN is not typed on the line the console thread was waiting on
        // (it would be echoed): that line (Enter) opens a reading without echo.
        let typed =
            if terminal && waiting && console.secret.load(Ordering::SeqCst) && typed.is_empty() {
                ask("请输入 USB Key 的 PIN（输入时不显示）：");
                rpassword::read_password().unwrap_or_default()
            } else {
                typed
            };
        if tx.send(typed).is_err() {
            return;
        }
    });
}

/// One line of input for a prompt: from the console thread when it runs, else standard input.
fn read_line(prompt: &str, secret: bool) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if let Some(console) = CONSOLE.get() {
        if secret && std::io::stdin().is_terminal() {
            // The console thread already waits on the line: Enter first, then the prompt for
            // the reading without echo (`start_console`).
            say("请按回车键，然后输入 USB Key 的 PIN");
        } else {
            ask(prompt);
        }
        console.secret.store(secret, Ordering::SeqCst);
        console.waiting.store(true, Ordering::SeqCst);
        let got = console.lines.lock().unwrap().recv();
        console.waiting.store(false, Ordering::SeqCst);
        return got
            .map(zeroize::Zeroizing::new)
            .map_err(|_| anyhow::anyhow!("标准输入已关闭"));
    }
    if secret && std::io::stdin().is_terminal() {
        ask(prompt);
        return Ok(zeroize::Zeroizing::new(rpassword::read_password()?));
    }
    if std::io::stdin().is_terminal() {
        ask(prompt);
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    let typed = line.trim_end_matches(['\r', '\n']).to_string();
    Ok(zeroize::Zeroizing::new(typed))
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
            let typed = read_line("请输入 USB Key 的 PIN：", true)?;
            Ok(Pin::new(&typed)?)
        }
    }
}

/// The six-digit code: asked on a terminal, else one line of standard input.
pub fn ask_code() -> anyhow::Result<String> {
    let line = read_line("请输入六位动态码：", false)?;
    let code = line.trim().to_string();
    anyhow::ensure!(!code.is_empty(), "未输入六位动态码");
    Ok(code)
}

/// Verifies the PIN on the card, showing the tries left on a line of its own before each
/// prompt; a wrong PIN is asked again (unless it came from the environment).
pub fn unlock(card: &CardThread) -> anyhow::Result<()> {
    loop {
        match card.pin_status()? {
            PinStatus::Verified => return Ok(()),
            PinStatus::Blocked => return Err(PivError::PinBlocked.into()),
            PinStatus::TriesLeft(n) => say(&format!("PIN：剩余 {n} 次尝试机会")),
        }
        let pin = ask_pin()?;
        match card.verify_pin(pin) {
            Ok(()) => return Ok(()),
            Err(e @ PivError::WrongPin { .. }) => {
                say(&format!("错误：{}", e.message_zh()));
                if std::env::var_os("DANGJIAN_AGENT_PIN").is_some() {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
