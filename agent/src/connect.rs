//! `dangjian-agent connect`: the card signs the mutual-TLS handshake, the PIN and the six-digit
//! code open the card session, the local endpoint serves the browser, and a watcher on the
//! reader ends the session the moment the card is pulled (and resumes it when it is back).

use std::io::Write;
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
        eprintln!("提示：{notice}");
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
            eprintln!("等待插入 USB Key（最多 {wait} 秒）…");
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
    eprintln!(
        "USB Key：{}（{}，{}）",
        cert.holder,
        cert.org_code.clone().unwrap_or_default(),
        card.reader_name()
    );
    if let Some(w) = cert.warning(Utc::now()) {
        eprintln!("警告：{w}");
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
    println!("{}", tunnel.first_url());
    let _ = std::io::stdout().flush();
    eprintln!("已登录：请在浏览器中打开上面的地址。拔出 USB Key 会立即结束会话。");

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
                        eprintln!("USB Key 已拔出：服务器会话已结束");
                    } else {
                        eprintln!("USB Key 已拔出：连接已断开，本机不再使用该会话");
                    }
                }
                if let Ok(config) = tls::client_config(roots.clone(), None) {
                    tunnel.upstream.reset(config).await;
                }
                eprintln!("{}", tunnel::REMOVED_MESSAGE);
            }
            CardEvent::Inserted => {
                if !matches!(tunnel.phase(), Phase::CardRemoved) {
                    continue;
                }
                tunnel.set_phase(Phase::Reopening);
                eprintln!("USB Key 已插入");
                match reopen(&tunnel, &card, &roots).await {
                    Ok(token) => {
                        tunnel.set_phase(Phase::Open { token });
                        println!("已恢复会话");
                        let _ = std::io::stdout().flush();
                    }
                    Err(e) => {
                        tunnel.set_phase(Phase::CardRemoved);
                        let text = match e.downcast_ref::<PivError>() {
                            Some(p) => p.message_zh(),
                            None => e.to_string(),
                        };
                        eprintln!("错误：{text}；请拔出并重新插入 USB Key 再试");
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
                eprintln!("{e}");
            }
            Err(e) => return Err(e),
        }
    }
}
