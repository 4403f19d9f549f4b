//! The `dangjian-agent` command: `readers`, `status`, `verify-pin`, `change-pin`,
//! `unblock-pin`, `change-puk`, `connect` (the card-signed tunnel for the browser) and `enrol`. Output for people in Chinese; errors are one line on
//! stderr and a non-zero exit.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use clap::{Parser, Subcommand};

use dangjian_agent::card::CardThread;
use dangjian_agent::mgmt::MgmtAlgorithm;
use dangjian_agent::prompt::{ask_pin, describe, unlock};
use dangjian_agent::tunnel::{self, Upstream};
use dangjian_agent::{
    connect, enrol, list_readers, pin, piv, tls, AlgorithmId, CardCertificate, Pin, PinStatus,
    PivError, Reader, SlotId,
};
use hyper::{Method, StatusCode};

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
    /// 修改 PIN：输入当前 PIN 与新 PIN（6 至 8 位，输入两次）
    ChangePin(CardArgs),
    /// 用 PUK 解锁 PIN 并设置新 PIN（PIN 输错锁定后使用）
    UnblockPin(CardArgs),
    /// 修改 PUK：输入当前 PUK 与新 PUK（6 至 8 位，输入两次）
    ChangePuk(CardArgs),
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
    /// 不自动打开浏览器，只显示一次性链接（也可设置环境变量 DANGJIAN_AGENT_NO_BROWSER=1）
    #[arg(long)]
    no_browser: bool,
    /// 用指定的程序打开一次性链接（链接作为唯一参数），代替系统默认浏览器
    /// （xdg-open、open 或 start）；也可用环境变量 DANGJIAN_AGENT_OPENER 指定
    #[arg(long, value_name = "PROGRAM")]
    open_with: Option<PathBuf>,
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
    /// 在 USB Key 内生成的密钥算法：p256（默认）或 rsa2048
    #[arg(long, default_value = "p256", value_parser = parse_algorithm)]
    algorithm: AlgorithmId,
    /// USB Key 的管理密钥（9B，十六进制）；不指定时用环境变量 DANGJIAN_AGENT_MGMT_KEY，
    /// 再没有则用出厂默认密钥
    #[arg(long)]
    management_key: Option<String>,
    /// 管理密钥算法：3des、aes128、aes192、aes256；不指定时向 USB Key 查询（查询不到按 3des）
    #[arg(long, value_parser = parse_mgmt_algorithm)]
    management_key_algorithm: Option<MgmtAlgorithm>,
    #[command(flatten)]
    card: CardArgs,
}

fn parse_algorithm(s: &str) -> Result<AlgorithmId, String> {
    match s.to_ascii_lowercase().as_str() {
        "p256" => Ok(AlgorithmId::EccP256),
        "rsa2048" => Ok(AlgorithmId::Rsa2048),
        _ => Err("应为 p256 或 rsa2048".to_string()),
    }
}

fn parse_mgmt_algorithm(s: &str) -> Result<MgmtAlgorithm, String> {
    s.parse().map_err(|e: PivError| e.message_zh())
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
        Cmd::ChangePin(args) => change_pin(&args),
        Cmd::UnblockPin(args) => unblock_pin(&args),
        Cmd::ChangePuk(args) => change_puk(&args),
        Cmd::Connect(args) => runtime().and_then(|rt| {
            rt.block_on(connect::run(connect::Options {
                server: args.server,
                ca: args.ca,
                listen: args.listen,
                code: args.code,
                reader: args.card.reader,
                wait: args.card.wait,
                browser: browser_choice(args.no_browser, args.open_with),
            }))
        }),
        Cmd::Enrol(mut args) => enrol_card(&mut args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let text = match err.downcast_ref::<PivError>() {
                Some(piv) => piv.message_zh(),
                None => err.to_string(),
            };
            dangjian_agent::say!("错误：{text}");
            ExitCode::FAILURE
        }
    }
}

