//! Issue 17's benchmark: lookups by ID number and the member list of a branch under 50 and 200
//! concurrent clients, through one server and through two behind HAProxy with the replica
//! serving reads, side by side in one run (`scripts/bench/cluster.sh`).
//!
//! Environment: `MEMBERS` (default 1000000), `DURATION` seconds per measurement (default 20),
//! `CLIENTS` (default "50,200"). Builds the rig of `tests/src/cluster.rs` (its own PostgreSQL
//! primary and streaming replica, two servers, HAProxy) and prints one table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dangjian_tests::cluster::{Cluster, ClusterOptions};
use dangjian_tests::{DemoAccount, Server};
use serde_json::Value;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A client with connections of its own, presenting the account's card when it has one.
fn client_for(server: &Server, account: &DemoAccount) -> reqwest::Client {
    server
        .card_client(account)
        .unwrap_or_else(|| server.client())
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Result<Value, String> {
    let r = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("{} {url}", r.status()));
    }
    r.json().await.map_err(|e| e.to_string())
}

/// The process groups whose CPU time is accounted: the servers, HAProxy, each PostgreSQL
/// cluster (the postmaster and its backends) and this load generator.
struct Groups {
    servers: Vec<u32>,
    haproxy: Option<u32>,
    postmasters: Vec<(&'static str, u32)>,
}

const GROUPS: [&str; 5] = ["server", "primary", "replica", "haproxy", "client"];

/// CPU seconds used so far by each of [`GROUPS`] (user + system, from `/proc/*/stat`).
fn cpu(groups: &Groups, tick: f64) -> HashMap<&'static str, f64> {
    let me = std::process::id();
    let mut out: HashMap<&'static str, f64> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, … utime (14th), stime (15th).
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(utime), Some(stime)) = (
            f.get(1).and_then(|v| v.parse::<u32>().ok()),
            f.get(11).and_then(|v| v.parse::<f64>().ok()),
            f.get(12).and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let group = if pid == me {
            Some("client")
        } else if groups.servers.contains(&pid) {
            Some("server")
        } else if groups.haproxy == Some(pid) {
            Some("haproxy")
        } else {
            groups
                .postmasters
                .iter()
                .find(|(_, pm)| *pm == pid || *pm == ppid)
                .map(|(name, _)| *name)
        };
        if let Some(g) = group {
            *out.entry(g).or_default() += (utime + stime) / tick;
        }
    }
    out
}

/// CPU milliseconds per request of each group between two snapshots.
fn per_request(
    before: &HashMap<&'static str, f64>,
    after: &HashMap<&'static str, f64>,
    requests: f64,
) -> String {
    GROUPS
        .iter()
        .map(|g| {
            let used = after.get(g).copied().unwrap_or(0.0) - before.get(g).copied().unwrap_or(0.0);
            format!("{g} {:.2}", used * 1000.0 / requests.max(1.0))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// `clients` clients sending the paths in turn for `duration`: (requests/s, p99 ms, errors).
async fn measure(
    server: &Server,
    account: &DemoAccount,
    token: &str,
    paths: Arc<Vec<String>>,
    clients: usize,
    duration: Duration,
) -> (f64, f64, usize) {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for k in 0..clients {
        let client = client_for(server, account);
        let (base, token, paths) = (server.base.clone(), token.to_string(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut i) = (Vec::new(), 0usize, k);
            while Instant::now() < deadline {
                let url = format!("{base}{}", paths[i % paths.len()]);
                i += 1;
                let start = Instant::now();
                match get(&client, &url, &token).await {
                    Ok(_) => lat.push(start.elapsed()),
                    Err(e) => {
                        if errors == 0 && k == 0 {
                            eprintln!("first error: {e}");
                        }
                        errors += 1
                    }
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, e) = t.await.expect("client task");
        all.extend(lat);
        errors += e;
    }
    all.sort();
    let p99 = all
        .get((all.len() * 99 / 100).min(all.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    (all.len() as f64 / duration.as_secs_f64(), p99, errors)
}

#[tokio::main]
async fn main() {
    let members: usize = env("MEMBERS", 1_000_000);
    let duration = Duration::from_secs(env("DURATION", 20));
    let clients: Vec<usize> = std::env::var("CLIENTS")
        .unwrap_or_else(|_| "50,200".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    eprintln!("building the rig: {members} members on PostgreSQL, a replica, two servers, HAProxy");
    let c = Cluster::start(ClusterOptions {
        members,
        servers: 2,
        replica: true,
    });
    let account = c.balancer.county_admin();
    let api = c.balancer.sign_in(&account).await;
    let token = api.token.clone();
    let client = client_for(&c.balancer, &account);

    // Branches of the county and ID numbers of their members.
    let root = &account.org_id;
    let page = get(
        &client,
        &c.balancer.url(&format!(
            "/api/v1/orgs/{root}/members?include_sub=1&per_page=200"
        )),
        &token,
    )
    .await
    .expect("members of the county");
    let mut lookups = Vec::new();
    let mut lists = Vec::new();
    for m in page["items"].as_array().expect("items").iter().take(200) {
        let id = m["id"].as_str().expect("member id");
        let full = get(
            &client,
            &c.balancer.url(&format!("/api/v1/members/{id}?unmask=1")),
            &token,
        )
        .await
        .expect("member");
        if let Some(n) = full["id_number"].as_str().filter(|n| n.len() == 18) {
            lookups.push(format!("/api/v1/orgs/{root}/members?include_sub=1&q={n}"));
        }
        if let Some(b) = full["branch_id"].as_str() {
            let path = format!("/api/v1/orgs/{b}/members?per_page=20");
            if !lists.contains(&path) {
                lists.push(path);
            }
        }
    }
    assert!(!lookups.is_empty() && !lists.is_empty(), "no members found");
    let tick: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let groups = Groups {
        servers: c.servers.iter().filter_map(Server::pid).collect(),
        haproxy: c.balancer.pid(),
        postmasters: c.postmasters(),
    };
    let scenarios = [
        ("ID-number lookup", Arc::new(lookups)),
        ("branch member list", Arc::new(lists)),
    ];
    println!("| request | clients | one server: req/s | p99 ms | two servers + HAProxy + replica: req/s | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut costs = Vec::new();
    for (name, paths) in &scenarios {
        for &n in &clients {
            let before = cpu(&groups, tick);
            let one = measure(&c.servers[0], &account, &token, paths.clone(), n, duration).await;
            let middle = cpu(&groups, tick);
            let two = measure(&c.balancer, &account, &token, paths.clone(), n, duration).await;
            let after = cpu(&groups, tick);
            let secs = duration.as_secs_f64();
            costs.push(format!(
                "| {name} | {n} | {} | {} |",
                per_request(&before, &middle, one.0 * secs),
                per_request(&middle, &after, two.0 * secs)
            ));
            println!(
                "| {name} | {n} | {:.0} | {:.1} | {:.0} | {:.1} |{}",
                one.0,
                one.1,
                two.0,
                two.1,
                if one.2 + two.2 > 0 {
                    format!(" errors: {} / {}", one.2, two.2)
                } else {
                    String::new()
                }
            );
        }
    }
    println!();
    println!("CPU milliseconds per request, by process group:");
    println!();
    println!("| request | clients | one server | two servers + HAProxy + replica |");
    println!("|---|---|---|---|");
    for line in costs {
        println!("{line}");
    }
}
