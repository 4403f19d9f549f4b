//! The command line (API.md "Command-line contract"): `init`, `serve`, `demo`, `migrate`,
//! `audit-verify`, `rotate-keys`. Errors go to stderr in one line with a non-zero exit.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::access::Role;
use crate::account::{password, store as accounts, totp};
use crate::app::router;
use crate::audit::{self, Event, Who};
use crate::config::{write_private, Config, ConfigFile};
use crate::db::{new_id, sqlite_url, Db};
use crate::org::rules::valid_root_code;
use crate::org::store::NewOrg;
use crate::state::AppState;

#[derive(Parser)]
#[command(
    name = "dangjian-server",
    version,
    about = "党员信息管理平台服务端 — the dangjian platform server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: configuration, TLS certificate, database, root organisation and
    /// the first security officer (printed once)
    Init(InitArgs),
    /// Serve HTTPS (or plain HTTP on loopback with --insecure-http)
    Serve(ServeArgs),
    /// Init plus a synthetic province with demo accounts, then serve
    Demo(DemoArgs),
    /// Apply pending database migrations and exit
    Migrate(DbArgs),
    /// Check the audit chain, and compare it with the signed heads of the witness file: exit 0
    /// when intact, 1 naming the first broken record and why
    AuditVerify(VerifyArgs),
    /// Sign the head of the audit chain now and append it to the witness file (the server does
    /// this every minute and at shutdown)
    AuditWitness(DbArgs),
    /// Delete audit records older than the retention period (config `audit_retention_days`,
    /// default 180, at least 180), keeping the chain verifiable through an anchor record
    AuditPrune(DbArgs),
    /// Add a new encryption key version, make it current and re-encrypt every encrypted
    /// column in batches while servers keep running; then retire the older versions
    RotateKeys(DbArgs),
    /// Real-name verification (SPEC §9): import the local registry, issue the HTTP adapter's
    /// client certificate
    #[command(subcommand)]
    Realname(RealnameCommand),
    /// Print the current six-digit code of a base32 TOTP secret (demos and scripts)
    TotpCode {
        /// The base32 secret, e.g. a demo account's totp_secret
        #[arg(long)]
        secret: String,
    },
}

#[derive(Subcommand)]
enum RealnameCommand {
    /// Import a CSV (ID number, name; header allowed; UTF-8 with or without BOM) into the local
    /// registry: numbers already there take the new name (upsert); bad lines are reported with
    /// their line numbers and skipped
    Import {
        #[command(flatten)]
        db: DbArgs,
        /// The CSV file
        file: PathBuf,
        /// Import nothing when any line is bad (exit 1)
        #[arg(long)]
        strict: bool,
    },
    /// Issue the client certificate this server presents to a provincial real-name service,
    /// from the platform CA (<data>/ca): writes realname-client.crt and realname-client.key
    /// into --out
    ClientCert {
        /// Data directory
        #[arg(long)]
        data: PathBuf,
        /// Output directory
        #[arg(long)]
        out: PathBuf,
        /// The certificate's CN
        #[arg(long, default_value = "dangjian realname client")]
        name: String,
        /// Validity in days
        #[arg(long, default_value_t = 730)]
        days: u32,
    },
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Data directory
    #[arg(long)]
    data: PathBuf,
    /// Database URL (postgres://…); default: the SQLite file in the data directory
    #[arg(long)]
    database: Option<String>,
}

#[derive(Args, Clone)]
struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Witness file to compare with (default: <data>/audit-witness.jsonl when present), e.g. a
    /// copy kept on another host
    #[arg(long)]
    witness: Option<PathBuf>,
    /// Public key of the witness (hex; default: <data>/witness.pub), e.g. the copy kept with the
    /// witness file elsewhere
    #[arg(long)]
    witness_key: Option<PathBuf>,
    /// Check the chain only, without a witness file
    #[arg(long, conflicts_with_all = ["witness", "witness_key"])]
    no_witness: bool,
}

