//! The `dangjian-agent` command: `readers`, `status`, `verify-pin`, `connect` (the card-signed
//! tunnel for the browser) and `enrol`. Output for people in Chinese; errors are one line on
//! stderr and a non-zero exit.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use clap::{Parser, Subcommand};

use dangjian_agent::card::CardThread;
use dangjian_agent::prompt::{describe, unlock};
use dangjian_agent::tunnel::{self, Upstream};
use dangjian_agent::{
    connect, enrol, list_readers, pin, piv, tls, CardCertificate, PinStatus, PivError, Reader,
    SlotId,
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
        Cmd::Connect(args) => runtime().and_then(|rt| {
            rt.block_on(connect::run(connect::Options {
                server: args.server,
                ca: args.ca,
                listen: args.listen,
                code: args.code,
                reader: args.card.reader,
                wait: args.card.wait,
            }))
        }),
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

fn enrol_card(args: &EnrolArgs) -> anyhow::Result<()> {
    let roots = connect::read_roots(&args.ca)?;
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
