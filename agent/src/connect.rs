//! `dangjian-agent connect`: the card signs the mutual-TLS handshake, the PIN and the six-digit
//! code open the card session, the local endpoint serves the browser, and a watcher on the
//! reader ends the session the moment the card is pulled (and resumes it when it is back).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hyper::{header, HeaderMap, Method, StatusCode};
use rustls::RootCertStore;

use crate::card::{self, CardEvent, CardThread};
use crate::prompt::{ask_code, unlock};
use crate::tunnel::{self, Outgoing, Phase, Tunnel, Upstream};
use crate::{tls, CardCertificate, PivError};

/// What `connect` needs.
pub struct Options {
    /// `https://host:port`
    pub server: String,
    /// The platform CA (PEM), the only root trusted.
    pub ca: PathBuf,
    /// The local endpoint (loopback only).
    pub listen: SocketAddr,
    /// The six-digit code for the first session (asked when absent).
    pub code: Option<String>,
    /// A reader name (or part of one).
    pub reader: Option<String>,
    /// Seconds to wait for a card.
    pub wait: u64,
    /// How the browser is opened at the first link.
    pub browser: Browser,
}

/// How the agent opens the browser at its one-time link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Browser {
    /// Not at all (`--no-browser`): the link is only printed.
    None,
    /// The system's opener: `xdg-open` (Linux and other Unix), `open` (macOS),
    /// `cmd /c start` (Windows).
    System,
    /// This program, given the link as its only argument (`--open-with`,
    /// `DANGJIAN_AGENT_OPENER`).
    Program(PathBuf),
}

impl Browser {
    /// The command that opens `url`, or none.
    fn command(&self, url: &str) -> Option<std::process::Command> {
        let mut cmd = match self {
            Browser::None => return None,
            Browser::Program(program) => std::process::Command::new(program),
            Browser::System if cfg!(target_os = "windows") => {
                let mut c = std::process::Command::new("cmd");
                // `start` takes its first quoted argument as a window title.
                c.args(["/c", "start", ""]);
                c
            }
            Browser::System if cfg!(target_os = "macos") => std::process::Command::new("open"),
            Browser::System => std::process::Command::new("xdg-open"),
        };
        cmd.arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Some(cmd)
    }

    /// Opens the browser at `url` in the background; a failure only says so (the link is
    /// printed already).
    pub fn open(&self, url: &str) {
        let Some(mut cmd) = self.command(url) else {
            return;
        };
        let program = cmd.get_program().to_string_lossy().into_owned();
        match cmd.spawn() {
            Err(e) => crate::say!(
                "未能自动打开浏览器（{program}：{e}）：请在浏览器中手动打开上面的地址。"
            ),
            Ok(mut child) => {
                std::thread::spawn(move || {
                    match child.wait() {
                    Ok(status) if !status.success() => crate::say!(
                        "未能自动打开浏览器（{program} 退出状态 {status}）：请在浏览器中手动打开上面的地址。"
                    ),
                    _ => {}
                }
                });
            }
        }
    }
}

pub fn read_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("无法读取 CA 证书 {}：{e}", path.display()))?;
    tls::roots_from_pem(&pem)
}

/// The TLS configuration with the card's current certificate and key (read from slot 9A now).
fn card_config(
    roots: &RootCertStore,
    card: &CardThread,
) -> anyhow::Result<(tls::TlsClient, CardCertificate)> {
    let der = card
        .certificate()?
        .ok_or_else(|| anyhow::anyhow!("USB Key 中没有证书（槽位 9A）：请先登记（enrol）"))?;
    let cert = CardCertificate::parse(&der)?;
    let alg = cert
        .algorithm
        .ok_or(PivError::Malformed("证书的密钥算法不受支持"))?;
    let key = tls::CardSigningKey::new(card.clone(), alg);
    let config = tls::client_config(roots.clone(), Some(tls::CardCertResolver::new(der, key)))?;
    Ok((config, cert))
}

