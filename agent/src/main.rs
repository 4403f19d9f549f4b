//! The `dangjian-agent` command: `readers`, `status`, `verify-pin`. Output for people in
//! Chinese; errors are one line on stderr and a non-zero exit.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use clap::{Parser, Subcommand};

use dangjian_agent::{
    list_readers, pin, piv, CardCertificate, PinStatus, PivError, Reader, SlotId,
};

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
