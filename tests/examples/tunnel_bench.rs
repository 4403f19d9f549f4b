//! Benchmark: the same light request (`GET /api/v1/session`) through several paths to the
//! server — direct mutual TLS, the agent's tunnel, stunnel — measured alike, alternating the
//! paths in every round: latency of sequential requests on one keep-alive connection
//! (p50/p99/mean), and throughput with C concurrent keep-alive connections sharing a fixed number
//! of requests.
//!
//! `scripts/bench/tunnel.sh` starts the server, the virtual card, the agent and stunnel, opens
//! the sessions and runs this with a targets file; alone:
//!
//! ```sh
//! cargo run --release -p dangjian-tests --example tunnel_bench -- --targets targets.json
//! ```
//!
//! `targets.json`: a list; the first entry is the baseline the others are compared with.
//!
//! ```json
//! [{"name": "direct mutual TLS", "base": "https://127.0.0.1:8443",
//!   "headers": {"Authorization": "Bearer …"}, "ca": "ca.crt", "cert": "card.crt", "key": "card.key"},
//!  {"name": "tunnel", "base": "http://127.0.0.1:5000", "headers": {"Cookie": "dj_agent=…"},
//!   "relay_pid": 1234}]
//! ```
//!
//! `relay_pid` (optional): the process in the middle (agent, stunnel), whose CPU time per request
//! in the throughput runs is reported. Every answer must be 200, or the run stops.
//! HTTP/1.1 on every connection this client opens (ALPN `http/1.1` over TLS).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// The targets file (JSON, see the module note)
    #[arg(long)]
    targets: PathBuf,
    /// The path requested (GET)
    #[arg(long, default_value = "/api/v1/session")]
    path: String,
    /// Timed sequential requests per path and round, on one keep-alive connection
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Untimed requests before each timed series (and each throughput run)
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Requests shared by the connections of each throughput run
    #[arg(long, default_value_t = 4000)]
    throughput_requests: usize,
    /// Concurrent connections of the throughput runs
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    /// Rounds; each runs every path, in a rotated order
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Deserialize, Clone)]
struct Target {
    name: String,
    /// `http://host:port` or `https://host:port`
    base: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// For https: the CA to trust (PEM) and, for mutual TLS, the client certificate and key.
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    relay_pid: Option<u32>,
}

type Sender = SendRequest<Empty<Bytes>>;

/// Opens connections to one target and builds its request.
struct Client {
    target: Target,
    addr: String,
    authority: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    path: String,
}

fn read_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}

impl Client {
    fn new(target: Target, path: &str) -> anyhow::Result<Self> {
        let (secure, authority) = if let Some(rest) = target.base.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = target.base.strip_prefix("http://") {
            (false, rest)
        } else {
            bail!("{}: base must start with http:// or https://", target.name)
        };
        let authority = authority.trim_end_matches('/').to_string();
        let (host, _) = authority
            .rsplit_once(':')
            .with_context(|| format!("{}: base needs a port", target.name))?;
        let tls = if secure {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            let ca = target.ca.as_deref().context("https needs ca")?;
            for cert in rustls_pemfile::certs(&mut &read_pem(ca)?[..]) {
                roots.add(cert?)?;
            }
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots);
            let mut config = match (&target.cert, &target.key) {
                (Some(cert), Some(key)) => {
                    let chain =
                        rustls_pemfile::certs(&mut &read_pem(cert)?[..])
                            .collect::<Result<Vec<_>, _>>()?;
                    let key = rustls_pemfile::private_key(&mut &read_pem(key)?[..])?
                        .context("no private key in the key file")?;
                    builder.with_client_auth_cert(chain, key)?
                }
                _ => builder.with_no_client_auth(),
            };
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = ServerName::try_from(host.to_string())?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            addr: authority.clone(),
            authority,
            tls,
            path: path.to_string(),
            target,
        })
    }

    async fn connect(&self) -> anyhow::Result<Sender> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), tcp).await?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                Ok(sender)
            }
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                Ok(sender)
            }
        }
    }

    fn request(&self) -> Request<Empty<Bytes>> {
        let mut req = Request::get(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::ACCEPT, "application/json");
        for (name, value) in &self.target.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        req.body(Empty::new()).expect("valid request")
    }

    /// One request on `sender`, the whole answer read; must be 200.
    async fn get(&self, sender: &mut Sender) -> anyhow::Result<Bytes> {
        sender.ready().await?;
        let res = sender.send_request(self.request()).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        if status != 200 {
            bail!(
                "{}: HTTP {status}: {}",
                self.target.name,
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            );
        }
        Ok(body)
    }
}

/// CPU time (user + system) of a process so far.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latency of `n` sequential requests on one kept-alive connection (after `warmup`).
async fn latency(client: &Client, warmup: usize, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut sender = client.connect().await?;
    for _ in 0..warmup {
        client.get(&mut sender).await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.get(&mut sender).await?;
        times.push(t.elapsed());
    }
    Ok(times)
}