#[derive(Args, Clone)]
struct InitArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Full name of the root organisation
    #[arg(long)]
    root_name: String,
    /// Unified code of the root organisation (digits), e.g. 037
    #[arg(long)]
    root_code: String,
    /// Level of the root committee: central, province, city or county
    #[arg(long, default_value = "province")]
    root_level: String,
    /// Name of the first security officer
    #[arg(long, default_value = "安全员")]
    officer_name: String,
    /// ID number of the first security officer (a synthetic one is made when absent)
    #[arg(long)]
    officer_id_number: Option<String>,
    /// Mobile of the first security officer
    #[arg(long, default_value = "13900000000")]
    officer_mobile: String,
    /// The address clients reach the server at, e.g. https://dangjian.example.cn:8443: names
    /// the CRL distribution point in every card certificate and the server certificate
    #[arg(long, default_value = "https://localhost:8443")]
    public_url: String,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: String,
    /// Serve plain HTTP (refused on any address that is not loopback)
    #[arg(long)]
    insecure_http: bool,
    /// A streaming replica of the PostgreSQL primary (postgres://…, read-only): lists, queries,
    /// statistics and the tree are read there; writes, sessions, jobs and every request of a
    /// session that wrote in the last few seconds go to the primary (read-your-writes)
    #[arg(long, value_name = "URL")]
    database_read: Option<String>,
    /// Balancers whose PROXY protocol v2 headers are believed (HAProxy `send-proxy-v2`):
    /// addresses or CIDR blocks, repeated or comma-separated, e.g. 10.0.0.5/32. A connection
    /// from one of them may start with the header, whose source address is then the client's
    /// for throttling, lockout and the audit; a header from any other peer is refused
    #[arg(long, value_name = "CIDR")]
    proxy_from: Vec<String>,
}

