//! A province on one machine (issue 17): a PostgreSQL primary of its own and a streaming
//! replica made with `pg_basebackup -R` (Debian's binaries, `initdb`/`pg_ctl` in a temporary
//! directory on random loopback ports — as the `postgres` user when the suite runs as root,
//! which PostgreSQL refuses to be), `dangjian-server serve` processes sharing one data
//! directory (keys, CA, CRL), and HAProxy in TCP mode in front, sending the PROXY protocol v2
//! (mutual TLS passes through to each server). No containers.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{DemoAccount, Server, TempDir};

/// Debian's PostgreSQL binaries: `DANGJIAN_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DANGJIAN_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql): run scripts/test.sh")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let v = versions.last().expect("no PostgreSQL version installed");
    PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"))
}

/// Whether this process runs as root (PostgreSQL's tools then run as `postgres`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL tool, run as `postgres` when the suite is root.
fn pg_command(tool: &str) -> Command {
    let bin = pg_bin_dir().join(tool);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} does not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One PostgreSQL cluster (primary or replica) in a directory of its own; stopped on drop.
pub struct PgCluster {
    dir: PathBuf,
    pub port: u16,
}

impl PgCluster {
    /// The postmaster's process id, from the first line of its `postmaster.pid`.
    fn postmaster(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// `initdb` and start a primary that accepts replication from loopback.
    fn primary(root: &Path) -> PgCluster {
        let dir = root.join("primary");
        let port = free_port();
        let mut initdb = pg_command("initdb");
        initdb.arg("-D").arg(&dir).args([
            "-U",
            "dangjian",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]);
        run(initdb, "initdb");
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             wal_level = replica\nmax_wal_senders = 4\nmax_replication_slots = 4\n\
             max_connections = 200\nshared_buffers = 32MB\nfsync = off\n\
             full_page_writes = off\n",
            root.display()
        );
        append(&dir.join("postgresql.conf"), &conf);
        let cluster = PgCluster { dir, port };
        cluster.start(None);
        cluster
    }

    /// A streaming replica of `primary`: `pg_basebackup -R` (standby.signal and
    /// primary_conninfo written) through a replication slot, started on a port of its own.
    fn replica_of(primary: &PgCluster, root: &Path) -> PgCluster {
        let dir = root.join("replica");
        let mut backup = pg_command("pg_basebackup");
        backup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "dangjian",
            ])
            .arg("-D")
            .arg(&dir)
            .args([
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-C",
                "-S",
                "dangjian_replica",
            ]);
        run(backup, "pg_basebackup");
        let cluster = PgCluster {
            dir,
            port: free_port(),
        };
        cluster.start(Some(cluster.port));
        cluster
    }

    fn start(&self, port: Option<u16>) {
        let mut ctl = pg_command("pg_ctl");
        ctl.arg("-D")
            .arg(&self.dir)
            .arg("-l")
            .arg(self.dir.with_extension("log"))
            .args(["-w", "-t", "60"]);
        if let Some(p) = port {
            ctl.args(["-o", &format!("-p {p}")]);
        }
        ctl.arg("start");
        run(ctl, "pg_ctl start");
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://dangjian@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut ctl = pg_command("pg_ctl");
        ctl.arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = ctl.status();
    }
}

fn append(path: &Path, text: &str) {
    let mut current = std::fs::read_to_string(path).expect("read postgresql.conf");
    current.push_str(text);
    // Written as root into a directory of `postgres`: the file keeps its owner.
    std::fs::write(path, current).expect("write postgresql.conf");
}

/// What a cluster is made of.
pub struct ClusterOptions {
    pub members: usize,
    pub servers: usize,
    pub replica: bool,
}

/// The rig: primary (+ replica), N servers on one data directory, HAProxy in front.
pub struct Cluster {
    /// The servers, each directly reachable; `None` once killed.
    pub servers: Vec<Server>,
    /// HAProxy's address as a [`Server`] (same data directory and accounts): clients made by
    /// it reach the servers through the balancer.
    pub balancer: Server,
    pub accounts: Vec<DemoAccount>,
    /// The primary's database URL.
    pub db_url: String,
    /// The replica's database URL, when there is one.
    pub replica_url: Option<String>,
    data: PathBuf,
    // Dropped last, in this order: the replica, then the primary, then the directory.
    _replica: Option<PgCluster>,
    _primary: PgCluster,
    _dir: TempDir,
}

