//! The card rig shared by the card, agent and tunnel suites: pcscd with vsmartcard's two vpcd
//! readers, the virtual card process (`vcard`) in one of them, and `dangjian-agent` runs.
//!
//! Each test owns one reader — `Virtual PCD 00 00` (port 35963) or `Virtual PCD 00 01` (35964);
//! `.config/nextest.toml` puts each reader's tests in one test group, and `take_reader` waits
//! until the reader is empty.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::vcard::CardState;

pub const READER_0: &str = "Virtual PCD 00 00";
pub const READER_1: &str = "Virtual PCD 00 01";
pub const PORT_0: u16 = 35963;
pub const PORT_1: u16 = 35964;

/// The reader a vpcd port appears as.
pub fn reader_of(port: u16) -> &'static str {
    if port == PORT_0 {
        READER_0
    } else {
        READER_1
    }
}

/// pcscd with the vpcd readers, started here when missing (as root; `scripts/test.sh` does it
/// otherwise).
pub fn ensure_pcscd() {
    let ready = || {
        dangjian_agent::list_readers()
            .map(|r| {
                r.iter()
                    .filter(|i| i.name.starts_with("Virtual PCD"))
                    .count()
                    >= 2
            })
            .unwrap_or(false)
    };
    if ready() {
        return;
    }
    let started = Command::new("pcscd")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "pcscd with vsmartcard's vpcd readers is not available (started here: {started}); \
         run the suite through scripts/test.sh, which installs and starts them"
    );
}

pub fn card_present(reader: &str) -> bool {
    dangjian_agent::list_readers()
        .map(|rs| rs.iter().any(|r| r.name == reader && r.card_present))
        .unwrap_or(false)
}

pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Takes the reader for this test: waits until no other card is in it.
pub fn take_reader(reader: &str) {
    wait_until(
        &format!("{reader} to be free"),
        Duration::from_secs(180),
        || !card_present(reader),
    );
}

/// A binary of this workspace next to the test executable (`cargo build --workspace --bins`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo build --workspace --bins (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn agent_binary() -> PathBuf {
    workspace_binary("dangjian-agent")
}

/// A running `vcard`, taken out of its reader and killed on drop.
pub struct VirtualCard {
    child: Child,
    pub state_path: PathBuf,
    pub reader: &'static str,
}

impl VirtualCard {
    /// Starts a card on vpcd `port` with its state in `dir`, slot 9A loaded from `init`
    /// (certificate and key PEM files) or blank, and waits until pcscd sees it.
    /// `DANGJIAN_VCARD_LOG=<dir>`: the card logs its APDUs (PIN hidden) to
    /// `<dir>/vcard-<port>.log`.
    pub fn start(dir: &Path, port: u16, init: Option<(&Path, &Path)>) -> Self {
        Self::spawn(dir, port, init, None)
    }

    /// Starts a blank card as `start` does that attests the keys generated on it (YubiKey's
    /// `INS F9`) with the attestation key and certificate of `attestation`.
    pub fn start_attesting(dir: &Path, port: u16, attestation: &AttestationCa) -> Self {
        Self::spawn(dir, port, None, Some(attestation))
    }

    fn spawn(
        dir: &Path,
        port: u16,
        init: Option<(&Path, &Path)>,
        attestation: Option<&AttestationCa>,
    ) -> Self {
        let reader = reader_of(port);
        take_reader(reader);
        let state_path = Self::state_path_in(dir, port);
        let mut cmd = Command::new(workspace_binary("vcard"));
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--state")
            .arg(&state_path);
        if let Some((cert, key)) = init {
            cmd.arg("--init-cert").arg(cert).arg("--init-key").arg(key);
        }
        if let Some(a) = attestation {
            cmd.arg("--attestation-cert")
                .arg(&a.signer_cert)
                .arg("--attestation-key")
                .arg(&a.signer_key);
        }
        // pcscd sometimes misses a card that connects right after the previous one left the
        // same reader (more often on a loaded machine): start it again on a fresh connection.
        let log_dir = std::env::var_os("DANGJIAN_VCARD_LOG");
        if log_dir.is_some() {
            cmd.arg("--verbose");
        }
        for attempt in 1..=3 {
            let log = match &log_dir {
                Some(dir) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(Path::new(&dir).join(format!("vcard-{port}.log")))
                        .unwrap(),
                ),
                None => Stdio::null(),
            };
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start vcard");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !card_present(reader) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if card_present(reader) {
                return Self {
                    child,
                    state_path,
                    reader,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("the card did not appear in {reader} (attempt {attempt}); starting it again");
            std::thread::sleep(Duration::from_secs(3));
        }
        panic!("timed out waiting for the card in {reader}");
    }