/// `--no-browser` (or `DANGJIAN_AGENT_NO_BROWSER`) first, then `--open-with` (or
/// `DANGJIAN_AGENT_OPENER`), else the system's opener.
fn browser_choice(no_browser: bool, open_with: Option<PathBuf>) -> connect::Browser {
    let env_off =
        std::env::var("DANGJIAN_AGENT_NO_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0");
    if no_browser || env_off {
        return connect::Browser::None;
    }
    let program = open_with.or_else(|| {
        std::env::var_os("DANGJIAN_AGENT_OPENER")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    match program {
        Some(p) => connect::Browser::Program(p),
        None => connect::Browser::System,
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
            dangjian_agent::say!("{}；等待插入（最多 {} 秒）…", e.message_zh(), args.wait);
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
    dangjian_agent::say!("PIN：{}", describe(before));
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

/// A new PIN or PUK, typed twice.
fn ask_new(what: &str, read: fn(&str) -> anyhow::Result<Pin>) -> anyhow::Result<Pin> {
    let first = read(&format!("请输入新 {what}（6 至 8 位）："))?;
    let second = read(&format!("请再次输入新 {what}："))?;
    anyhow::ensure!(
        *first.padded() == *second.padded(),
        "两次输入的新 {what} 不一致，{what} 未修改"
    );
    Ok(first)
}

fn puk_words(status: Option<PinStatus>) -> String {
    match status {
        Some(PinStatus::TriesLeft(n)) => format!("剩余 {n} 次尝试机会"),
        Some(PinStatus::Blocked) => "已锁定".to_string(),
        Some(PinStatus::Verified) | None => "剩余次数未知（该 USB Key 不提供）".to_string(),
    }
}

fn change_pin(args: &CardArgs) -> anyhow::Result<()> {
    let mut reader = open(args)?;
    let before = reader.run(piv::pin_status)?;
    dangjian_agent::say!("PIN：{}", describe(before));
    if before == PinStatus::Blocked {
        anyhow::bail!(
            "{}（可用 unblock-pin 以 PUK 解锁）",
            PivError::PinBlocked.message_zh()
        );
    }
    let old = ask_pin()?;
    let new = ask_new("PIN", pin::read_pin)?;
    let result = reader.run(|card| piv::change_pin(card, &old, &new));
    drop((old, new));
    let _ = reader.run(piv::logout);
    result?;
    println!("PIN 已修改");
    Ok(())
}

fn unblock_pin(args: &CardArgs) -> anyhow::Result<()> {
    let mut reader = open(args)?;
    let (pin_state, puk_state) =
        reader.run(|card| Ok((piv::pin_status(card)?, piv::puk_status(card)?)))?;
    dangjian_agent::say!("PIN：{}", describe(pin_state));
    dangjian_agent::say!("PUK：{}", puk_words(puk_state));
    if puk_state == Some(PinStatus::Blocked) {
        return Err(PivError::PukBlocked.into());
    }
    let puk = pin::read_puk("请输入 PUK：")?;
    let new = ask_new("PIN", pin::read_pin)?;
    let result = reader.run(|card| piv::unblock_pin(card, &puk, &new));
    drop((puk, new));
    result?;
    println!("PIN 已解锁并设置为新 PIN（剩余 3 次尝试机会）");
    Ok(())
}

fn change_puk(args: &CardArgs) -> anyhow::Result<()> {
    let mut reader = open(args)?;
    let before = reader.run(piv::puk_status)?;
    dangjian_agent::say!("PUK：{}", puk_words(before));
    if before == Some(PinStatus::Blocked) {
        return Err(PivError::PukBlocked.into());
    }
    let old = pin::read_puk("请输入当前 PUK：")?;
    let new = ask_new("PUK", pin::read_puk)?;
    let result = reader.run(|card| piv::change_puk(card, &old, &new));
    drop((old, new));
    result?;
    println!("PUK 已修改");
    Ok(())
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

/// The management key for scripts (hex), when `--management-key` is not given.
const MGMT_KEY_ENV: &str = "DANGJIAN_AGENT_MGMT_KEY";

fn enrol_card(args: &mut EnrolArgs) -> anyhow::Result<()> {
    // The management key leaves the parsed arguments at once and is wiped after parsing.
    let mut key_hex = args
        .management_key
        .take()
        .or_else(|| std::env::var(MGMT_KEY_ENV).ok())
        .map(zeroize::Zeroizing::new);
    let roots = connect::read_roots(&args.ca)?;
    let upstream = Upstream::new(&args.server, tls::client_config(roots, None)?)?;
    let rt = runtime()?;

    // 1. The code first: nothing happens on the card unless the server accepts it.
    let check = serde_json::json!({ "code": args.code });
    let (status, holder) =
        rt.block_on(upstream.json(Method::POST, "/api/v1/enrolment/check", None, Some(&check)))?;
    if status != StatusCode::OK {
        anyhow::bail!(
            "证书申领码未通过核验：{}",
            tunnel::error_message(status, &holder)
        );
    }
    let text = |k: &str| holder[k].as_str().unwrap_or_default().to_string();
    let org = match holder["org_name"].as_str() {
        Some(name) => format!("{name}（{}）", text("org_code")),
        None => text("org_code"),
    };
    dangjian_agent::say!("证书申领码有效：证书将签发给 {}，{org}", text("name"));

    // 2. The card: PIN, management key, key pair, CSR.
    let card = CardThread::open(
        args.card.reader.as_deref(),
        Duration::from_secs(args.card.wait),
    )?;
    unlock(&card)?;
    let key = enrol::management_key(
        &card,
        args.management_key_algorithm,
        key_hex.as_deref().map(String::as_str),
    );
    key_hex.take();
    let key = key?;
    dangjian_agent::say!("正在以管理密钥（9B，{}）认证…", key.algorithm());
    enrol::authenticate(&card, key)?;
    dangjian_agent::say!(
        "正在 USB Key 内为 {} 生成密钥（{}）…",
        text("name"),
        args.algorithm
    );
    let csr = enrol::generate_and_request(&card, args.algorithm)?;
    // The card's attestation that the key was generated on it, when the card makes one.
    let attestation = enrol::read_attestation(&card)?;
    let (statement, signer) = match attestation {
        Some((statement, signer)) => {
            dangjian_agent::say!("已读取 USB Key 的密钥证明（attestation），随证书请求一并提交");
            (Some(statement), Some(signer))
        }
        None => {
            dangjian_agent::say!("该 USB Key 不提供密钥证明（attestation），证书请求不附带证明");
            (None, None)
        }
    };

    // 3. The certificate.
    let body = serde_json::json!({
        "code": args.code,
        "csr": csr,
        "attestation": statement,
        "attestation_signer": signer,
    });
    let (status, answer) =
        rt.block_on(upstream.json(Method::POST, "/api/v1/enrolment", None, Some(&body)))?;
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
    if let Some(alg) = cert.algorithm {
        println!("  算法：{alg}");
    }
    println!("  序列号：{}", cert.serial);
    println!("  有效期至：{}", beijing(cert.not_after));
    Ok(())
}
