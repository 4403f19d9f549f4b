//! The `dangjian-agent` command: `readers`, `status`, `verify-pin`, `connect` (the card-signed
//! tunnel for the browser) and `enrol`. Output for people in Chinese; errors are one line on
//! stderr and a non-zero exit.
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use clap::{Parser, Subcommand};

use dangjian_agent::card::{self, CardEvent, CardThread};
use dangjian_agent::tunnel::{self, Outgoing, Phase, Tunnel, Upstream};
use dangjian_agent::{
    enrol, list_readers, pin, piv, tls, CardCertificate, Pin, PinStatus, PivError, Reader, SlotId,
};
use hyper::{header, HeaderMap, Method, StatusCode};
use rustls::RootCertStore;

/// 党建平台 USB Key 代理：读卡器与 PIV USB Key 的状态
#[derive(Parser)]
#[command(name = "dangjian-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// 列出读卡器：是否插入卡片、是否找到 PIV 应用
    Readers,
    /// 显示 USB Key 中的证书（持有人、身份证号、组织代码、有效期）与 PIN 剩余次数
    Status(CardArgs),
    /// 输入并验证 PIN（先显示剩余次数；非终端时从标准输入读一行）
    VerifyPin(CardArgs),
    /// 用 USB Key 登录平台：建立双向 TLS 连接（由 USB Key 签名），输入 PIN 与六位动态码，
    /// 然后在本机 127.0.0.1 上为浏览器提供访问入口
    Connect(ConnectArgs),
    /// 用证书申领码登记 USB Key：在卡内生成密钥、提交证书请求、写入签发的证书
    Enrol(EnrolArgs),
}

#[derive(clap::Args)]
struct ConnectArgs {
    /// 平台服务器地址，例如 https://dangjian.example.cn:8443
    #[arg(long)]
    server: String,
    /// 平台 CA 证书（PEM）：只信任它，不信任系统根证书
    #[arg(long)]
    ca: PathBuf,
    /// 本地端点的监听地址（只能是本机回环地址）
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// 六位动态码（不指定时询问；供脚本与测试使用）
    #[arg(long)]
    code: Option<String>,
    #[command(flatten)]
    card: CardArgs,
}

#[derive(clap::Args)]
struct EnrolArgs {
    /// 平台服务器地址
    #[arg(long)]
    server: String,
    /// 平台 CA 证书（PEM）
    #[arg(long)]
    ca: PathBuf,
    /// 安全保密员发放的证书申领码
    #[arg(long)]
    code: String,
    #[command(flatten)]
    card: CardArgs,
}

#[derive(clap::Args)]
struct CardArgs {
    /// 读卡器名称（或名称的一部分）；不指定时使用第一个插有卡片的读卡器
    #[arg(long)]
    reader: Option<String>,
    /// 没有 USB Key 时最多等待的秒数（0 = 不等待，直接提示）
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Readers => readers(),
        Cmd::Status(args) => status(&args),
        Cmd::VerifyPin(args) => verify_pin(&args),
        Cmd::Connect(args) => runtime().and_then(|rt| rt.block_on(connect(args))),
        Cmd::Enrol(args) => enrol_card(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let text = match err.downcast_ref::<PivError>() {
                Some(piv) => piv.message_zh(),
                None => err.to_string(),
            };
            eprintln!("错误：{text}");
            ExitCode::FAILURE
        }
    }
}

fn readers() -> anyhow::Result<()> {
    let readers = list_readers()?;
    if readers.is_empty() {
        return Err(PivError::NoReader.into());
    }
    for (i, info) in readers.iter().enumerate() {
        println!("读卡器 {}：{}", i + 1, info.name);
        match &info.atr {
            None => println!("  卡片：未插入"),
            Some(atr) => {
                println!("  卡片：已插入（ATR {}）", hex(atr));
                let found = Reader::open(Some(&info.name)).and_then(|mut r| r.run(|_| Ok(())));
                match found {
                    Ok(()) => println!("  PIV 应用：已找到"),
                    Err(PivError::NoPivApplet) => {
                        println!("  PIV 应用：未找到（不是 PIV USB Key）")
                    }
                    Err(e) => println!("  PIV 应用：无法读取（{}）", e.message_zh()),
                }
            }
        }
    }
    Ok(())
}

fn open(args: &CardArgs) -> Result<Reader, PivError> {
    match Reader::open(args.reader.as_deref()) {
        Err(e @ (PivError::NoReader | PivError::NoCard(_))) if args.wait > 0 => {
            eprintln!("{}；等待插入（最多 {} 秒）…", e.message_zh(), args.wait);
            Reader::wait_and_open(args.reader.as_deref(), Duration::from_secs(args.wait))
        }
        other => other,
    }
}

