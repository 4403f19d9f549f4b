//! Profiling aid for the batch quality check (issue 16): runs `quality::store::run_check` over
//! the whole province of a data directory built by `dangjian-server demo --no-serve`, without
//! HTTP around it, and prints its time. For `perf record`; the benchmark through the server is
//! `scripts/bench/scale.sh`.
//!
//! `cargo run --release -p dangjian-server --example check_profile -- DATA_DIR [DATABASE_URL]`

use std::sync::Arc;

use dangjian_server::{access, crypto, db, org, quality};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Quiet;
impl quality::store::Progress for Quiet {
    fn total(&self, _: u64) {}
    fn advance(&self, _: u64) {}
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data = std::path::PathBuf::from(args.next().expect("DATA_DIR"));
    let url = args.next().unwrap_or_else(|| db::sqlite_url(&data));
    crypto::install_from_dir(&data)?;
    let db = db::Db::connect(&url).await?;
    let root: (String,) =
        sqlx::query_as("SELECT id FROM orgs WHERE parent_id IS NULL ORDER BY code LIMIT 1")
            .fetch_one(db.read())
            .await?;
    let org = org::store::get(db.read(), &root.0)
        .await?
        .expect("root organisation");
    let actor = access::Actor {
        account_id: "profile".into(),
        name: "profile".into(),
        grant_id: String::new(),
        role: access::Role::Admin,
        tier: Some(1),
        org_id: org.id.clone(),
        org_code: org.code.clone(),
        org_name: org.name.clone(),
        client_addr: "127.0.0.1".into(),
        cert_serial: None,
        session_token_hash: String::new(),
        csrf_token: String::new(),
        must_change_password: false,
    };
    let rules = quality::Rule::ALL.to_vec();
    let check =
        quality::store::insert_check(&db, &access::platform(), &actor, &org, &rules, "profile")
            .await?;
    let started = std::time::Instant::now();
    let summary = quality::store::run_check(&db, &check, Arc::new(Quiet)).await?;
    println!(
        "{} members, {} findings in {:.2} s",
        summary.members_checked,
        summary.findings,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
