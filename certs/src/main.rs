//! `dangjian-certs`: the platform CA's command line (API.md, SPEC §11).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use dangjian_certs::{
    describe_bytes, normalize_serial, Ca, CaDir, CertInfo, ClientSubject, RegisterEntry,
    RevocationReason, DEFAULT_CRL_HOURS, DEFAULT_DAYS,
};

/// The platform CA: root, server and card certificates, revocation, CRL.
#[derive(Parser)]
#[command(name = "dangjian-certs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the CA: an ECDSA P-256 root (ca.crt), its key (ca.key, mode 0600), an empty
    /// register and a first CRL.
    InitCa {
        #[command(flatten)]
        dir: DirArg,
        /// The root's common name, e.g. "党员管理平台根证书".
        #[arg(long, value_name = "CN")]
        name: String,
        /// The CRL distribution point written into every certificate, e.g. https://dj.example.cn/crl.
        #[arg(long, value_name = "URL")]
        crl_url: String,
        #[command(flatten)]
        passphrase: PassphraseArg,
    },
    /// Issue a server certificate (EKU serverAuth) with a new P-256 key: writes PREFIX.crt and
    /// PREFIX.key (mode 0600).
    IssueServer {
        #[command(flatten)]
        dir: DirArg,
        /// A DNS name or IP address (repeat for more; the first is also the CN).
        #[arg(long = "san", value_name = "NAME", required = true, num_args = 1..)]
        sans: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
        /// Output path prefix.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArg,
    },
    /// Issue a card (client) certificate (EKU clientAuth): subject CN = name, serialNumber = ID
    /// number, OU = organisation code. With --csr only the CSR's public key is used (its
    /// subject is ignored) and PREFIX.crt is written; otherwise a P-256 key is generated too
    /// (PREFIX.key, mode 0600).
    IssueClient {
        #[command(flatten)]
        dir: DirArg,
        /// The holder's name (CN).
        #[arg(long)]
        name: String,
        /// The holder's citizen ID number (serialNumber; the check character is verified).
        #[arg(long, value_name = "ID")]
        id_number: String,
        /// The scope organisation's unified code (OU).
        #[arg(long, value_name = "CODE")]
        org_code: String,
        /// A PEM certificate request whose public key is certified.
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// The account the certificate belongs to (recorded in the register).
        #[arg(long = "account", value_name = "ID")]
        account: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
        /// Output path prefix.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArg,
    },
    /// Record a revocation in the register; publish it with `crl`.
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        /// The certificate's serial number (hex; colons allowed).
        #[arg(long, value_name = "HEX")]
        serial: String,
        /// unspecified, key_compromise, affiliation_changed, superseded or cessation_of_operation.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Sign a new CRL of every revoked certificate; writes DIR/crl.pem (and --out if given).
    Crl {
        #[command(flatten)]
        dir: DirArg,
        /// Hours from now to the CRL's nextUpdate.
        #[arg(long, default_value_t = DEFAULT_CRL_HOURS)]
        next_update_hours: u32,
        /// Also write the CRL here: PEM if the name ends in .pem, DER otherwise.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArg,
    },
    /// List the issued certificates: serial, kind, subject, expiry, state.
    List {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Show one certificate: from the register by serial, or a certificate file.
    Show {
        /// The CA directory (needed with --serial; with --cert it adds the register's state).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// A serial number in the register (hex).
        #[arg(
            long,
            value_name = "HEX",
            conflicts_with = "cert",
            required_unless_present = "cert"
        )]
        serial: Option<String>,
        /// A certificate file (PEM or DER).
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
    },
    /// Check a transfer letter 介绍信 offline: the JSON document the server serves at
    /// GET /api/v1/transfers/{id}/letter. The signed text is rebuilt from the letter's fields,
    /// its signature checked with the signer certificate, and that certificate with the
    /// platform CA. Prints 真实有效 (exit 0) or 已被篡改 (exit 1).
    VerifyLetter {
        /// The letter's JSON document.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The platform CA certificate (the server's <data>/ca/ca.crt, also served to clients
        /// as <data>/tls/ca.crt). Default: ca/ca.crt under the current directory (run from the
        /// data directory).
        #[arg(long, value_name = "CA_CERT", default_value = "ca/ca.crt")]
        ca: PathBuf,
    },
}