fn status(args: &CardArgs) -> anyhow::Result<()> {
    let mut reader = open(args)?;
    let (der, pin_status) = reader.run(|card| {
        let der = piv::read_certificate(card, SlotId::Authentication)?;
        Ok((der, piv::pin_status(card)?))
    })?;
    println!("读卡器：{}", reader.name());
    let now = Utc::now();
    let mut warning = None;
    match der {
        None => println!("证书（槽位 9A）：无 —— 请先登记（enrol）"),
        Some(der) => {
            let cert = CardCertificate::parse(&der)?;
            let none = || "（无）".to_string();
            println!("证书（槽位 9A）：");
            println!("  持有人：{}", cert.holder);
            println!(
                "  身份证号：{}",
                cert.id_number.clone().unwrap_or_else(none)
            );
            println!("  组织代码：{}", cert.org_code.clone().unwrap_or_else(none));
            println!("  颁发者：{}", cert.issuer);
            println!("  序列号：{}", cert.serial);
            if let Some(alg) = cert.algorithm {
                println!("  算法：{alg}");
            }
            println!(
                "  有效期：{} 至 {}（剩余 {} 天）",
                beijing(cert.not_before),
                beijing(cert.not_after),
                cert.days_left(now).max(0)
            );
            warning = cert.warning(now);
        }
    }
    println!("PIN：{}", describe(pin_status));
    if let Some(w) = warning {
        println!("警告：{w}");
    }
    Ok(())
}

fn verify_pin(args: &CardArgs) -> anyhow::Result<()> {
    let mut reader = open(args)?;
    let before = reader.run(piv::pin_status)?;
    eprintln!("PIN：{}", describe(before));
    if before == PinStatus::Blocked {
        return Err(PivError::PinBlocked.into());
    }
    let typed = pin::read_pin("请输入 PIN：")?;
    reader.run(|card| {
        piv::verify_pin(card, &typed)?;
        piv::logout(card)
    })?;
    println!("PIN 正确");
    Ok(())
}

fn describe(status: PinStatus) -> String {
    match status {
        PinStatus::Verified => "已验证".to_string(),
        PinStatus::TriesLeft(n) => format!("剩余 {n} 次尝试机会"),
        PinStatus::Blocked => "已锁定 —— 请联系安全保密员解锁".to_string(),
    }
}

fn beijing(t: DateTime<Utc>) -> String {
    let offset = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    t.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The PIN for a session: `DANGJIAN_AGENT_PIN` (scripts, tests), else asked without echo on a
/// terminal, else one line of standard input.
fn ask_pin() -> anyhow::Result<Pin> {
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
fn ask_code() -> anyhow::Result<String> {
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
fn unlock(card: &CardThread) -> anyhow::Result<()> {
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

fn read_roots(path: &PathBuf) -> anyhow::Result<RootCertStore> {
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

async fn connect(args: ConnectArgs) -> anyhow::Result<()> {
    let roots = read_roots(&args.ca)?;
    let listener = tunnel::bind(args.listen).await?;
    let port = listener.local_addr()?.port();
    let (reader, wait) = (args.card.reader.clone(), args.card.wait);
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
                    .is_some_and(|a| a.status.is_success());
                    if ended {
                        eprintln!("USB Key 已拔出：服务器会话已结束");
                    } else {
                        eprintln!("USB Key 已拔出：连接已断开，本机不再使用该会话");
                    }
                }
                if let Ok(config) = tls::client_config(roots.clone(), None) {
                    tunnel.upstream.reset(config);
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
    tunnel.upstream.reset(config);
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

fn enrol_card(args: &EnrolArgs) -> anyhow::Result<()> {
    let roots = read_roots(&args.ca)?;
    let card = CardThread::open(
        args.card.reader.as_deref(),
        Duration::from_secs(args.card.wait),
    )?;
    unlock(&card)?;
    eprintln!("正在 USB Key 内生成密钥（P-256）…");
    let csr = enrol::generate_and_request(&card)?;
    let upstream = Upstream::new(&args.server, tls::client_config(roots, None)?)?;
    let body = serde_json::json!({ "code": args.code, "csr": csr });
    let (status, answer) =
        runtime()?.block_on(upstream.json(Method::POST, "/api/v1/enrolment", None, Some(&body)))?;
    if status != StatusCode::OK {
        anyhow::bail!("证书申领失败：{}", tunnel::error_message(status, &answer));
    }
    let pem = answer["certificate"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("服务器应答缺少证书"))?;
    let der = enrol::store_certificate(&card, pem)?;
    let cert = CardCertificate::parse(&der)?;
    let _ = card.call(|r| r.run(piv::logout));
    println!("证书已写入 USB Key（槽位 9A）：");
    println!("  持有人：{}", cert.holder);
    println!("  身份证号：{}", cert.id_number.unwrap_or_default());
    println!("  组织代码：{}", cert.org_code.unwrap_or_default());
    println!("  序列号：{}", cert.serial);
    println!("  有效期至：{}", beijing(cert.not_after));
    Ok(())
}
