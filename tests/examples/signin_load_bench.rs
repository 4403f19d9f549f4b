//! Benchmark: does a storm of password sign-ins slow everyone else down? A card session (the
//! tier-2 admin's certificate) makes light requests (`GET /api/v1/session`) one after another,
//! first on an idle server, then while `CLIENTS` clients hammer `POST /api/v1/session` with
//! unknown ID numbers — each of which costs one argon2id verification (19 MiB, t = 2). Every
//! hammering request comes from its own loopback address (127.x.y.z), so the per-address
//! throttle never answers in argon2's place, on any build.
//!
//! Run: `bash scripts/bench/signin-load.sh` (builds this and the commit before the change, and
//! runs both), or for one build:
//! `DANGJIAN_SERVER_BIN=target/release/dangjian-server cargo run --release -p dangjian-tests --example signin_load_bench`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dangjian_tests::Server;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Light requests of the card session for `secs` seconds; their latencies, sorted.
async fn light_requests(api: &dangjian_tests::Api, secs: u64) -> Vec<Duration> {
    let mut times = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let t = Instant::now();
        let r = api.get("/api/v1/session").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn report(label: &str, times: &[Duration]) {
    println!(
        "{label}: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        percentile(times, 0.5),
        percentile(times, 0.99),
        times.last().unwrap().as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let clients: u32 = std::env::var("CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let secs: u64 = std::env::var("DURATION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let server = Arc::new(Server::demo(2000, None).await);
    let tier2 = server.account("admin", Some(2));
    let api = server.sign_in(&tier2).await;
    report("idle", &light_requests(&api, secs).await);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let answers = Arc::new(std::sync::Mutex::new(
        std::collections::BTreeMap::<u16, u64>::new(),
    ));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (server, stop, done, answers) =
            (server.clone(), stop.clone(), done.clone(), answers.clone());
        tasks.push(tokio::spawn(async move {
            let mut n: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                // A fresh source address for every try: 127.<client>.<n / 256>.<n % 256 + 1>.
                let ip = std::net::Ipv4Addr::new(
                    127,
                    10 + c as u8,
                    (n / 250 % 250) as u8,
                    (n % 250 + 1) as u8,
                );
                n += 1;
                let client = server.client_from(ip.into());
                let id = dangjian_server::member::idcard::compose(
                    "370102",
                    chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap()
                        + chrono::Days::new(u64::from(n % 5000)),
                    (c % 1000) as u16,
                );
                let res = client
                    .post(server.url("/api/v1/session"))
                    .json(&json!({"id_number": id, "password": "Wrong12345", "code": "123456"}))
                    .send()
                    .await;
                if let Ok(res) = res {
                    *answers
                        .lock()
                        .unwrap()
                        .entry(res.status().as_u16())
                        .or_default() += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Let the storm build up, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = done.load(Ordering::Relaxed);
    let started = Instant::now();
    let loaded = light_requests(&api, secs).await;
    let signins = done.load(Ordering::Relaxed) - before;
    let rate = signins as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    report(&format!("under {clients} sign-in clients"), &loaded);
    println!(
        "sign-in attempts answered: {rate:.0}/s; answers {:?}",
        answers.lock().unwrap()
    );
}
