//! A province on several servers (issue 17): two `dangjian-server serve` processes on one
//! PostgreSQL primary with a streaming replica, behind HAProxy (TCP, PROXY protocol v2). Every
//! test here fails if a piece of state moves back into one process's memory: sessions, TOTP
//! replay marks, lockout counters, revocations, jobs, the audit head, the client's address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dangjian_tests::cluster::{Cluster, ClusterOptions};
use dangjian_tests::{current_code, synthetic_id_number, Api, Server};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

fn cluster(replica: bool) -> Cluster {
    Cluster::start(ClusterOptions {
        members: 200,
        servers: 2,
        replica,
    })
}

async fn sign_in_raw(
    server: &Server,
    from: Option<IpAddr>,
    id_number: &str,
    password: &str,
    code: &str,
) -> (u16, Value) {
    let client = server.client_builder().local_address(from).build().unwrap();
    let r = client
        .post(server.url("/api/v1/session"))
        .json(&json!({"id_number": id_number, "password": password, "code": code}))
        .send()
        .await
        .expect("sign in");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn primary(c: &Cluster) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(&c.db_url)
        .await
        .expect("connect to the primary")
}

fn member(branch_id: &str, seq: u32) -> Value {
    json!({
        "name": "集群党员",
        "id_number": synthetic_id_number(50_000 + seq),
        "ethnicity": "01", "education": "21", "category": "full",
        "branch_id": branch_id, "joined_on": "2001-03-01", "full_on": "2002-03-02",
        "job": "worker", "phone": "13800001111", "address": "泉山省东岭县集群路1号",
    })
}