    /// Starts a card as `start` does with slot 9A loaded from a certificate and its private key
    /// given as PEM text (written beside the state file).
    pub fn start_with_pem(dir: &Path, port: u16, cert_pem: &str, key_pem: &str) -> Self {
        let cert = dir.join(format!("card-{port}-9a.crt"));
        let key = dir.join(format!("card-{port}-9a.key"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        Self::start(dir, port, Some((&cert, &key)))
    }

    /// Where a card on `port` keeps its state in `dir`: write a `CardState` there before
    /// `start` to begin from it (e.g. another management key).
    pub fn state_path_in(dir: &Path, port: u16) -> PathBuf {
        dir.join(format!("card-{port}.json"))
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Takes the card out of the reader (the process keeps its state).
    pub fn remove(&self) {
        self.signal("USR1");
    }

    /// Puts the card back.
    pub fn insert(&self) {
        self.signal("USR2");
    }

    pub fn state(&self) -> CardState {
        CardState::load(&self.state_path).unwrap()
    }
}

/// A PIV attestation hierarchy made at run time, as a card maker has one: a root (what the
/// server is configured to trust) and the attestation key and certificate a card carries in
/// slot F9, issued by the root. Files (PEM) in the directory given.
pub struct AttestationCa {
    /// The root certificate: what `attestation_roots` names.
    pub root: PathBuf,
    /// The slot-F9 certificate, issued by the root.
    pub signer_cert: PathBuf,
    /// The slot-F9 private key (P-256, PKCS#8).
    pub signer_key: PathBuf,
}

impl AttestationCa {
    pub fn generate(dir: &Path, name: &str) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
        };
        let params = |cn: String| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            p.distinguished_name = dn;
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p
        };
        let root_key = KeyPair::generate().unwrap();
        let root = params(format!("dangjian test PIV attestation root {name}"))
            .self_signed(&root_key)
            .unwrap();
        let signer_key = KeyPair::generate().unwrap();
        let signer = params(format!("dangjian test PIV attestation {name}"))
            .signed_by(&signer_key, &root, &root_key)
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let ca = Self {
            root: dir.join(format!("attestation-root-{name}.pem")),
            signer_cert: dir.join(format!("attestation-f9-{name}.crt")),
            signer_key: dir.join(format!("attestation-f9-{name}.key")),
        };
        std::fs::write(&ca.root, root.pem()).unwrap();
        std::fs::write(&ca.signer_cert, signer.pem()).unwrap();
        std::fs::write(&ca.signer_key, signer_key.serialize_pem()).unwrap();
        ca
    }

    /// The slot-F9 certificate (PEM).
    pub fn signer_pem(&self) -> String {
        std::fs::read_to_string(&self.signer_cert).unwrap()
    }

    /// An attestation statement (PEM) for `key`, signed by the F9 key as a card's `INS F9`
    /// would make it: for API tests that stand in for a card.
    pub fn statement_for(&self, key: &impl rcgen::PublicKeyData) -> String {
        let signer_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(&self.signer_key).unwrap()).unwrap();
        let signer_der = crate::vcard::state::pem_der(&self.signer_pem(), "CERTIFICATE").unwrap();
        let signer = rcgen::CertificateParams::from_ca_cert_der(&signer_der.into())
            .unwrap()
            .self_signed(&signer_key)
            .unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "YubiKey PIV Attestation 9a");
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 41482, 3, 7],
            vec![0x02, 0x02, 0x30, 0x39],
        )];
        params.signed_by(key, &signer, &signer_key).unwrap().pem()
    }
}

/// Leaves the reader empty for the next test: the card is removed (SIGUSR1 closes its socket
/// cleanly) and pcscd has seen it go before the process is killed.
impl Drop for VirtualCard {
    fn drop(&mut self) {
        self.remove();
        let deadline = Instant::now() + Duration::from_secs(10);
        while card_present(self.reader) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a program to its end with `stdin` typed in.
pub fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("DANGJIAN_AGENT_PIN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

/// Standard output and error together.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `dangjian-agent <args>` to its end.
pub fn agent(args: &[&str], stdin: Option<&str>) -> Output {
    run(&agent_binary(), args, stdin)
}

/// A long-running `dangjian-agent` (e.g. `connect`): its standard output line by line, its
/// standard input to type into, its standard error in a file; killed on drop.
pub struct AgentProcess {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl AgentProcess {
    pub fn spawn(args: &[&str], stderr: PathBuf) -> Self {
        let mut cmd = Command::new(agent_binary());
        cmd.args(args)
            .env_remove("DANGJIAN_AGENT_PIN")
            .env_remove("DANGJIAN_AGENT_OPENER");
        // The tests take the printed link themselves: no browser is opened unless a test
        // names the opener.
        if !args.contains(&"--open-with") {
            cmd.env("DANGJIAN_AGENT_NO_BROWSER", "1");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start dangjian-agent");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// The next line of standard output that satisfies `pred` (earlier ones are skipped).
    pub fn next_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("agent: no {what}; its stderr:\n{}", self.stderr_text()),
            }
        }
    }

    /// What it wrote to standard error so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn type_line(&mut self, text: &str) {
        writeln!(self.stdin, "{text}").unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
