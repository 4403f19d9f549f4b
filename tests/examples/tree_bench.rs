//! Benchmark: an organisation with 2,000 direct children — how long the tree's first page of
//! children (the JSON the page script loads) and the organisation page take.
//!
//! Run: `cargo build --release -p dangjian-server && cargo run --release -p dangjian-tests --example tree_bench`

use std::time::{Duration, Instant};

use dangjian_tests::Server;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let children: i64 = 2000;
    let server = Server::demo(10_000, None).await;
    let tier2 = server.account("admin", Some(2));
    let api = server.sign_in(&tier2).await;
    let started = Instant::now();
    for i in 0..children {
        let r = api
            .post(
                "/api/v1/orgs",
                json!({"parent_id": tier2.org_id, "name": format!("压测第{i}党支部"), "category": "631",
                       "secretary": "王书记", "contact_name": "联系人", "contact_phone": "13800000000",
                       "unit_mode": "same_as_parent", "founded_on": "2020-01-01"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    println!(
        "created {children} children in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // What is timed must be the real answers: the whole first and last pages of children, and
    // the organisation page itself (not the sign-in page a redirect would give).
    let first = api
        .get(&format!(
            "/api/v1/orgs/{}/children?per_page=100",
            tier2.org_id
        ))
        .await;
    let total = first.body["total"].as_i64().expect("total");
    assert!(total >= children, "{total} children");
    assert_eq!(first.body["items"].as_array().map(Vec::len), Some(100));
    let last = api
        .get(&format!(
            "/api/v1/orgs/{}/children?per_page=100&page=20",
            tier2.org_id
        ))
        .await;
    assert_eq!(last.body["items"].as_array().map(Vec::len), Some(100));
    let page = api
        .get(&format!("/orgs/{}?tab=children", tier2.org_id))
        .await;
    let html = page.body.as_str().unwrap_or_default();
    assert!(
        html.contains(tier2.org_name.as_str()) && !html.contains("name=\"password\""),
        "the organisation page did not come back"
    );
    println!("{total} direct children under {}", tier2.org_name);
    let measure = |label: &'static str, path: String| {
        let api = api.clone();
        async move {
            let mut times = Vec::new();
            for _ in 0..30 {
                let t = Instant::now();
                let r = api.get(&path).await;
                assert_eq!(r.status, 200);
                times.push(t.elapsed());
            }
            times.sort();
            println!(
                "{label}: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
                percentile(&times, 0.5).as_secs_f64() * 1000.0,
                percentile(&times, 0.95).as_secs_f64() * 1000.0,
                times.last().unwrap().as_secs_f64() * 1000.0
            );
        }
    };
    measure(
        "children page 1 (100 of 2,000+) JSON",
        format!("/api/v1/orgs/{}/children?per_page=100", tier2.org_id),
    )
    .await;
    measure(
        "children page 20 (100 of 2,000+) JSON",
        format!(
            "/api/v1/orgs/{}/children?per_page=100&page=20",
            tier2.org_id
        ),
    )
    .await;
    measure(
        "organisation record JSON",
        format!("/api/v1/orgs/{}", tier2.org_id),
    )
    .await;
    measure(
        "organisation page, children tab (HTML)",
        format!("/orgs/{}?tab=children", tier2.org_id),
    )
    .await;
}