/// `POST /api/v1/session/card {code}` over the card's connection: the session token.
async fn open_session(upstream: &Upstream, code: &str) -> anyhow::Result<String> {
    let (status, body) = upstream
        .json(
            Method::POST,
            "/api/v1/session/card",
            None,
            Some(&serde_json::json!({ "code": code })),
        )
        .await?;
    if status != StatusCode::OK {
        anyhow::bail!("登录失败：{}", tunnel::error_message(status, &body));
    }
    if let Some(notice) = body["notice"].as_str() {
        crate::say!("提示：{notice}");
    }
    body["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("服务器的登录应答缺少会话令牌"))
}

/// Runs blocking card or terminal work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Runs the tunnel until the process ends.
pub async fn run(args: Options) -> anyhow::Result<()> {
    let roots = read_roots(&args.ca)?;
    let listener = tunnel::bind(args.listen).await?;
    let port = listener.local_addr()?.port();
    let (reader, wait) = (args.reader.clone(), args.wait);
    let card = blocking(move || {
        if wait > 0 {
            crate::say!("等待插入 USB Key（最多 {wait} 秒）…");
        }
        Ok(CardThread::open(
            reader.as_deref(),
            Duration::from_secs(wait),
        )?)
    })
    .await?;
    let (config, cert) = {
        let (roots, card) = (roots.clone(), card.clone());
        blocking(move || card_config(&roots, &card)).await?
    };
    crate::say!(
        "USB Key：{}（{}，{}）",
        cert.holder,
        cert.org_code.clone().unwrap_or_default(),
        card.reader_name()
    );
    if let Some(w) = cert.warning(Utc::now()) {
        crate::say!("警告：{w}");
    }
    {
        let card = card.clone();
        blocking(move || unlock(&card)).await?;
    }
    let upstream = Upstream::new(&args.server, config)?;
    let code = match args.code {
        Some(c) => c,
        None => blocking(ask_code).await?,
    };
    let token = open_session(&upstream, &code).await?;
    let tunnel = Arc::new(Tunnel::new(upstream, port, token));
    let first = tunnel.first_url();
    crate::prompt::show(&first);
    if args.browser == Browser::None {
        crate::say!("已登录：请在浏览器中打开上面的一次性链接。");
    } else {
        crate::say!("已登录：正在打开浏览器（未打开时请手动打开上面的一次性链接）。");
    }
    crate::say!(
        "需要新的一次性链接（例如换用其他浏览器）时，按回车键（或输入 l 后回车）。拔出 USB Key 会立即结束会话；按 Ctrl+C 退出代理。"
    );
    {
        let (asked, minted) = (tunnel.clone(), tunnel.clone());
        crate::prompt::start_console(
            move || matches!(asked.phase(), Phase::Open { .. }),
            move || {
                crate::say!("新的一次性链接（此前显示的链接随之失效）：");
                crate::prompt::show(&minted.fresh_url());
            },
        );
    }
    args.browser.open(&first);

    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
    card::watch(card.reader_name(), move |e| events_tx.send(e).is_ok())?;
    tokio::spawn(supervise(tunnel.clone(), card, roots, events));
    tunnel::serve(listener, tunnel).await
}

/// Follows the card: pulled → the session ends (over a connection still open), the tunnel
/// answers 503 and forgets its connections and TLS sessions; back → PIN, code, a new session.
async fn supervise(
    tunnel: Arc<Tunnel>,
    card: CardThread,
    roots: RootCertStore,
    mut events: tokio::sync::mpsc::UnboundedReceiver<CardEvent>,
) {
    while let Some(event) = events.recv().await {
        match event {
            CardEvent::Removed => {
                let previous = tunnel.phase();
                tunnel.set_phase(Phase::CardRemoved);
                if let Phase::Open { token } = previous {
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        header::AUTHORIZATION,
                        format!("Bearer {token}")
                            .parse()
                            .expect("header-safe token"),
                    );
                    let out = Outgoing {
                        method: Method::DELETE,
                        path: "/api/v1/session".into(),
                        headers,
                        body: Default::default(),
                    };
                    let ended = tokio::time::timeout(
                        Duration::from_secs(2),
                        tunnel.upstream.send_on_open_connection(&out),
                    )
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|a| a.status().is_success());
                    if ended {
                        crate::say!("USB Key 已拔出：服务器会话已结束");
                    } else {
                        crate::say!("USB Key 已拔出：连接已断开，本机不再使用该会话");
                    }
                }
                if let Ok(config) = tls::client_config(roots.clone(), None) {
                    tunnel.upstream.reset(config).await;
                }
                crate::say!("{}", tunnel::REMOVED_MESSAGE);
            }
            CardEvent::Inserted => {
                if !matches!(tunnel.phase(), Phase::CardRemoved) {
                    continue;
                }
                tunnel.set_phase(Phase::Reopening);
                crate::say!("USB Key 已插入");
                match reopen(&tunnel, &card, &roots).await {
                    Ok(token) => {
                        tunnel.set_phase(Phase::Open { token });
                        crate::prompt::show("已恢复会话");
                    }
                    Err(e) => {
                        tunnel.set_phase(Phase::CardRemoved);
                        let text = match e.downcast_ref::<PivError>() {
                            Some(p) => p.message_zh(),
                            None => e.to_string(),
                        };
                        crate::say!("错误：{text}；请拔出并重新插入 USB Key 再试");
                    }
                }
            }
        }
    }
}

async fn reopen(
    tunnel: &Tunnel,
    card: &CardThread,
    roots: &RootCertStore,
) -> anyhow::Result<String> {
    let (config, _) = {
        let (roots, card) = (roots.clone(), card.clone());
        blocking(move || card_config(&roots, &card)).await?
    };
    {
        let card = card.clone();
        blocking(move || unlock(&card)).await?;
    }
    tunnel.upstream.reset(config).await;
    let mut tries = 0;
    loop {
        let code = blocking(ask_code).await?;
        match open_session(&tunnel.upstream, &code).await {
            Ok(token) => return Ok(token),
            Err(e) if tries < 2 => {
                tries += 1;
                crate::say!("{e}");
            }
            Err(e) => return Err(e),
        }
    }
}