#[derive(Args, Clone)]
struct DemoArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Number of synthetic members
    #[arg(long, default_value_t = 50_000)]
    members: usize,
    /// Build the demo data and exit without serving
    #[arg(long)]
    no_serve: bool,
    /// The address clients reach the server at (default: the address it listens on)
    #[arg(long)]
    public_url: Option<String>,
    /// Real-name verification 实名认证 of a new demo: `local` checks entries and renames
    /// against a registry of every demo member and 20 people who are not members yet
    /// (demo-realname.json); `none` checks nothing (entries are 实名未核验)
    #[arg(long, default_value = "local", value_parser = ["local", "none"])]
    realname: String,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DANGJIAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init(args) => {
            let created = init(&args).await?;
            print_first_officer(&created, &args.db.data);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            serve(&args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            demo(&args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            let db = open_db(&args).await?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::RotateKeys(args) => {
            let db = open_db(&args).await?;
            db.migrate().await?;
            let started = std::time::Instant::now();
            let report = crate::crypto::rotate::rotate(
                &db,
                &args.data,
                &crate::crypto::rotate::Options::default(),
                &mut |line| {
                    println!("{line}");
                    std::io::stdout().flush().ok();
                },
            )
            .await?;
            println!(
                "key v{} current; {} rows re-encrypted in {:.1} s",
                report.version,
                report.rewritten,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Realname(cmd) => realname(cmd).await,
        Command::TotpCode { secret } => {
            let now = chrono::Utc::now().timestamp() as u64;
            println!("{}", totp::code_at(secret.trim(), now)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::AuditPrune(args) => {
            let db = open_db(&args).await?;
            let days = ConfigFile::load(&args.data)?.audit_retention_days;
            let report = audit::prune(&db, days).await?;
            println!(
                "pruned {} audit records older than {}{}",
                report.pruned,
                report.cutoff,
                if report.anchor.is_some() {
                    "; anchor recorded"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::AuditVerify(args) => audit_verify(&args).await,
        Command::AuditWitness(args) => {
            let db = open_db(&args).await?;
            let witness = audit::witness::Witness::open(&args.data)?;
            if let Some(line) = witness.sign_head(&db, true).await? {
                println!(
                    "audit head witnessed: seq {} hash {} at {}",
                    line.seq, line.hash, line.at
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `realname import` and `realname client-cert`.
async fn realname(cmd: RealnameCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RealnameCommand::Import { db, file, strict } => {
            let text = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let text = String::from_utf8(text).map_err(|_| {
                anyhow::anyhow!("{} is not UTF-8 / 文件不是 UTF-8 编码", file.display())
            })?;
            let database = open_db(&db).await?;
            database.migrate().await?;
            crate::crypto::install_from_dir(&db.data)?;
            let report = crate::realname::local::import_csv(
                &database,
                &crate::access::platform(),
                &Who::system(),
                &text,
                strict,
            )
            .await?;
            for b in &report.bad {
                eprintln!(
                    "line {}: {} / 第 {} 行：{}",
                    b.line, b.reason, b.line, b.reason
                );
            }
            if strict && !report.bad.is_empty() {
                eprintln!(
                    "error: {} bad lines, nothing imported (--strict) / {} 行有误，未导入任何数据",
                    report.bad.len(),
                    report.bad.len()
                );
                return Ok(ExitCode::from(1));
            }
            println!(
                "imported {} people ({} updated), {} bad lines skipped; batch {} / 已导入 {} 人（其中更新 {} 人），{} 行有误未导入",
                report.imported,
                report.updated,
                report.bad.len(),
                report.batch,
                report.imported,
                report.updated,
                report.bad.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        RealnameCommand::ClientCert {
            data,
            out,
            name,
            days,
        } => {
            let (crt, key) = crate::realname::http::issue_client_cert(&data, &out, &name, days)?;
            println!("client certificate: {}", crt.display());
            println!("private key (0600): {}", key.display());
            println!(
                "give the provincial service the platform CA {} to trust; put these paths in config.json realname.client_cert / client_key",
                crate::tls::ca_cert_path(&data).display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `audit-verify`: the chain, then the witness file against it. Every problem is one line on
/// stderr (Chinese / English); exit 1 when there is any.
async fn audit_verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    use audit::witness;
    let db = open_db(&args.db).await?;
    let data = &args.db.data;
    let file = args
        .witness
        .clone()
        .unwrap_or_else(|| data.join(witness::LOG_FILE));
    let witnessed = if args.no_witness {
        None
    } else if file.exists() {
        let key_path = args
            .witness_key
            .clone()
            .unwrap_or_else(|| data.join(witness::PUB_FILE));
        let key = witness::load_public(&key_path)?;
        Some(witness::load(&file, &key)?)
    } else if args.witness.is_some() {
        bail!("witness file {} does not exist", file.display());
    } else {
        None
    };
    let mut failed = false;
    if let Some(w) = &witnessed {
        for n in &w.bad_lines {
            eprintln!(
                "error: witness line {n} of {} has a bad signature / 见证文件第 {n} 行签名无效，见证文件被篡改",
                file.display()
            );
            failed = true;
        }
    }
    let report = audit::verify_with(&db, witnessed.as_ref()).await?;
    match (&report.first_broken, &witnessed) {
        (Some(seq), _) => {
            let last = report
                .last_witnessed
                .map(|s| format!("; last witnessed seq {s}"))
                .unwrap_or_default();
            eprintln!(
                "error: audit chain broken at record {seq}: {}{last}",
                report.reason.as_deref().unwrap_or("")
            );
            failed = true;
        }
        (None, Some(w)) => println!(
            "audit chain intact; {} witness lines agree, last witnessed seq {}",
            w.lines - w.bad_lines.len(),
            report.last_witnessed.unwrap_or(0)
        ),
        (None, None) => {
            println!("audit chain intact");
            if !args.no_witness {
                eprintln!(
                    "warning: no witness file {} to compare with",
                    file.display()
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The database URL for a data directory: the flag, then the configuration, then SQLite.
fn database_url(args: &DbArgs) -> String {
    if let Some(url) = &args.database {
        return url.clone();
    }
    if let Ok(file) = ConfigFile::load(&args.data) {
        if let Some(url) = file.database_url {
            return url;
        }
    }
    sqlite_url(&args.data)
}

async fn open_db(args: &DbArgs) -> anyhow::Result<Db> {
    if !args.data.exists() {
        bail!(
            "data directory {} does not exist (run init first)",
            args.data.display()
        );
    }
    Db::connect(&database_url(args)).await
}

/// What `init` made: the root organisation and the first security officer.
pub struct Initialised {
    pub db: Db,
    pub root_id: String,
    pub root_code: String,
    pub officer_id_number: String,
    pub officer_password: String,
    pub officer_totp_secret: String,
    /// The first officer's one-time enrolment code and its expiry: security officers sign in
    /// with the USB key only, and its key is made on the card (`dangjian-agent enrol`); no
    /// private key of the officer is written anywhere.
    pub officer_enrolment_code: (String, String),
}

async fn init(args: &InitArgs) -> anyhow::Result<Initialised> {
    let data = &args.db.data;
    if crate::config::config_path(data).exists() {
        bail!("{} is already initialised", data.display());
    }
    if !valid_root_code(&args.root_code) {
        bail!("--root-code must be 1 to 12 digits");
    }
    let level = crate::org::rules::Level::parse(&args.root_level)
        .context("--root-level must be central, province, city or county")?;
    let public_url = crate::tls::check_public_url(&args.public_url)?;
    std::fs::create_dir_all(data).with_context(|| format!("create {}", data.display()))?;
    crate::tls::ensure_server_certificate(data, &public_url)?;
    crate::letter::ensure_signer(data)?;
    // The field-encryption keys (`keys.json`, mode 0600): in the data directory, never in the
    // database.
    crate::crypto::init_dir(data)?;
    // The key that signs the audit chain's head, outside the database.
    audit::witness::ensure_key(data)?;
    let db = Db::connect(&database_url(&args.db)).await?;
    db.migrate().await?;
    let today = crate::db::today();
    let officer_id_number = match &args.officer_id_number {
        Some(n) => match crate::member::idcard::parse(n, today) {
            Ok(id) => id.as_str().to_string(),
            Err(e) => bail!("--officer-id-number: {}", e.message()),
        },
        None => synthetic_id_number(),
    };
    let officer_password = password::generate();
    let officer_totp_secret = totp::new_secret();
    let root_id = new_id();
    let mut tx = db.begin().await?;
    crate::org::store::insert(
        &mut tx,
        &crate::access::platform(),
        &root_id,
        &args.root_code,
        None,
        &NewOrg {
            name: args.root_name.clone(),
            short_name: String::new(),
            category: "1".to_string(),
            level: Some(level.as_str().to_string()),
            secretary: String::new(),
            contact_name: String::new(),
            contact_phone: String::new(),
            subordination: String::new(),
            founded_on: None,
            unit_mode: None,
            work_category: None,
            may_approve_development: false,
        },
    )
    .await?;
    let account_id = accounts::create_account(
        &mut tx,
        &accounts::NewAccount {
            name: &args.officer_name,
            id_number: &officer_id_number,
            mobile: &args.officer_mobile,
            password: &officer_password,
            totp_secret: &officer_totp_secret,
            totp_confirmed: true,
            must_change_password: true,
        },
    )
    .await?;
    let officer_grant = accounts::create_grant(
        &mut tx,
        &crate::access::platform(),
        &account_id,
        Role::Security,
        &root_id,
        None,
        true,
        None,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::system(),
        Event::ok("platform.init", &root_id)
            .with_detail(format!("{} {}", args.root_code, args.root_name)),
    )
    .await?;
    let officer_enrolment_code = crate::card::routes::insert_enrolment_code(
        &mut tx,
        &crate::access::platform(),
        &officer_grant,
        &account_id,
        "system",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    audit::append(
        &mut tx,
        &Who::system(),
        Event::ok("certificate.enrolment_code", &officer_grant).with_detail(format!(
            "account {account_id}; the first security officer, by init"
        )),
    )
    .await?;
    tx.commit().await?;
    let file = ConfigFile {
        root_code: args.root_code.clone(),
        root_name: args.root_name.clone(),
        database_url: args.db.database.clone(),
        sms_gateway_url: None,
        audit_retention_days: audit::DEFAULT_RETENTION_DAYS,
        public_url: Some(public_url),
        audit_witness_seconds: audit::witness::DEFAULT_INTERVAL_SECONDS,
        require_attestation: false,
        attestation_roots: Vec::new(),
        realname: Default::default(),
        letter_validity_days: crate::letter::DEFAULT_VALIDITY_DAYS,
    };
    file.save(data)?;
    Ok(Initialised {
        db,
        root_id,
        root_code: args.root_code.clone(),
        officer_id_number,
        officer_password,
        officer_totp_secret,
        officer_enrolment_code,
    })
}

/// Where `demo` writes the card certificates and software keys it issues (demo only).
fn cards_dir(data: &Path) -> PathBuf {
    data.join("cards")
}

fn synthetic_id_number() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let birth = chrono::NaiveDate::from_ymd_opt(
        1970 + rng.gen_range(0..30),
        rng.gen_range(1..=12),
        rng.gen_range(1..=28),
    )
    .expect("valid date");
    crate::member::idcard::compose("370102", birth, rng.gen_range(1..999))
}

fn print_first_officer(i: &Initialised, data: &Path) {
    let uri = totp::otpauth_uri(&i.officer_totp_secret, &i.officer_id_number).unwrap_or_default();
    let (code, expires_at) = &i.officer_enrolment_code;
    let ca = data.join("tls/ca.crt");
    println!("platform initialised; the first security officer (shown once):");
    println!("  ID number: {}", i.officer_id_number);
    println!("  one-time password: {}", i.officer_password);
    println!("  authenticator: {uri}");
    println!("  USB key enrolment code: {code}");
    println!("  code valid until: {expires_at} (one use)");
    println!();
    println!("平台已初始化。以上首位安全保密员的信息只显示这一次，请妥善转交本人。");
    println!("安全保密员只能用 USB Key 登录：请在插有 USB Key 的电脑上运行");
    println!(
        "  dangjian-agent enrol --server https://<服务器地址:端口> --ca {} --code {code}",
        ca.display()
    );
    println!(
        "密钥在 USB Key 内生成，私钥永不离开 USB Key；服务器不保存任何安全保密员的私钥。\
         申领码 {} 小时内有效，仅可使用一次。",
        crate::card::ENROLMENT_CODE_HOURS
    );
    println!("The first security officer signs in with a USB key only: on a computer with the");
    println!("card inserted, run");
    println!(
        "  dangjian-agent enrol --server https://<host:port> --ca {} --code {code}",
        ca.display()
    );
    println!(
        "The key is generated on the card and never leaves it; no private key of the officer is"
    );
    println!(
        "written anywhere. The code is valid for {} hours and works once.",
        crate::card::ENROLMENT_CODE_HOURS
    );
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let listener = bind(args).await?;
    let mut db = open_db(&args.db).await?;
    if let Some(url) = &args.database_read {
        db = db.with_replica(url).await?;
    }
    serve_with(args, db, listener).await
}

/// The listening socket of `--listen` (checked: plain HTTP on loopback only).
async fn bind(args: &ServeArgs) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {} is not an address such as 127.0.0.1:8443",
            args.listen
        )
    })?;
    if args.insecure_http && !crate::tls::is_loopback(&addr) {
        bail!("--insecure-http is refused on {addr}: plain HTTP is allowed on loopback only");
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}"))
}

async fn serve_with(
    args: &ServeArgs,
    db: Db,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let file = ConfigFile::load(&args.db.data)?;
    let trusted = crate::tls::proxy::Trusted::parse(&args.proxy_from)?;
    db.migrate().await?;
    crate::card::attestation::check_config(&args.db.data, &file)?;
    crate::crypto::install_from_dir(&args.db.data)?;
    crate::account::activation::index_mobiles(&db).await?;
    crate::member::sort_keys::backfill(&db).await?;
    let public_url = file
        .public_url
        .clone()
        .unwrap_or_else(|| crate::tls::DEFAULT_PUBLIC_URL.to_string());
    crate::tls::ensure_server_certificate(&args.db.data, &public_url)?;
    crate::letter::ensure_signer(&args.db.data)?;
    // The platform PKI: trust store (the platform CA alone), CRL watched every few seconds.
    let pki = crate::tls::install(crate::tls::Pki::load(&args.db.data)?);
    crate::card::spawn_crl_watcher(db.clone(), pki.clone());
    // Jobs: this server's lock, so the others see at once when it is gone.
    crate::jobs::install(&db).await?;
    let on_refusal = crate::card::refusal_auditor();
    audit::handshakes::spawn_flusher(db.clone());
    // The witness of the audit chain: signed heads outside the database.
    let witness = Arc::new(audit::witness::Witness::open(&args.db.data)?);
    audit::witness::spawn(
        db.clone(),
        witness.clone(),
        std::time::Duration::from_secs(file.audit_witness_seconds.max(1)),
    );
    let config = Config {
        data_dir: args.db.data.clone(),
        file,
        secure_cookies: !args.insecure_http,
    };
    let realname = crate::realname::build(&config.file.realname, &db, &args.db.data)?;
    let state = AppState {
        db,
        config: Arc::new(config),
        realname,
    };
    let local = listener.local_addr()?;
    let scheme = if args.insecure_http { "http" } else { "https" };
    println!("listening on {scheme}://{local}");
    std::io::stdout().flush().ok();
    tracing::info!("serving {scheme}://{local}");
    let tls = (!args.insecure_http).then_some(pki);
    let db = state.db.clone();
    let served = tokio::select! {
        r = crate::tls::serve(listener, router(state), tls, Some(on_refusal), trusted) => r,
        _ = shutdown_signal() => Ok(()),
    };
    // At shutdown: the pending refused handshakes, then the last head.
    if let Err(e) = audit::handshakes::flush(&db, true).await {
        tracing::error!("audit refused handshakes at shutdown: {e}");
    }
    if let Err(e) = witness.sign_head(&db, true).await {
        tracing::error!("witness the audit head at shutdown: {e:#}");
    }
    tracing::info!("shut down");
    served
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let data = &args.serve.db.data;
    let accounts_path = data.join("demo-accounts.json");
    // Bound first, so that a new demo's certificates name the CRL at the address it serves.
    let listener = if args.no_serve {
        None
    } else {
        Some(bind(&args.serve).await?)
    };
    let public_url = match (&args.public_url, &listener) {
        (Some(url), _) => url.clone(),
        (None, Some(l)) => crate::tls::public_url_of(l.local_addr()?),
        (None, None) => match args.serve.listen.parse::<SocketAddr>() {
            Ok(addr) => crate::tls::public_url_of(addr),
            Err(_) => crate::tls::DEFAULT_PUBLIC_URL.to_string(),
        },
    };
    let db = if accounts_path.exists() {
        eprintln!("demo data already in {}; serving it", data.display());
        open_db(&args.serve.db).await?
    } else {
        let init_args = InitArgs {
            db: args.serve.db.clone(),
            root_name: "中共泉山省委员会".to_string(),
            root_code: "037".to_string(),
            root_level: "province".to_string(),
            officer_name: "平台安全员".to_string(),
            officer_id_number: None,
            officer_mobile: "13900000000".to_string(),
            public_url,
        };
        let started = std::time::Instant::now();
        let init = init(&init_args).await?;
        let generate = |db: Db| {
            let (root_id, root_code) = (init.root_id.clone(), init.root_code.clone());
            async move {
                let realname = args.realname == "local";
                crate::demo::generate(&db, &root_id, &root_code, args.members, realname).await
            }
        };
        // SQLite: the province is built in a copy of the new database without a journal,
        // moved into place once complete (`db::Scratch`).
        let (db, mut accounts) = if init.db.engine == crate::db::Engine::Sqlite {
            let url = database_url(&args.serve.db);
            let scratch = crate::db::Scratch::open(init.db.clone(), &url).await?;
            match generate(scratch.db().clone()).await {
                Ok(accounts) => {
                    scratch.finish().await?;
                    (open_db(&args.serve.db).await?, accounts)
                }
                Err(e) => {
                    scratch.abandon().await;
                    return Err(e);
                }
            }
        } else {
            let accounts = generate(init.db.clone()).await?;
            (init.db.clone(), accounts)
        };
        crate::demo::issue_cards(&db, data, &cards_dir(data), &mut accounts).await?;
        // Real-name verification against the local registry: every member and some people
        // who are not members yet (demo-realname.json), so that a tour can add one.
        let extras = if args.realname == "local" {
            let extras = crate::realname::local::demo_extras();
            let mut file = ConfigFile::load(data)?;
            file.realname = crate::realname::RealNameConfig::Local;
            file.save(data)?;
            extras
        } else {
            Vec::new()
        };
        let extras: Vec<serde_json::Value> = extras
            .iter()
            .map(|(n, name)| serde_json::json!({"id_number": n, "name": name}))
            .collect();
        write_private(
            &data.join(DEMO_REALNAME_FILE),
            serde_json::to_string_pretty(&extras)?.as_bytes(),
        )?;
        write_private(
            &accounts_path,
            serde_json::to_string_pretty(&accounts)?.as_bytes(),
        )?;
        eprintln!(
            "demo province with {} members built in {:.1} s; accounts in {}",
            args.members,
            started.elapsed().as_secs_f64(),
            accounts_path.display()
        );
        db
    };
    print_demo_hint(data, &args.serve);
    match listener {
        Some(listener) => serve_with(&args.serve, db, listener).await,
        None => Ok(()),
    }
}

/// The people of the demo's real-name registry who are not members (for trying 录入).
const DEMO_REALNAME_FILE: &str = "demo-realname.json";

fn print_demo_hint(data: &Path, args: &ServeArgs) {
    let scheme = if args.insecure_http { "http" } else { "https" };
    let path = data.join("demo-accounts.json");
    println!("demo accounts ({}):", path.display());
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(accounts) = serde_json::from_str::<Vec<crate::demo::DemoAccount>>(&text) {
            for a in accounts {
                let tier = a.tier.map(|t| format!(" tier {t}")).unwrap_or_default();
                println!(
                    "  {:<8}{:<8} {:<18} password {:<14} totp_secret {}  ({})",
                    a.role, tier, a.id_number, a.password, a.totp_secret, a.org_name
                );
                if let (Some(cert), Some(key)) = (&a.cert, &a.key) {
                    println!("      USB key: --cert {cert} --key {key}");
                }
            }
        }
    }
    println!(
        "这些演示账号的 USB Key 证书私钥是服务器生成的软件密钥（{}），只供试用，不是 USB Key；\
         正式部署请用 init 打印的证书申领码，由 dangjian-agent enrol 在 USB Key 内生成密钥。",
        data.join("cards").display()
    );
    println!(
        "The demo's USB-key private keys are software keys made by the server ({}), for trying \
         things out only; a real deployment enrols keys generated on the card (init's enrolment \
         code and dangjian-agent enrol).",
        data.join("cards").display()
    );
    if let Ok(text) = std::fs::read_to_string(data.join(DEMO_REALNAME_FILE)) {
        if let Ok(people) = serde_json::from_str::<Vec<serde_json::Value>>(&text) {
            println!(
                "实名认证（本地实名库）：以下人员在实名库中但尚未录入为党员，可用于试录入（共 {} 人，见 {}）：",
                people.len(),
                data.join(DEMO_REALNAME_FILE).display()
            );
            for p in people.iter().take(3) {
                println!(
                    "  {} {}",
                    p["name"].as_str().unwrap_or(""),
                    p["id_number"].as_str().unwrap_or("")
                );
            }
        }
    }
    println!("six-digit code: dangjian-server totp-code --secret <totp_secret> (or any authenticator app)");
    println!(
        "CA certificate for curl and browsers: {}",
        data.join("tls/ca.crt").display()
    );
    println!(
        "sign in (tier 3): {scheme}://{}/api/v1/session",
        args.listen
    );
    println!(
        "sign in with a USB key (tiers 1-2, security, audit): curl --cacert {} --cert <cert> --key <key> -d '{{\"code\":\"<six digits>\"}}' {scheme}://{}/api/v1/session/card",
        data.join("tls/ca.crt").display(),
        args.listen
    );
}