#[derive(Args)]
struct DirArg {
    /// The CA directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args)]
struct PassphraseArg {
    /// A file whose first line is the passphrase of ca.key (encrypts it at init-ca).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

impl PassphraseArg {
    fn read(&self) -> Result<Option<String>> {
        let Some(path) = &self.passphrase_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read passphrase file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            bail!("passphrase file {} is empty", path.display());
        }
        Ok(Some(line))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::VerifyLetter { file, ca } = &cli.command {
        return verify_letter(file, ca);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::InitCa {
            dir,
            name,
            crl_url,
            passphrase,
        } => {
            let passphrase = passphrase.read()?;
            let ca = Ca::init(&dir.dir, &name, &crl_url, passphrase.as_deref())?;
            let info = dangjian_certs::describe(&ca.cert_der())?;
            println!("CA created in {}", dir.dir.display());
            println!("certificate: {}", ca.dir().cert_path().display());
            println!(
                "key:         {}{}",
                ca.dir().key_path().display(),
                if passphrase.is_some() {
                    " (encrypted)"
                } else {
                    ""
                }
            );
            println!("crl:         {}", ca.dir().crl_path().display());
            println!("sha256:      {}", info.sha256_fingerprint);
        }
        Command::IssueServer {
            dir,
            sans,
            days,
            out,
            passphrase,
        } => {
            let (crt, key) = out_paths(&out, true)?;
            let ca = Ca::open(&dir.dir, passphrase.read()?.as_deref())?;
            let issued = ca.issue_server(&sans, days)?;
            write_issued(&issued, &crt, key.as_deref())?;
        }
        Command::IssueClient {
            dir,
            name,
            id_number,
            org_code,
            csr,
            account,
            days,
            out,
            passphrase,
        } => {
            let (crt, key) = out_paths(&out, csr.is_none())?;
            let csr_pem = match &csr {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("read CSR {}", path.display()))?,
                ),
                None => None,
            };
            let ca = Ca::open(&dir.dir, passphrase.read()?.as_deref())?;
            let subject = ClientSubject {
                name,
                id_number,
                org_code,
            };
            let issued = ca.issue_client(&subject, csr_pem.as_deref(), days, account.as_deref())?;
            write_issued(&issued, &crt, key.as_deref())?;
        }
        Command::Revoke {
            dir,
            serial,
            reason,
        } => {
            let reason: RevocationReason = reason.parse()?;
            let ca_dir = open_dir(&dir.dir)?;
            ca_dir.revoke(&serial, reason)?;
            println!(
                "revoked {} ({reason}); run `dangjian-certs crl --dir {}` to publish it",
                normalize_serial(&serial)?,
                dir.dir.display()
            );
        }
        Command::Crl {
            dir,
            next_update_hours,
            out,
            passphrase,
        } => {
            let ca = Ca::open(&dir.dir, passphrase.read()?.as_deref())?;
            let der = ca.crl(next_update_hours)?;
            let info = dangjian_certs::parse_crl(&der, &ca.cert_der())?;
            if let Some(out) = &out {
                let bytes = if out.extension().is_some_and(|e| e == "pem") {
                    std::fs::read(ca.dir().crl_path())
                        .with_context(|| format!("read {}", ca.dir().crl_path().display()))?
                } else {
                    der.clone()
                };
                write_replace(out, &bytes)?;
            }
            println!(
                "CRL {} written to {}: {} revoked, next update {}",
                info.crl_number.map(|n| n.to_string()).unwrap_or_default(),
                ca.dir().crl_path().display(),
                info.revoked.len(),
                info.next_update.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
        Command::VerifyLetter { .. } => unreachable!("handled in main"),
        Command::List { dir } => {
            let entries = open_dir(&dir.dir)?.list()?;
            print_table(&entries);
        }
        Command::Show { dir, serial, cert } => {
            let ca_dir = dir.as_deref().map(open_dir).transpose()?;
            if let Some(path) = cert {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("read certificate {}", path.display()))?;
                let info = describe_bytes(&bytes)?;
                print_info(&info);
                if let Some(ca_dir) = ca_dir {
                    match ca_dir.find(&info.serial_hex)? {
                        Some(entry) => print_entry(&entry),
                        None => println!("register:    not issued by this CA"),
                    }
                }
            } else {
                let serial = serial.expect("clap requires --serial or --cert");
                let Some(ca_dir) = ca_dir else {
                    bail!("--serial needs --dir");
                };
                match ca_dir.find(&serial)? {
                    Some(entry) => print_entry(&entry),
                    None => bail!(
                        "no certificate with serial {} in the register",
                        normalize_serial(&serial)?
                    ),
                }
            }
        }
    }
    Ok(())
}

/// `verify-letter`: 真实有效 and exit 0, or 已被篡改 with the reason and exit 1; a file that
/// cannot be read exits 2.
fn verify_letter(file: &Path, ca: &Path) -> ExitCode {
    let read = || -> Result<(serde_json::Value, Vec<u8>)> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("read letter {}", file.display()))?;
        let doc: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON letter", file.display()))?;
        let ca_pem = std::fs::read_to_string(ca)
            .with_context(|| format!("read CA certificate {}", ca.display()))?;
        let ca_der = dangjian_certs::letter::cert_der_of_pem(&ca_pem)?;
        Ok((doc, ca_der))
    };
    let (doc, ca_der) = match read() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            return ExitCode::from(2);
        }
    };
    match dangjian_certs::letter::verify_document(&doc, &ca_der) {
        Ok(v) => {
            println!(
                "真实有效：第{}号介绍信，开具日期 {}，有效期至 {}",
                v.number, v.issue_date, v.valid_until
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("已被篡改：{e}");
            ExitCode::FAILURE
        }
    }
}