/// Sessions, TOTP replay marks, lockout counters and jobs live in the database: made on one
/// server, seen by the other.
#[tokio::test]
async fn sessions_codes_lockout_and_jobs_are_shared_by_the_servers() {
    let mut c = cluster(false);
    let (a, b) = (&c.servers[0], &c.servers[1]);
    let admin = c.balancer.account_in("admin", Some(3), "631");

    // A session made on A works on B, and through the balancer.
    let code = current_code(&admin.totp_secret);
    let (s, body) = sign_in_raw(a, None, &admin.id_number, &admin.password, &code).await;
    assert_eq!(s, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    for server in [b, &c.balancer] {
        let r = server
            .client()
            .get(server.url("/api/v1/session"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "session made on A refused by {}",
            server.base
        );
    }

    // The code used on A is refused on B (the replay mark is in the database).
    let (s, body) = sign_in_raw(b, None, &admin.id_number, &admin.password, &code).await;
    assert_eq!(s, 401, "{body}");
    assert_eq!(body["error"]["field"], "code", "{body}");

    // Five failures spread over A and B lock the account on both.
    let other = c.balancer.account_in("admin", Some(3), "621");
    for i in 0..5 {
        let server = if i % 2 == 0 { a } else { b };
        let (s, body) = sign_in_raw(server, None, &other.id_number, "Wrong-Pass1", "000000").await;
        assert!(s == 401 || s == 423, "{s} {body}");
    }
    for server in [a, b] {
        let code = current_code(&other.totp_secret);
        let (s, body) = sign_in_raw(server, None, &other.id_number, &other.password, &code).await;
        assert_eq!(s, 423, "not locked on {}: {body}", server.base);
    }

    // An ID number without an account counts its failures alike on both servers (the tries
    // left of the message count down across them).
    let unknown = synthetic_id_number(99_999);
    for i in 0..4 {
        let server = if i % 2 == 0 { a } else { b };
        let (s, body) = sign_in_raw(server, None, &unknown, "Wrong-Pass1", "000000").await;
        assert_eq!(s, 401, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!("再错{}次", 4 - i)),
            "try {i}: {message}"
        );
    }

    // A job started on A is read on B, its progress and its end.
    let on_a = Api::with_token(a, &token);
    let on_b = Api::with_token(b, &token);
    let r = on_a.post("/api/v1/quality/checks", json!({})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job_id = r.body["job_id"].as_str().unwrap().to_string();
    let mut finished = Value::Null;
    for _ in 0..200 {
        let r = on_b.get(&format!("/api/v1/jobs/{job_id}")).await;
        assert_eq!(r.status, 200, "job of A unknown to B: {:?}", r.body);
        if r.body["state"] != "running" {
            finished = r.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(finished["state"], "finished", "{finished}");
    assert!(finished["result"]["check_id"].is_string(), "{finished}");

    // A job whose server dies is reported interrupted by the other at once (A's advisory
    // lock ends with its connection), not running forever.
    let mut db = primary(&c).await;
    let (key, account): (i64, String) =
        sqlx::query_as("SELECT server_key, account_id FROM jobs WHERE id = $1")
            .bind(&job_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_ne!(key, 0, "a PostgreSQL server's jobs carry its lock key");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sqlx::query(
        "INSERT INTO jobs (id, kind, account_id, label, state, server_key, started_at, \
         heartbeat_at) VALUES ('running-on-a', 'quality', $1, '校验', 'running', $2, $3, $3)",
    )
    .bind(&account)
    .bind(key)
    .bind(&now)
    .execute(&mut db)
    .await
    .unwrap();
    let r = on_b.get("/api/v1/jobs/running-on-a").await;
    assert_eq!(r.body["state"], "running", "{:?}", r.body);
    drop((on_a, a, b));
    c.servers[0].kill();
    let mut state = Value::Null;
    for _ in 0..100 {
        let r = on_b.get("/api/v1/jobs/running-on-a").await;
        state = r.body["state"].clone();
        if state == "failed" {
            assert!(
                r.body["message"].as_str().unwrap().contains("中断"),
                "{:?}",
                r.body
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "failed", "the dead server's job still runs");
}

/// An enrolment code issued on one server is used once on another (and then refused on the
/// first), the card it issues signs in anywhere; a certificate revoked on one server ends its
/// sessions on the other at once and is refused there for new card sign-ins within seconds
/// (the CRL in the shared data directory).
#[tokio::test]
async fn an_enrolment_code_and_a_revocation_hold_on_every_server() {
    let c = cluster(false);
    let (a, b) = (&c.servers[0], &c.servers[1]);
    let tier2 = c.account("admin", Some(2));
    let officer = a.sign_in(&c.account("security", None)).await;

    let tier3 = c.account("admin", Some(3));
    let code = a.enrolment_code(&officer, &tier3.org_id).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let enrol = |server: &Server| {
        let (client, url) = (server.client(), server.url("/api/v1/enrolment"));
        let body = json!({"code": code, "csr": csr});
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let res = enrol(b).await;
    assert_eq!(res.status(), 200, "the code issued on A was refused on B");
    let issued: Value = res.json().await.unwrap();
    assert_eq!(enrol(a).await.status(), 401, "the code was used twice");
    let dir = c.data().join("enrolled");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key_file) = (dir.join("card.crt"), dir.join("card.key"));
    std::fs::write(&cert, issued["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let card = a.client_with_cert(cert.to_str().unwrap(), key_file.to_str().unwrap());
    let res = card
        .post(a.url("/api/v1/session/card"))
        .json(&json!({"code": current_code(&tier3.totp_secret)}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "the card enrolled on B does not sign in on A"
    );

    let on_b = b.sign_in(&tier2).await;
    let me = on_b.get("/api/v1/session").await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    let account = me.body["account"]["id"].as_str().unwrap().to_string();
    let list = officer
        .get(&format!("/api/v1/certificates?account_id={account}"))
        .await;
    let serial = list.body["items"][0]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let r = officer
        .post(
            &format!("/api/v1/certificates/{serial}/revoke"),
            json!({"reason": "key_compromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The card session on B ends with the revocation on A.
    assert_eq!(on_b.get("/api/v1/session").await.status, 401);
    // B loads the new CRL within seconds; the card opens no session there.
    let mut loaded = false;
    for _ in 0..80 {
        if b.get_json("/api/v1/health").await["crl"]["revoked"] == 1 {
            loaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(loaded, "B never loaded the CRL that A wrote");
    let card = b.card_client(&tier2).unwrap();
    let refused = match card
        .post(b.url("/api/v1/session/card"))
        .json(&json!({"code": current_code(&tier2.totp_secret)}))
        .send()
        .await
    {
        Ok(r) => r.status() != 200,
        Err(_) => true, // the handshake itself was refused
    };
    assert!(refused, "the revoked card signed in on B");
}

/// 1,000 concurrent writes through the balancer, spread over both servers, leave one unbroken
/// audit chain (`audit-verify`).
#[tokio::test]
async fn concurrent_writes_through_the_balancer_keep_one_audit_chain() {
    let c = cluster(false);
    let admin = c.balancer.account_in("admin", Some(3), "631");
    let api = c.balancer.sign_in(&admin).await;
    // Twenty clients, each with connections of its own: the balancer spreads them.
    let clients: Vec<Api> = (0..20)
        .map(|_| api.with_client(c.balancer.client()))
        .collect();
    let writes = (0..1000u32).map(|i| {
        let api = clients[i as usize % clients.len()].clone();
        let body = member(&admin.org_id, i);
        async move { api.post("/api/v1/members", body).await }
    });
    let answers = futures_util::future::join_all(writes).await;
    let failed: Vec<_> = answers.iter().filter(|r| r.status != 201).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    // Both servers took writes: each wrote audit records from its own process.
    let mut db = primary(&c).await;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'member.create' AND actor_name <> ''",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(n, 1000);
    let (ok, out) = c.audit_verify();
    assert!(ok, "audit-verify: {out}");
}

/// A server killed under load: every write it acknowledged is in the database, and the
/// balancer sends the rest to the other.
#[tokio::test]
async fn killing_a_server_mid_load_loses_no_acknowledged_write() {
    let mut c = cluster(false);
    let admin = c.balancer.account_in("admin", Some(3), "631");
    let api = c.balancer.sign_in(&admin).await;
    let clients: Vec<Api> = (0..8)
        .map(|_| api.with_client(c.balancer.client()))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = Vec::new();
    for (k, client) in clients.into_iter().enumerate() {
        let tx = tx.clone();
        let branch = admin.org_id.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u32 {
                let seq = 10_000 + k as u32 * 100 + i;
                if let Ok(r) = client
                    .try_post("/api/v1/members", member(&branch, seq))
                    .await
                {
                    if r.status == 201 {
                        let _ = tx.send(r.body["id"].as_str().unwrap().to_string());
                    }
                }
            }
        }));
    }
    drop(tx);
    // Kill A once a hundred writes are acknowledged.
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 100 {
        acknowledged.push(rx.recv().await.expect("writes stopped before the kill"));
    }
    c.servers[0].kill();
    while let Some(id) = rx.recv().await {
        acknowledged.push(id);
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every acknowledged write is stored.
    let mut db = primary(&c).await;
    for id in &acknowledged {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM members WHERE id = $1")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(n, 1, "acknowledged member {id} is missing");
    }
    // The balancer carries on: new connections reach the surviving server.
    for i in 0..20u32 {
        let fresh = api.with_client(c.balancer.client());
        let r = fresh
            .post("/api/v1/members", member(&admin.org_id, 20_000 + i))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let (ok, out) = c.audit_verify();
    assert!(ok, "audit-verify: {out}");
}

/// With the replica: a session that wrote reads its own write at once (the primary), while
/// another session's reads come from the replica (replay paused here, so it lags visibly).
#[tokio::test]
async fn reads_go_to_the_replica_and_a_session_reads_its_own_writes() {
    let c = cluster(true);
    let admin = c.balancer.account_in("admin", Some(3), "631");
    let writer = c.balancer.sign_in(&admin).await;
    let reader = c.balancer.sign_in(&c.balancer.county_admin()).await;
    sqlx::any::install_default_drivers();
    let mut replica =
        <sqlx::AnyConnection as sqlx::Connection>::connect(c.replica_url.as_deref().unwrap())
            .await
            .unwrap();
    let (standby,): (bool,) = sqlx::query_as("SELECT pg_is_in_recovery()")
        .fetch_one(&mut replica)
        .await
        .unwrap();
    assert!(standby, "the replica is a streaming standby");
    sqlx::query("SELECT pg_wal_replay_pause()::text")
        .execute(&mut replica)
        .await
        .unwrap();
    let r = writer
        .post("/api/v1/members", member(&admin.org_id, 1))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    // Its own save, on whichever server answers.
    for _ in 0..4 {
        let fresh = writer.with_client(c.balancer.client());
        let r = fresh.get(&format!("/api/v1/members/{id}")).await;
        assert_eq!(
            r.status, 200,
            "the writer misses its own save: {:?}",
            r.body
        );
    }
    // Another session reads the replica, which has not replayed the save yet.
    let r = reader.get(&format!("/api/v1/members/{id}")).await;
    assert_eq!(
        r.status, 404,
        "the reader did not read the replica: {:?}",
        r.body
    );
    sqlx::query("SELECT pg_wal_replay_resume()::text")
        .execute(&mut replica)
        .await
        .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if reader.get(&format!("/api/v1/members/{id}")).await.status == 200 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the replica never caught up");
}

/// A relay in front of `server` that connects from `from` and starts every connection with a
/// PROXY v2 header naming `client` as the source (what HAProxy's send-proxy-v2 does).
async fn proxy_relay(server: &Server, from: IpAddr, client: SocketAddr) -> Server {
    let target: SocketAddr = server.base.trim_start_matches("https://").parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddr::new(from, 0)).unwrap();
                let Ok(mut outbound) = socket.connect(target).await else {
                    return;
                };
                let header = ppp::v2::Builder::with_addresses(
                    ppp::v2::Version::Two | ppp::v2::Command::Proxy,
                    ppp::v2::Protocol::Stream,
                    (client, target),
                )
                .build()
                .unwrap();
                if outbound.write_all(&header).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    Server::from_process(
        format!("https://127.0.0.1:{port}"),
        server.data.path(),
        server.accounts.clone(),
        None,
    )
}

async fn last_sign_in_address(c: &Cluster) -> String {
    let mut db = primary(c).await;
    let (addr,): (String,) = sqlx::query_as(
        "SELECT client_addr FROM audit_log WHERE action = 'session.sign_in' \
         ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    addr
}

/// The audit (and throttling) see the client's address, not the balancer's: HAProxy's PROXY
/// header is believed from the balancer's address; the same header from anyone else is refused.
#[tokio::test]
async fn the_client_address_comes_through_the_balancer_and_only_from_it() {
    let c = cluster(false);
    let admin = c.account("admin", Some(3));
    // Through HAProxy (which connects from 127.0.0.1) from 127.0.0.2.
    let from = Some("127.0.0.2".parse().unwrap());
    let (s, _) = sign_in_raw(&c.balancer, from, &admin.id_number, "Wrong-Pass1", "000000").await;
    assert_eq!(s, 401);
    assert_eq!(last_sign_in_address(&c).await, "127.0.0.2");

    // The address's failures count on both servers: the balancer spreads twenty failed
    // sign-ins from 127.0.0.4 (a new connection each) over A and B, and the next is throttled.
    let four = Some("127.0.0.4".parse().unwrap());
    let limit = dangjian_server::account::throttle::MAX_FAILURES as u32;
    for i in 0..limit {
        let id = synthetic_id_number(90_000 + i);
        let (s, body) = sign_in_raw(&c.balancer, four, &id, "Wrong-Pass1", "000000").await;
        assert_eq!(s, 401, "try {i}: {body}");
    }
    let (s, body) = sign_in_raw(&c.balancer, four, &admin.id_number, "x", "000000").await;
    assert_eq!(
        s, 429,
        "the address's failures were not counted across servers: {body}"
    );

    // A header from a trusted address (127.0.0.1/32) names the client.
    let client: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let trusted = proxy_relay(&c.servers[0], "127.0.0.1".parse().unwrap(), client).await;
    let (s, _) = sign_in_raw(&trusted, None, &admin.id_number, "Wrong-Pass1", "000000").await;
    assert_eq!(s, 401);
    assert_eq!(last_sign_in_address(&c).await, "198.51.100.7");

    // The same header from 127.0.0.3, not a balancer: the connection is refused.
    let forged = proxy_relay(&c.servers[0], "127.0.0.3".parse().unwrap(), client).await;
    let r = forged
        .client()
        .post(forged.url("/api/v1/session"))
        .json(&json!({"id_number": admin.id_number, "password": "x", "code": "000000"}))
        .send()
        .await;
    assert!(r.is_err(), "a PROXY header from a non-balancer was served");
}

/// SQLite is served by one process: a restart ends the jobs the killed process left running
/// (reported interrupted at once, not after the heartbeat's 60 seconds).
#[tokio::test]
async fn a_restarted_sqlite_server_ends_the_jobs_it_left_running() {
    let server = Server::demo(50, None).await;
    let admin = server.account("admin", Some(3));
    let api = server.sign_in(&admin).await;
    let me = api.get("/api/v1/session").await;
    let account = me.body["account"]["id"].as_str().unwrap().to_string();
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&server.db_url())
        .await
        .unwrap();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sqlx::query(
        "INSERT INTO jobs (id, kind, account_id, label, state, started_at, heartbeat_at) \
         VALUES ('left-running', 'quality', $1, '校验', 'running', $2, $2)",
    )
    .bind(&account)
    .bind(&now)
    .execute(&mut db)
    .await
    .unwrap();
    drop(db);
    let r = api.get("/api/v1/jobs/left-running").await;
    assert_eq!(r.body["state"], "running", "{:?}", r.body);
    let server = server.kill_and_restart();
    let r = api.at(&server).get("/api/v1/jobs/left-running").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "failed", "{:?}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("中断"),
        "{:?}",
        r.body
    );
}