impl Cluster {
    pub fn start(options: ClusterOptions) -> Cluster {
        let dir = TempDir::new("dangjian-cluster");
        let pg_root = dir.path().join("pg");
        std::fs::create_dir_all(&pg_root).expect("pg dir");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&pg_root);
                    c
                },
                "chown the PostgreSQL directory",
            );
        }
        let primary = PgCluster::primary(&pg_root);
        let mut psql = pg_command("psql");
        psql.args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "dangjian",
            "-d",
            "postgres",
            "-qc",
            "CREATE DATABASE dangjian TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'zh-CN'",
        ]);
        run(psql, "create the database");
        let db_url = primary.url("dangjian");

        // The shared data directory and the province, built once on the primary.
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let out = Command::new(crate::server_binary())
            .arg("demo")
            .arg("--data")
            .arg(&data)
            .args(["--database", &db_url])
            .args(["--members", &options.members.to_string()])
            .args(["--no-serve", "--realname", "none"])
            .env("DANGJIAN_LOG", "warn")
            .output()
            .expect("run dangjian-server demo");
        assert!(
            out.status.success(),
            "demo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let accounts = Server::accounts_of(&data);

        let replica = options
            .replica
            .then(|| PgCluster::replica_of(&primary, &pg_root));
        let replica_url = replica.as_ref().map(|r| r.url("dangjian"));

        let mut servers = Vec::new();
        for _ in 0..options.servers {
            let mut args = vec![
                "--database",
                db_url.as_str(),
                "--proxy-from",
                "127.0.0.1/32",
            ];
            if let Some(url) = &replica_url {
                args.extend(["--database-read", url.as_str()]);
            }
            let (child, base) = Server::spawn_serve(&data, &args);
            servers.push(Server::from_process(
                base,
                &data,
                accounts.clone(),
                Some(child),
            ));
        }

        let port = free_port();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, haproxy_config(port, &servers)).expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start haproxy (apt-get install haproxy; scripts/test.sh does)");
        wait_for_port(port, "haproxy");
        let balancer = Server::from_process(
            format!("https://127.0.0.1:{port}"),
            &data,
            accounts.clone(),
            Some(child),
        );
        Cluster {
            servers,
            balancer,
            accounts,
            db_url,
            replica_url,
            data,
            _replica: replica,
            _primary: primary,
            _dir: dir,
        }
    }

    /// The postmaster processes: `("primary", pid)` and, with a replica, `("replica", pid)`
    /// (each cluster's `postmaster.pid`), for accounting the CPU of their backends.
    pub fn postmasters(&self) -> Vec<(&'static str, u32)> {
        let mut out = vec![("primary", self._primary.postmaster())];
        if let Some(r) = &self._replica {
            out.push(("replica", r.postmaster()));
        }
        out.into_iter()
            .filter_map(|(name, pid)| Some((name, pid?)))
            .collect()
    }

    /// The shared data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// A demo account by role and tier.
    pub fn account(&self, role: &str, tier: Option<u8>) -> DemoAccount {
        self.balancer.account(role, tier)
    }

    /// `dangjian-server audit-verify` on the primary: (success, output).
    pub fn audit_verify(&self) -> (bool, String) {
        let out = Command::new(crate::server_binary())
            .arg("audit-verify")
            .arg("--data")
            .arg(&self.data)
            .args(["--database", &self.db_url])
            .env("DANGJIAN_LOG", "warn")
            .output()
            .expect("run audit-verify");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

/// TCP mode, round robin, the PROXY protocol v2 to every server (and on its health checks),
/// a server that fails a check taken out at once, a refused connection sent to another.
fn haproxy_config(port: u16, servers: &[Server]) -> String {
    let mut cfg = format!(
        "global\n  maxconn 4000\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n\
         \x20 option redispatch\n  retries 3\n\
         frontend dangjian\n  bind 127.0.0.1:{port}\n  default_backend servers\n\
         backend servers\n  balance roundrobin\n"
    );
    for (i, s) in servers.iter().enumerate() {
        let addr = s.base.trim_start_matches("https://");
        cfg.push_str(&format!(
            "  server s{i} {addr} send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1\n"
        ));
    }
    cfg
}