/// A CA directory that exists and holds a CA.
fn open_dir(path: &Path) -> Result<CaDir> {
    let dir = CaDir::new(path);
    if !dir.cert_path().exists() {
        bail!(
            "{} holds no CA (run `dangjian-certs init-ca` first)",
            path.display()
        );
    }
    Ok(dir)
}

/// PREFIX.crt and PREFIX.key, refused if either exists.
fn out_paths(prefix: &Path, with_key: bool) -> Result<(PathBuf, Option<PathBuf>)> {
    let with_ext = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let crt = with_ext(".crt");
    let key = with_key.then(|| with_ext(".key"));
    for path in std::iter::once(&crt).chain(key.as_ref()) {
        if path.exists() {
            bail!("{} exists: choose another --out", path.display());
        }
    }
    Ok((crt, key))
}

fn write_issued(issued: &dangjian_certs::Issued, crt: &Path, key: Option<&Path>) -> Result<()> {
    if let (Some(path), Some(pem)) = (key, &issued.key_pem) {
        dangjian_certs::write_output_file(path, pem.as_bytes(), 0o600)?;
    }
    dangjian_certs::write_output_file(crt, issued.cert_pem.as_bytes(), 0o644)?;
    println!("certificate: {}", crt.display());
    if let Some(path) = key {
        println!("key:         {} (mode 0600)", path.display());
    }
    println!("serial:      {}", issued.serial_hex);
    println!("sha256:      {}", issued.sha256_fingerprint);
    println!(
        "expires:     {}",
        issued.not_after.format("%Y-%m-%d %H:%M:%S UTC")
    );
    Ok(())
}

fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

fn print_table(entries: &[RegisterEntry]) {
    let now = Utc::now();
    let serial_w = entries
        .iter()
        .map(|e| e.serial_hex.len())
        .max()
        .unwrap_or(0)
        .max("SERIAL".len());
    println!(
        "{:<serial_w$}  {:<6}  {:<10}  {:<7}  SUBJECT",
        "SERIAL", "KIND", "EXPIRES", "STATE"
    );
    for e in entries {
        println!(
            "{:<serial_w$}  {:<6}  {:<10}  {:<7}  {}",
            e.serial_hex,
            e.kind,
            e.expires_at.format("%Y-%m-%d"),
            e.state(now),
            e.subject
        );
    }
}

fn print_entry(e: &RegisterEntry) {
    println!("serial:      {}", e.serial_hex);
    println!("kind:        {}", e.kind);
    println!("subject:     {}", e.subject);
    if !e.issuer.is_empty() {
        println!("issuer:      {}", e.issuer);
    }
    println!("sha256:      {}", e.sha256_fingerprint);
    if let Some(account) = &e.account_id {
        println!("account:     {account}");
    }
    println!(
        "issued:      {}",
        e.issued_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!(
        "expires:     {}",
        e.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!("state:       {}", e.state(Utc::now()));
    if let Some(at) = e.revoked_at {
        println!(
            "revoked:     {} ({})",
            at.format("%Y-%m-%d %H:%M:%S UTC"),
            e.reason.as_deref().unwrap_or("unspecified")
        );
    }
}

fn print_info(info: &CertInfo) {
    println!("subject:     {}", info.subject);
    println!("issuer:      {}", info.issuer);
    println!("serial:      {}", info.serial_hex);
    println!("sha256:      {}", info.sha256_fingerprint);
    println!(
        "valid:       {} .. {}",
        info.not_before.format("%Y-%m-%d %H:%M:%S UTC"),
        info.not_after.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let warn = if info.days_left < 0 {
        " (expired)"
    } else if info.days_left <= 30 {
        " (expires within 30 days)"
    } else {
        ""
    };
    println!("days left:   {}{warn}", info.days_left);
    let mut usages = Vec::new();
    if info.is_ca {
        usages.push("CA");
    }
    if info.client_auth {
        usages.push("clientAuth");
    }
    if info.server_auth {
        usages.push("serverAuth");
    }
    println!("usage:       {}", usages.join(", "));
    if !info.sans.is_empty() {
        println!("names:       {}", info.sans.join(", "));
    }
    if !info.crl_urls.is_empty() {
        println!("crl:         {}", info.crl_urls.join(", "));
    }
}