/// `total` requests over `c` connections, opened and warmed before the clock starts:
/// requests per second, and the relay's CPU time per request when it has one.
async fn throughput(
    client: &Arc<Client>,
    c: usize,
    warmup: usize,
    total: usize,
) -> anyhow::Result<(f64, Option<Duration>)> {
    let mut senders = Vec::with_capacity(c);
    for _ in 0..c {
        let mut sender = client.connect().await?;
        for _ in 0..warmup.div_ceil(c) {
            client.get(&mut sender).await?;
        }
        senders.push(sender);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = client.target.relay_pid.and_then(cpu_time);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(c);
    for mut sender in senders {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                client.get(&mut sender).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let cpu = match (cpu0, client.target.relay_pid.and_then(cpu_time)) {
        (Some(a), Some(b)) => Some((b - a) / total as u32),
        _ => None,
    };
    Ok((total as f64 / elapsed.as_secs_f64(), cpu))
}

#[derive(Default)]
struct Results {
    samples: Vec<Duration>,
    round_p50: Vec<Duration>,
    /// per concurrency: requests/s of each round
    rps: BTreeMap<usize, Vec<f64>>,
    /// relay CPU per request at the highest concurrency, each round
    relay_cpu: Vec<Duration>,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let targets: Vec<Target> =
        serde_json::from_slice(&read_pem(&args.targets)?).context("parse the targets file")?;
    anyhow::ensure!(!targets.is_empty(), "no targets");
    let clients = targets
        .into_iter()
        .map(|t| Client::new(t, &args.path).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // Check every path once: 200, and who it is (the sessions belong to different accounts).
    for client in &clients {
        let mut sender = client.connect().await?;
        let body = client.get(&mut sender).await?;
        let who: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        eprintln!(
            "{}: {} {} → 200 ({} bytes; {} {})",
            client.target.name,
            args.path,
            client.target.base,
            body.len(),
            who["account"]["name"]
                .as_str()
                .or(who["name"].as_str())
                .unwrap_or("?"),
            who["active_role"]["role"].as_str().unwrap_or(""),
        );
    }

    let max_c = args.concurrency.iter().copied().max().unwrap_or(1);
    let mut results: Vec<Results> = clients.iter().map(|_| Results::default()).collect();
    for round in 0..args.rounds {
        let order: Vec<usize> = (0..clients.len())
            .map(|i| (i + round) % clients.len())
            .collect();
        for &i in &order {
            let mut times = latency(&clients[i], args.warmup, args.requests).await?;
            times.sort();
            eprintln!(
                "round {}  {:<28} latency p50 {:.3} ms  p99 {:.3} ms  ({} requests)",
                round + 1,
                clients[i].target.name,
                ms(percentile(&times, 0.50)),
                ms(percentile(&times, 0.99)),
                times.len()
            );
            results[i].round_p50.push(percentile(&times, 0.50));
            results[i].samples.extend(times);
        }
        for &c in &args.concurrency {
            for &i in &order {
                let (rps, cpu) =
                    throughput(&clients[i], c, args.warmup, args.throughput_requests).await?;
                eprintln!(
                    "round {}  {:<28} C={c:<3} {:>7.0} requests/s{}",
                    round + 1,
                    clients[i].target.name,
                    rps,
                    cpu.map(|d| format!("  relay CPU {:.0} µs/request", d.as_secs_f64() * 1e6))
                        .unwrap_or_default()
                );
                results[i].rps.entry(c).or_default().push(rps);
                if let (true, Some(cpu)) = (c == max_c, cpu) {
                    results[i].relay_cpu.push(cpu);
                }
            }
        }
    }

    // The table: latency over every round's samples pooled; throughput the mean of the rounds.
    for r in &mut results {
        r.samples.sort();
    }
    let base_p50 = percentile(&results[0].samples, 0.50);
    let base_p99 = percentile(&results[0].samples, 0.99);
    println!();
    println!(
        "`GET {}`, {} rounds × {} sequential requests per path on one keep-alive connection \
         (after {} untimed); throughput: {} requests over C connections, mean of the rounds.",
        args.path, args.rounds, args.requests, args.warmup, args.throughput_requests
    );
    println!();
    let mut head =
        String::from("| path | p50 | p99 | mean | added p50 | added p99 | p50 per round |");
    let mut rule = String::from("|---|---:|---:|---:|---:|---:|---|");
    for c in &args.concurrency {
        head.push_str(&format!(" req/s C={c} |"));
        rule.push_str("---:|");
    }
    head.push_str(&format!(" relay CPU/req (C={max_c}) |"));
    rule.push_str("---:|");
    println!("{head}\n{rule}");
    for (i, (client, r)) in clients.iter().zip(&results).enumerate() {
        let p50 = percentile(&r.samples, 0.50);
        let p99 = percentile(&r.samples, 0.99);
        let mean_ms = mean(&r.samples.iter().map(|d| ms(*d)).collect::<Vec<_>>());
        let added = |a: Duration, b: Duration| {
            if i == 0 {
                "—".to_string()
            } else {
                format!("{:+.3} ms", ms(a) - ms(b))
            }
        };
        let per_round = r
            .round_p50
            .iter()
            .map(|d| format!("{:.3}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" / ");
        let mut row = format!(
            "| {} | {:.3} ms | {:.3} ms | {:.3} ms | {} | {} | {} |",
            client.target.name,
            ms(p50),
            ms(p99),
            mean_ms,
            added(p50, base_p50),
            added(p99, base_p99),
            per_round
        );
        for c in &args.concurrency {
            row.push_str(&format!(" {:.0} |", mean(&r.rps[c])));
        }
        if r.relay_cpu.is_empty() {
            row.push_str(" — |");
        } else {
            let us: Vec<f64> = r.relay_cpu.iter().map(|d| d.as_secs_f64() * 1e6).collect();
            row.push_str(&format!(" {:.0} µs |", mean(&us)));
        }
        println!("{row}");
    }
    Ok(())
}
