//! Store suite: the same tests against SQLite and PostgreSQL (`<test>::sqlite`,
//! `<test>::postgres`), through the server's own storage functions.

use dangjian_server::access::{self, Actor, Role};
use dangjian_server::audit::{self, Event, Who};
use dangjian_server::collate::NameOrder;
use dangjian_server::crypto::{self, Column};
use dangjian_server::db::{new_id, Db, Engine};
use dangjian_server::error::ApiError;
use dangjian_server::member::{self, rules::MemberInput};
use dangjian_server::org::store::{self as orgs, NewOrg};
use dangjian_server::state::Paging;
use dangjian_tests::TestDb;

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(dangjian_tests::TestDb::sqlite().await).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(dangjian_tests::TestDb::postgres().await).await
            }
        }
    )*};
}

on_both_engines!(
    migrations_apply_once_and_again,
    subtree_is_one_range_over_unified_codes,
    unique_constraints_become_field_errors,
    audit_chain_verifies_and_names_the_first_broken_record,
    audit_records_cannot_be_changed_or_deleted,
    audit_prune_leaves_an_anchor_and_the_chain_verifiable,
    audit_search_filters_match_on_both_engines,
    auditors_see_only_their_subtree,
    refusals_while_loading_the_actor_are_recorded,
    demo_province_is_consistent,
    personal_information_is_encrypted_at_rest,
    key_rotation_reencrypts_every_value,
    member_names_sort_by_pinyin_and_strokes,
    a_large_subtree_lists_in_name_order_through_the_key_index,
    realname_registry_imports_a_csv_and_answers_checks,
    attachments_are_stored_linked_and_replaced,
    history_keeps_every_column_and_recovery_restores_it,
    bulk_insert_stores_what_a_single_write_stores,
);

async fn open(t: &TestDb) -> Db {
    dangjian_tests::test_keys_dir();
    let db = Db::connect(&t.url).await.expect("connect");
    db.migrate().await.expect("migrate");
    db
}

fn new_org(name: &str, category: &str) -> NewOrg {
    NewOrg {
        name: name.to_string(),
        short_name: String::new(),
        category: category.to_string(),
        level: (category == "1").then(|| "province".to_string()),
        secretary: String::new(),
        contact_name: "联系人".to_string(),
        contact_phone: "13800000000".to_string(),
        subordination: String::new(),
        founded_on: Some("2020-01-01".to_string()),
        unit_mode: None,
        work_category: None,
        may_approve_development: false,
    }
}

async fn migrations_apply_once_and_again(t: TestDb) {
    let db = open(&t).await;
    db.migrate().await.expect("second migrate is a no-op");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// Inserts a child under (`parent_id`, `parent_code`) and returns (id, code).
async fn child(
    db: &Db,
    parent_id: &str,
    parent_code: &str,
    name: &str,
    category: &str,
) -> (String, String) {
    let mut tx = db.begin().await.unwrap();
    let platform = dangjian_server::access::platform();
    let code = orgs::next_child_code(&mut tx, &platform, parent_id, parent_code)
        .await
        .unwrap();
    let id = new_id();
    orgs::insert(
        &mut tx,
        &platform,
        &id,
        &code,
        Some(parent_id),
        &new_org(name, category),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (id, code)
}

/// Inserts a member row directly (sealed ID number and its blind index, as the storage
/// functions write them).
async fn insert_member(
    db: &Db,
    branch_id: &str,
    code: &str,
    id_number: &str,
) -> Result<(), sqlx::Error> {
    let keys = crypto::keys();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO members (id, name, id_number, id_number_idx, sex, ethnicity, birth_date, education, \
         category, branch_id, org_code, joined_on, job, phone, created_at, updated_at) VALUES ($1, '测试', $2, $3, \
         'male', '01', '1980-01-01', '21', 'full', $4, $5, '2000-01-01', 'worker', $6, 'now', 'now')",
    )
    .bind(new_id())
    .bind(keys.seal(Column::MembersIdNumber, id_number))
    .bind(keys.id_number_index(Column::MembersIdNumber, id_number))
    .bind(branch_id)
    .bind(code)
    .bind(keys.seal(Column::MembersPhone, ""))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

async fn add_member(db: &Db, branch_id: &str, code: &str, id_number: &str) {
    insert_member(db, branch_id, code, id_number).await.unwrap();
}

async fn subtree_is_one_range_over_unified_codes(t: TestDb) {
    let db = open(&t).await;
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &dangjian_server::access::platform(),
        &root,
        "037",
        None,
        &new_org("根", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (a, a_code) = child(&db, &root, "037", "甲党委", "611").await;
    let (b, b_code) = child(&db, &root, "037", "乙党委", "611").await;
    assert_eq!((a_code.as_str(), b_code.as_str()), ("03701", "03702"));
    let (a1, a1_code) = child(&db, &a, &a_code, "甲一支部", "631").await;
    let (b1, b1_code) = child(&db, &b, &b_code, "乙一支部", "631").await;
    assert_eq!(a1_code, "0370101");
    for (i, n) in [
        "370102198001011231",
        "370102198001011258",
        "370102198001011274",
    ]
    .iter()
    .enumerate()
    {
        add_member(
            &db,
            if i < 2 { &a1 } else { &b1 },
            if i < 2 { &a1_code } else { &b1_code },
            n,
        )
        .await;
    }
    assert_eq!(
        orgs::subtree_member_count(db.read(), "037").await.unwrap(),
        3
    );
    assert_eq!(
        orgs::subtree_member_count(db.read(), &a_code)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        orgs::subtree_member_count(db.read(), &b1_code)
            .await
            .unwrap(),
        1
    );
    // More than 99 children: the segments go on as A000, A001, ... and stay inside the range.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("UPDATE orgs SET next_child_seq = 99 WHERE id = $1")
        .bind(&a)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (far, far_code) = child(&db, &a, &a_code, "甲百支部", "631").await;
    assert_eq!(far_code, "03701A000");
    add_member(&db, &far, &far_code, "370102198001011290").await;
    assert_eq!(
        orgs::subtree_member_count(db.read(), &a_code)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        orgs::subtree_member_count(db.read(), &b_code)
            .await
            .unwrap(),
        1
    );
    let (page, total) = orgs::children(&db, &a, 1, 1).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(page[0].code, "03701A000");
    assert_eq!(page[0].member_count, 1);
    let found = orgs::search(&db, &a_code, "百", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(orgs::search(&db, &b_code, "甲", 10)
        .await
        .unwrap()
        .is_empty());
}

async fn unique_constraints_become_field_errors(t: TestDb) {
    let db = open(&t).await;
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &dangjian_server::access::platform(),
        &root,
        "037",
        None,
        &new_org("根", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let insert_unit = |name: &'static str, code: &'static str| {
        let db = db.clone();
        let root = root.clone();
        async move {
            let mut tx = db.begin().await?;
            sqlx::query(
                "INSERT INTO units (id, name, credit_code, category, party_org_situation, owner_org_id, owner_code, \
                 created_at, updated_at) VALUES ($1, $2, $3, '2', 1, $4, '037', 'now', 'now')",
            )
            .bind(new_id())
            .bind(name)
            .bind(code)
            .bind(&root)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
    };
    insert_unit("甲公司", "CODE1").await.unwrap();
    let e = ApiError::from(insert_unit("甲公司", "CODE2").await.unwrap_err());
    assert_eq!((e.status.as_u16(), e.field.as_deref()), (409, Some("name")));
    let e = ApiError::from(insert_unit("乙公司", "CODE1").await.unwrap_err());
    assert_eq!(
        (e.status.as_u16(), e.field.as_deref()),
        (409, Some("credit_code"))
    );
    let (branch, code) = child(&db, &root, "037", "支部", "631").await;
    // The unknown ID number may repeat; a real one may not.
    add_member(&db, &branch, &code, "000000000000000000").await;
    add_member(&db, &branch, &code, "000000000000000000").await;
    add_member(&db, &branch, &code, "370102198001011231").await;
    // The sealed values differ (random nonces); the blind index catches the repeat.
    let dup = insert_member(&db, &branch, &code, "370102198001011231")
        .await
        .unwrap_err();
    let e = ApiError::from(dup);
    assert_eq!(e.field.as_deref(), Some("id_number"));
}

async fn audit_chain_verifies_and_names_the_first_broken_record(t: TestDb) {
    let db = open(&t).await;
    for i in 0..5 {
        let target = format!("t{i}");
        audit::append_alone(&db, &Who::system(), Event::ok("test.event", &target))
            .await
            .unwrap();
    }
    assert_eq!(audit::verify(&db).await.unwrap(), None);
    // The chain is for someone with raw database access, who can drop the guard triggers.
    drop_audit_guards(&db).await;
    raw(&db, "UPDATE audit_log SET target = 'forged' WHERE seq = 3").await;
    assert_eq!(audit::verify(&db).await.unwrap(), Some(3));
    let report = audit::verify_report(&db).await.unwrap();
    assert!(!report.intact);
    assert_eq!(report.first_broken, Some(3));
}

/// Runs one statement in a transaction of its own.
async fn raw(db: &Db, sql: &str) {
    let mut tx = db.begin().await.unwrap();
    sqlx::query(sql).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

/// What an attacker with raw database access does first.
async fn drop_audit_guards(db: &Db) {
    match db.engine {
        Engine::Sqlite => {
            raw(db, "DROP TRIGGER audit_log_no_update").await;
            raw(db, "DROP TRIGGER audit_log_no_delete").await;
        }
        Engine::Postgres => raw(db, "DROP TRIGGER audit_log_no_change ON audit_log").await,
    }
}

async fn audit_records_cannot_be_changed_or_deleted(t: TestDb) {
    let db = open(&t).await;
    for i in 0..3 {
        let target = format!("t{i}");
        audit::append_alone(&db, &Who::system(), Event::ok("test.event", &target))
            .await
            .unwrap();
    }
    for sql in [
        "UPDATE audit_log SET target = 'forged' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 1",
        "DELETE FROM audit_log",
    ] {
        let mut tx = db.begin().await.unwrap();
        let r = sqlx::query(sql).execute(&mut *tx).await;
        assert!(r.is_err(), "{sql} must be refused by the database");
        drop(tx);
    }
    // The gate opens only to the newest anchor, and there is none: refused, nothing deleted.
    let mut tx = db.begin().await.unwrap();
    assert!(
        sqlx::query("UPDATE audit_prune_gate SET upto = 3 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .is_err()
    );
    drop(tx);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(audit::verify(&db).await.unwrap(), None);
}

async fn audit_prune_leaves_an_anchor_and_the_chain_verifiable(t: TestDb) {
    let db = open(&t).await;
    let append = |target: &'static str| {
        let db = db.clone();
        async move {
            audit::append_alone(&db, &Who::system(), Event::ok("test.event", target))
                .await
                .unwrap()
        }
    };
    for target in ["old1", "old2", "old3"] {
        append(target).await;
    }
    // Records carry whole seconds: move to the next second so that the cutoff splits them.
    let now = chrono::Utc::now();
    let next = chrono::DateTime::<chrono::Utc>::from_timestamp(now.timestamp() + 1, 0).unwrap();
    tokio::time::sleep((next - now).to_std().unwrap()).await;
    for target in ["new4", "new5"] {
        append(target).await;
    }
    // Nothing is older than the shortest retention, and shorter ones are refused. The
    // pruning that found nothing still records itself (seq 6).
    assert!(audit::prune(&db, 30).await.is_err());
    let none = audit::prune(&db, audit::DEFAULT_RETENTION_DAYS)
        .await
        .unwrap();
    assert_eq!((none.pruned, none.anchor.is_none()), (0, true));
    let report = audit::prune_older_than(&db, next).await.unwrap();
    assert_eq!(report.pruned, 3);
    let anchor = report.anchor.expect("anchor");
    assert_eq!(anchor.seq, 3);
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_log ORDER BY seq")
        .fetch_all(db.read())
        .await
        .unwrap();
    assert_eq!(seqs, vec![4, 5, 6, 7]);
    let (action, detail): (String, String) =
        sqlx::query_as("SELECT action, detail FROM audit_log WHERE seq = 7")
            .fetch_one(db.read())
            .await
            .unwrap();
    assert_eq!(action, "audit.prune");
    assert!(detail.contains("pruned 3 records"), "{detail}");
    // The gate is closed again and the anchor is append-only.
    let gate: i64 = sqlx::query_scalar("SELECT upto FROM audit_prune_gate WHERE id = 1")
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(gate, 0);
    let mut tx = db.begin().await.unwrap();
    assert!(sqlx::query("DELETE FROM audit_anchor")
        .execute(&mut *tx)
        .await
        .is_err());
    drop(tx);
    // Verification resumes from the anchor; appends continue the chain.
    let v = audit::verify_report(&db).await.unwrap();
    assert!(v.intact, "{v:?}");
    assert_eq!(v.records, 4);
    assert_eq!(v.anchor.as_ref().map(|a| a.seq), Some(3));
    append("after").await;
    assert_eq!(audit::verify(&db).await.unwrap(), None);
    // Forging the first kept record, or deleting the newest, is still caught.
    drop_audit_guards(&db).await;
    raw(&db, "DELETE FROM audit_log WHERE seq = 8").await;
    assert_eq!(audit::verify(&db).await.unwrap(), Some(8));
    raw(&db, "UPDATE audit_log SET detail = 'forged' WHERE seq = 4").await;
    assert_eq!(audit::verify(&db).await.unwrap(), Some(4));
    // A broken chain is never pruned away.
    assert!(
        audit::prune_older_than(&db, chrono::Utc::now() + chrono::Duration::days(1))
            .await
            .is_err()
    );
}

async fn audit_search_filters_match_on_both_engines(t: TestDb) {
    use dangjian_server::access::AuditScope;
    use dangjian_server::audit::query::{find, AuditFilter};
    let db = open(&t).await;
    let alice = Who {
        account_id: Some("acc-1".to_string()),
        name: "张审计".to_string(),
        role: "auditor".to_string(),
        ..Who::system()
    };
    for (who, action, target) in [
        (&alice, "session.sign_in", "a_1"),
        (&alice, "member.view", "m%1"),
        (&Who::system(), "session.sign_out", "ax1"),
    ] {
        audit::append_alone(&db, who, Event::ok(action, target))
            .await
            .unwrap();
    }
    let refused = Event::ok("GET /api/v1/audit", "/api/v1/audit")
        .outcome(audit::Outcome::Refused)
        .with_detail("forbidden");
    audit::append_alone(&db, &alice, refused).await.unwrap();
    let count = |f: AuditFilter| {
        let db = db.clone();
        async move { find(&db, &f, &AuditScope::All, 100, 0).await.unwrap() }
    };
    let (all, total) = count(AuditFilter::default()).await;
    assert_eq!(total, 4);
    assert_eq!(all.iter().map(|i| i.seq).collect::<Vec<_>>(), [4, 3, 2, 1]);
    let by = |actor: &str| AuditFilter {
        actor: Some(actor.to_string()),
        ..AuditFilter::default()
    };
    assert_eq!(count(by("acc-1")).await.1, 3);
    assert_eq!(count(by("审计")).await.1, 3);
    let action = AuditFilter {
        action: Some("session.".to_string()),
        ..AuditFilter::default()
    };
    assert_eq!(count(action).await.1, 2);
    // `_` and `%` are literal, not wildcards.
    let target = |t: &str| AuditFilter {
        target: Some(t.to_string()),
        ..AuditFilter::default()
    };
    assert_eq!(count(target("a_1")).await.1, 1);
    assert_eq!(count(target("m%")).await.1, 1);
    let refusals = AuditFilter {
        outcome: Some("refused".to_string()),
        ..AuditFilter::default()
    };
    let (items, n) = count(refusals).await;
    assert_eq!((n, items[0].detail.as_str()), (1, "forbidden"));
    let today = dangjian_server::db::today().to_string();
    let dated = AuditFilter {
        since: Some(today.clone()),
        until: Some(today),
        ..AuditFilter::default()
    };
    assert_eq!(count(dated).await.1, 4);
    let bad = AuditFilter {
        outcome: Some("maybe".to_string()),
        ..AuditFilter::default()
    };
    let e = find(&db, &bad, &AuditScope::All, 10, 0).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("outcome"));
}

/// An auditor actor scoped to the organisation with this unified code.
fn auditor(org_id: &str, code: &str) -> Actor {
    Actor {
        account_id: format!("auditor-{code}"),
        name: format!("审计员{code}"),
        grant_id: "g".to_string(),
        role: Role::Auditor,
        tier: None,
        org_id: org_id.to_string(),
        org_code: code.to_string(),
        org_name: "组织".to_string(),
        client_addr: "127.0.0.1".to_string(),
        cert_serial: Some("01".to_string()),
        session_token_hash: String::new(),
        csrf_token: String::new(),
        must_change_password: false,
    }
}

async fn auditors_see_only_their_subtree(t: TestDb) {
    use dangjian_server::audit::query::{search, AuditQuery};
    use dangjian_server::audit::routes::export;
    let db = open(&t).await;
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &dangjian_server::access::platform(),
        &root,
        "037",
        None,
        &new_org("根", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (a, a_code) = child(&db, &root, "037", "甲党委", "611").await;
    let (b, b_code) = child(&db, &root, "037", "乙党委", "611").await;
    let (a1, a1_code) = child(&db, &a, &a_code, "甲一支部", "631").await;
    let admin_of = |org_id: &str, code: &str| Who {
        account_id: Some(format!("admin-{code}")),
        name: format!("管理员{code}"),
        role: "admin".to_string(),
        org_id: Some(org_id.to_string()),
        client_addr: "127.0.0.1".to_string(),
        cert_serial: None,
        org_code: Some(code.to_string()),
    };
    let officer = admin_of(&root, "037");
    // A record written before records carried scope codes; the admins of A1 and B at work in
    // their own subtrees; the root's officer acting on A and on B (the target's organisation
    // is looked up from its id).
    for (who, action, target) in [
        (Who::system(), "test.legacy", "legacy"),
        (admin_of(&a1, &a1_code), "org.edit", a1.as_str()),
        (admin_of(&b, &b_code), "org.edit", b.as_str()),
        (officer.clone(), "grant.create", a.as_str()),
        (officer.clone(), "grant.create", b.as_str()),
    ] {
        audit::append_alone(&db, &who, Event::ok(action, target))
            .await
            .unwrap();
    }
    let q = AuditQuery {
        per_page: Some(100),
        ..AuditQuery::default()
    };
    let seen = |actor: Actor| {
        let (db, q) = (db.clone(), q.clone());
        async move {
            let page = search(&db, &actor, &q).await.unwrap();
            let mut seen: Vec<(String, String)> = page
                .items
                .into_iter()
                .map(|i| (i.action, i.target))
                .collect();
            seen.sort();
            seen
        }
    };
    let pair = |action: &str, target: &str| (action.to_string(), target.to_string());
    assert_eq!(
        seen(auditor(&a, &a_code)).await,
        vec![pair("grant.create", &a), pair("org.edit", &a1)]
    );
    assert_eq!(
        seen(auditor(&b, &b_code)).await,
        vec![pair("grant.create", &b), pair("org.edit", &b)]
    );
    assert_eq!(seen(auditor(&root, "037")).await.len(), 5);
    // The export holds the same records (and is itself recorded in the auditor's scope).
    let file = export(
        &db,
        &auditor(&a, &a_code),
        &dangjian_server::audit::query::ExportQuery::default(),
    )
    .await
    .unwrap();
    let csv = String::from_utf8(file.bytes).unwrap();
    assert!(csv.contains(&a1) && csv.contains(&a), "{csv}");
    assert!(!csv.contains(&b) && !csv.contains("test.legacy"), "{csv}");
    let b_seen = seen(auditor(&b, &b_code)).await;
    assert!(!b_seen.iter().any(|(action, _)| action == "audit.export"));
    // Others are still refused.
    let mut admin = auditor(&root, "037");
    admin.role = Role::Admin;
    assert_eq!(search(&db, &admin, &q).await.unwrap_err().status, 403);
    assert_eq!(audit::verify(&db).await.unwrap(), None);
}

async fn refusals_while_loading_the_actor_are_recorded(t: TestDb) {
    use dangjian_server::account::session;
    let db = open(&t).await;
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &dangjian_server::access::platform(),
        &root,
        "037",
        None,
        &new_org("根", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // A tier-1 admin: the grant needs the USB key.
    let (admin, _) = accounts_and_admin(&db, &root).await;
    let session_with = |fingerprint: Option<&'static str>| {
        let (db, admin) = (db.clone(), admin.clone());
        async move {
            let mut tx = db.begin().await.unwrap();
            let (token, _) = session::create(
                &mut tx,
                &access::platform(),
                &admin.account_id,
                &admin.grant_id,
                "10.0.0.9",
                fingerprint,
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            token
        }
    };
    // A password session under it (as left behind when a grant's tier rose).
    let password = session_with(None).await;
    let e = session::load_actor(&db, &password, "10.0.0.9", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, "card_required");
    // A card session used over a connection without its certificate, then with the
    // certificate, which is no longer in the register.
    let card = session_with(Some("f00d")).await;
    let e = session::load_actor(&db, &card, "10.0.0.9", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, "certificate_mismatch");
    let peer = dangjian_server::tls::PeerCert {
        der: std::sync::Arc::new(Vec::new()),
        serial_hex: "0a0b".to_string(),
        fingerprint: "f00d".to_string(),
        issuer: "CN=平台 CA".to_string(),
        subject: "CN=管理员".to_string(),
    };
    let e = session::load_actor(&db, &card, "10.0.0.9", Some(&peer))
        .await
        .unwrap_err();
    assert_eq!(e.code, "certificate_revoked");
    let recorded: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT detail, client_addr, outcome, actor_org_code FROM audit_log \
         WHERE action = 'session.use' AND actor_account_id = $1 ORDER BY seq",
    )
    .bind(&admin.account_id)
    .fetch_all(db.read())
    .await
    .unwrap();
    let codes: Vec<&str> = recorded
        .iter()
        .map(|r| r.0.split(':').next().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "card_required",
            "certificate_mismatch",
            "certificate_revoked"
        ]
    );
    for r in &recorded {
        assert_eq!((r.1.as_str(), r.2.as_str()), ("10.0.0.9", "refused"));
        assert_eq!(r.3.as_deref(), Some("037"));
    }
    assert!(
        recorded[1].0.contains("no client certificate"),
        "{recorded:?}"
    );
    assert_eq!(audit::verify(&db).await.unwrap(), None);
}

async fn demo_province_is_consistent(t: TestDb) {
    let db = open(&t).await;
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &dangjian_server::access::platform(),
        &root,
        "037",
        None,
        &new_org("中共泉山省委员会", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let accounts = dangjian_server::demo::generate(&db, &root, "037", 2000, false)
        .await
        .unwrap();
    // Security, auditor, tiers 1 and 2, tier 3 on a branch and tier 3 on a general branch, a
    // security officer and an auditor of the first city, the county's tier-1 admin.
    assert_eq!(accounts.len(), 9);
    let tiers: Vec<Option<u8>> = accounts.iter().map(|a| a.tier).collect();
    assert!(tiers.contains(&Some(1)) && tiers.contains(&Some(2)) && tiers.contains(&Some(3)));
    let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members")
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(members, 2000);
    // Every member sits in a branch-type organisation whose code it carries.
    let misplaced: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM members m JOIN orgs o ON o.id = m.branch_id \
         WHERE o.category NOT IN ('631', '632', '9') OR o.code <> m.org_code",
    )
    .fetch_one(db.read())
    .await
    .unwrap();
    assert_eq!(misplaced, 0);
    // Every ID number is valid and matches sex and birth date.
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id_number, sex, birth_date FROM members")
            .fetch_all(db.read())
            .await
            .unwrap();
    let today = dangjian_server::db::today();
    for (id, sex, birth) in rows {
        let id = crypto::open(Column::MembersIdNumber, &id).unwrap();
        match dangjian_server::member::idcard::parse(&id, today).unwrap() {
            dangjian_server::member::idcard::IdNumber::Known {
                birth_date, male, ..
            } => {
                assert_eq!(birth_date.to_string(), birth);
                assert_eq!(if male { "male" } else { "female" }, sex);
            }
            dangjian_server::member::idcard::IdNumber::Unknown => {
                panic!("demo has no unknown numbers")
            }
        }
    }
    // Joint branches link two or more units with one default.
    let joint: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT o.id, COUNT(*), CAST(SUM(ou.is_default) AS BIGINT) FROM orgs o JOIN org_units ou ON ou.org_id = o.id \
         WHERE o.category = '632' GROUP BY o.id",
    )
    .fetch_all(db.read())
    .await
    .unwrap();
    assert!(!joint.is_empty());
    for (_, n, defaults) in joint {
        assert!(n >= 2);
        assert_eq!(defaults, 1);
    }
    assert_eq!(audit::verify(&db).await.unwrap(), None);
}

/// A security officer and a tier-1 admin of the root, made through `create_account`; returns
/// the admin as an actor and the officer's (ID number, mobile, TOTP secret).
async fn accounts_and_admin(db: &Db, root: &str) -> (Actor, (String, String, String)) {
    use dangjian_server::account::store::{create_account, create_grant, NewAccount};
    let officer = (
        "11010519491231002X".to_string(),
        "13900001111".to_string(),
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".to_string(),
    );
    let mut tx = db.begin().await.unwrap();
    let officer_id = create_account(
        &mut tx,
        &NewAccount {
            name: "安全员",
            id_number: &officer.0,
            mobile: &officer.1,
            password: "Secret-2026!",
            totp_secret: &officer.2,
            totp_confirmed: true,
            must_change_password: false,
        },
    )
    .await
    .unwrap();
    create_grant(
        &mut tx,
        &dangjian_server::access::platform(),
        &officer_id,
        Role::Security,
        root,
        None,
        true,
        None,
    )
    .await
    .unwrap();
    let admin_id = create_account(
        &mut tx,
        &NewAccount {
            name: "管理员",
            id_number: "370102197001011236",
            mobile: "13900002222",
            password: "Secret-2026!",
            totp_secret: "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU",
            totp_confirmed: true,
            must_change_password: false,
        },
    )
    .await
    .unwrap();
    let grant = create_grant(
        &mut tx,
        &dangjian_server::access::platform(),
        &admin_id,
        Role::Admin,
        root,
        Some(1),
        true,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let actor = Actor {
        account_id: admin_id,
        name: "管理员".to_string(),
        grant_id: grant,
        role: Role::Admin,
        tier: Some(1),
        org_id: root.to_string(),
        org_code: "037".to_string(),
        org_name: "根".to_string(),
        client_addr: "127.0.0.1".to_string(),
        cert_serial: None,
        session_token_hash: String::new(),
        csrf_token: String::new(),
        must_change_password: false,
    };
    (actor, officer)
}

fn member_input(branch: &str, id_number: &str, registered_phone: &str) -> MemberInput {
    MemberInput {
        name: Some("测试党员".to_string()),
        id_number: Some(id_number.to_string()),
        ethnicity: Some("01".to_string()),
        education: Some("21".to_string()),
        category: Some("full".to_string()),
        branch_id: Some(branch.to_string()),
        joined_on: Some("2000-01-01".to_string()),
        full_on: Some("2001-01-01".to_string()),
        job: Some("worker".to_string()),
        phone: Some("13812345678".to_string()),
        address: Some("泉山市历下区".to_string()),
        registered_phone: Some(registered_phone.to_string()),
        ..MemberInput::default()
    }
}

/// Every encrypted value of the database: (column, stored value).
async fn sealed_values(db: &Db) -> Vec<(Column, String)> {
    let mut out = Vec::new();
    let members: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id_number, phone, registered_phone FROM members")
            .fetch_all(db.read())
            .await
            .unwrap();
    for (id, phone, registered) in members {
        out.push((Column::MembersIdNumber, id));
        out.push((Column::MembersPhone, phone));
        if let Some(r) = registered {
            out.push((Column::MembersRegisteredPhone, r));
        }
    }
    let accounts: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id_number, mobile, totp_secret FROM accounts")
            .fetch_all(db.read())
            .await
            .unwrap();
    for (id, mobile, secret) in accounts {
        out.push((Column::AccountsIdNumber, id));
        out.push((Column::AccountsMobile, mobile));
        if let Some(s) = secret {
            out.push((Column::AccountsTotpSecret, s));
        }
    }
    let orgs: Vec<String> = sqlx::query_scalar("SELECT contact_phone FROM orgs")
        .fetch_all(db.read())
        .await
        .unwrap();
    out.extend(orgs.into_iter().map(|p| (Column::OrgsContactPhone, p)));
    let registry: Vec<String> = sqlx::query_scalar("SELECT id_number FROM realname_registry")
        .fetch_all(db.read())
        .await
        .unwrap();
    out.extend(registry.into_iter().map(|n| (Column::RealnameIdNumber, n)));
    out
}

/// The root, a demo province of `members` members below it, the two accounts and a member
/// entered through `member::routes::create`; returns (admin, officer, the member's id and
/// branch).
async fn encrypted_province(
    db: &Db,
    members: usize,
) -> (Actor, (String, String, String), String, String) {
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &dangjian_server::access::platform(),
        &root,
        "037",
        None,
        &new_org("根", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // With the real-name registry (sealed ID numbers) the demo seeds.
    dangjian_server::demo::generate(db, &root, "037", members, true)
        .await
        .unwrap();
    let (admin, officer) = accounts_and_admin(db, &root).await;
    let branch: String =
        sqlx::query_scalar("SELECT id FROM orgs WHERE category = '631' ORDER BY code LIMIT 1")
            .fetch_one(db.read())
            .await
            .unwrap();
    let id = member::routes::create(
        db,
        &admin,
        &member_input(&branch, "37010219800101127x", "13712345678"),
    )
    .await
    .unwrap();
    (admin, officer, id, branch)
}

async fn personal_information_is_encrypted_at_rest(t: TestDb) {
    let db = open(&t).await;
    let (admin, officer, id, branch) = encrypted_province(&db, 300).await;
    // The raw database holds no plaintext ID number, phone or TOTP secret.
    let values = sealed_values(&db).await;
    assert!(values.len() > 300 * 2);
    for (column, stored) in &values {
        assert!(crypto::is_sealed(stored), "{}: {stored}", column.name());
        let plain = crypto::open(*column, stored).unwrap();
        assert!(!stored.contains(&plain) || plain.is_empty());
    }
    for needle in [
        "37010219800101127",
        "13812345678",
        "13712345678",
        &officer.0,
        &officer.1,
        &officer.2,
    ] {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM members m, accounts a WHERE m.id_number LIKE $1 OR m.phone LIKE $1 \
             OR m.registered_phone LIKE $1 OR a.id_number LIKE $1 OR a.mobile LIKE $1 OR a.totp_secret LIKE $1",
        )
        .bind(format!("%{needle}%"))
        .fetch_one(db.read())
        .await
        .unwrap();
        assert_eq!(n, 0, "{needle} found in the clear");
    }
    // Read back: masked by default, whole (upper-case X) when unmasked.
    let masked = member::routes::view(&db, &admin, &id, false).await.unwrap();
    assert_eq!(masked.id_number, "370102********127X");
    assert_eq!(masked.phone, "138****5678");
    let whole = member::routes::view(&db, &admin, &id, true).await.unwrap();
    assert_eq!(whole.id_number, "37010219800101127X");
    assert_eq!(whole.registered_phone.as_deref(), Some("13712345678"));
    // Uniqueness holds through the blind indexes.
    let again = member::routes::create(
        &db,
        &admin,
        &member_input(&branch, "37010219800101127X", "13700000000"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (again.status.as_u16(), again.field.as_deref()),
        (409, Some("id_number"))
    );
    let phone = member::routes::create(
        &db,
        &admin,
        &member_input(&branch, "370102198001011245", "13712345678"),
    )
    .await
    .unwrap_err();
    assert_eq!(phone.field.as_deref(), Some("registered_phone"));
    // A whole ID number finds its member through the index; a part of it finds nothing.
    let paging = Paging {
        page: None,
        per_page: None,
    };
    let search = |q: &str| member::routes::MemberSearch::parse(q);
    let found = member::routes::list(
        &db,
        &admin,
        &branch,
        false,
        &search("37010219800101127x"),
        NameOrder::Pinyin,
        &paging,
    )
    .await
    .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id, id);
    let part = member::routes::list(
        &db,
        &admin,
        &branch,
        false,
        &search("370102198001"),
        NameOrder::Pinyin,
        &paging,
    )
    .await
    .unwrap();
    assert!(part.items.is_empty());
    // The last four characters, as the list shows them, find it through their own index.
    let suffix = member::routes::list(
        &db,
        &admin,
        &branch,
        false,
        &search("127x"),
        NameOrder::Pinyin,
        &paging,
    )
    .await
    .unwrap();
    assert!(
        suffix.items.iter().any(|m| m.id == id),
        "{:?}",
        suffix.items
    );
    assert!(suffix.items.iter().all(|m| m.id_number.ends_with("127X")));
    // ... and their index is keyed (an HMAC of its own kind), not the digits.
    let stored: Option<String> =
        sqlx::query_scalar("SELECT id_suffix_idx FROM members WHERE id = $1")
            .bind(&id)
            .fetch_one(db.read())
            .await
            .unwrap();
    let stored = stored.expect("a suffix index");
    assert_eq!(stored, crypto::keys().id_suffix_index("127X"));
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, crypto::index(Column::MembersIdNumber, "127X"));
    // Accounts are found by the index of their ID number, in either case of x.
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE id_number_idx = $1")
        .bind(crypto::index(
            Column::AccountsIdNumber,
            "11010519491231002x",
        ))
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let mut tx = db.begin().await.unwrap();
    let dup = create_duplicate_account(&mut tx, &officer.0).await;
    drop(tx);
    let dup = dup.downcast::<sqlx::Error>().expect("a database error");
    assert_eq!(ApiError::from(dup).field.as_deref(), Some("id_number"));
}

async fn create_duplicate_account(
    tx: &mut dangjian_server::db::Tx,
    id_number: &str,
) -> anyhow::Error {
    dangjian_server::account::store::create_account(
        tx,
        &dangjian_server::account::store::NewAccount {
            name: "重复",
            id_number,
            mobile: "13900003333",
            password: "Secret-2026!",
            totp_secret: "JBSWY3DPEHPK3PXP",
            totp_confirmed: true,
            must_change_password: false,
        },
    )
    .await
    .unwrap_err()
}

async fn key_rotation_reencrypts_every_value(t: TestDb) {
    // Rotations of the process's shared key file one at a time (both engines' variants may run
    // in one process under `cargo test`).
    static ROTATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let db = open(&t).await;
    let (admin, officer, id, _) = encrypted_province(&db, 250).await;
    let before: Vec<(Column, String)> = sealed_values(&db).await;
    let plain: Vec<String> = before
        .iter()
        .map(|(c, s)| crypto::open(*c, s).unwrap())
        .collect();
    // Rotation recomputes the suffix index with the number it re-encrypts: cleared here, it
    // must be back afterwards.
    sqlx::query("UPDATE members SET id_suffix_idx = NULL")
        .execute(db.write())
        .await
        .unwrap();
    let _one = ROTATING.lock().await;
    let mut lines = Vec::new();
    let report = crypto::rotate::rotate(
        &db,
        dangjian_tests::test_keys_dir(),
        &crypto::rotate::Options {
            batch: 100,
            grace: std::time::Duration::ZERO,
        },
        &mut |l| lines.push(l.to_string()),
    )
    .await
    .unwrap();
    assert!(report.version >= 2);
    let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
        .fetch_one(db.read())
        .await
        .unwrap();
    let registry: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM realname_registry")
        .fetch_one(db.read())
        .await
        .unwrap();
    // The demo's registry: its 250 members and 20 people who are not members.
    assert_eq!(registry, 270);
    assert_eq!(
        report.rewritten,
        (250 + 1 + 9 + 2) as u64 + orgs as u64 + registry as u64,
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("members: 100 rows")),
        "{lines:?}"
    );
    // Every value is under the new key, opens to what it was, and keeps its index.
    let after = sealed_values(&db).await;
    assert_eq!(after.len(), before.len());
    let mut after_plain = Vec::new();
    for (column, stored) in &after {
        let (key, _) = crypto::parse(stored).expect("sealed");
        assert!(key >= report.version, "{}: {stored}", column.name());
        after_plain.push(crypto::open(*column, stored).unwrap());
    }
    let mut a = plain.clone();
    let mut b = after_plain;
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let whole = member::routes::view(&db, &admin, &id, true).await.unwrap();
    assert_eq!(whole.id_number, "37010219800101127X");
    let suffix: Option<String> =
        sqlx::query_scalar("SELECT id_suffix_idx FROM members WHERE id = $1")
            .bind(&id)
            .fetch_one(db.read())
            .await
            .unwrap();
    assert_eq!(suffix, Some(crypto::keys().id_suffix_index("127X")));
    let missing: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM members WHERE id_suffix_idx IS NULL AND id_number_idx IS NOT NULL",
    )
    .fetch_one(db.read())
    .await
    .unwrap();
    assert_eq!(missing, 0);
    let secret: String =
        sqlx::query_scalar("SELECT totp_secret FROM accounts WHERE id_number_idx = $1")
            .bind(crypto::index(Column::AccountsIdNumber, &officer.0))
            .fetch_one(db.read())
            .await
            .unwrap();
    assert_eq!(
        crypto::open(Column::AccountsTotpSecret, &secret).unwrap(),
        officer.2
    );
    // The older keys stay in the file, retired.
    let file = crypto::KeyFile::load(&crypto::key_path(dangjian_tests::test_keys_dir())).unwrap();
    assert!(file.current >= report.version);
    let v1 = file.keys.iter().find(|k| k.id == 1).expect("v1 kept");
    assert!(v1.retired_at.is_some());
    // A second rotation right away works as well.
    let again = crypto::rotate::rotate(
        &db,
        dangjian_tests::test_keys_dir(),
        &crypto::rotate::Options {
            batch: 1000,
            grace: std::time::Duration::ZERO,
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(again.version > report.version);
    assert_eq!(again.rewritten, report.rewritten);
}

/// A member named `name` with a synthetic ID number (sequence `seq`) in `branch`.
fn named_member(branch: &str, name: &str, seq: u16) -> MemberInput {
    let birth = chrono::NaiveDate::from_ymd_opt(1975, 3, 1).unwrap();
    let id_number = member::idcard::compose("370102", birth, seq);
    MemberInput {
        name: Some(name.to_string()),
        ..member_input(branch, &id_number, &format!("1371000{seq:04}"))
    }
}

async fn member_names_sort_by_pinyin_and_strokes(t: TestDb) {
    let db = open(&t).await;
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &dangjian_server::access::platform(),
        &root,
        "037",
        None,
        &new_org("根", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (admin, _) = accounts_and_admin(&db, &root).await;
    let (branch, _) = child(&db, &root, "037", "第一党支部", "631").await;
    // Synthetic names. Code point order would be 丁 于 何 周 王.
    let names = ["何一", "王二", "于三", "丁四", "周五", "王一"];
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let input = named_member(&branch, name, 100 + i as u16);
        let id = member::routes::create(&db, &admin, &input).await.unwrap();
        ids.push((id, input.id_number.unwrap()));
    }
    let all = member::routes::MemberSearch::All;
    let page = |n: i64, per: i64| Paging {
        page: Some(n),
        per_page: Some(per),
    };
    let names_in = |order: NameOrder, include_sub: bool, paging: Paging| {
        let (db, admin, all) = (&db, &admin, &all);
        let org = if include_sub {
            root.clone()
        } else {
            branch.clone()
        };
        async move {
            member::routes::list(db, admin, &org, include_sub, all, order, &paging)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
        }
    };
    // 姓氏拼音: ding he wang(er) wang(yi) yu zhou.
    let pinyin = ["丁四", "何一", "王二", "王一", "于三", "周五"];
    // 姓氏笔画: 丁 2, 于 3, 王 4 (then 一 1 before 二 2), 何 7, 周 8.
    let strokes = ["丁四", "于三", "王一", "王二", "何一", "周五"];
    assert_eq!(
        names_in(NameOrder::Pinyin, false, page(1, 20)).await,
        pinyin
    );
    assert_eq!(
        names_in(NameOrder::Strokes, false, page(1, 20)).await,
        strokes
    );
    // The same order from above the branch (包含下级), and page by page.
    assert_eq!(
        names_in(NameOrder::Strokes, true, page(1, 20)).await,
        strokes
    );
    assert_eq!(
        names_in(NameOrder::Strokes, true, page(2, 4)).await,
        ["何一", "周五"]
    );
    assert_eq!(
        names_in(NameOrder::Pinyin, false, page(2, 2)).await,
        ["王二", "王一"]
    );
    // The keys are stored beside the name, as the collator computes them.
    let stored: Vec<(String, String, String)> =
        sqlx::query_as("SELECT name, sort_pinyin, sort_strokes FROM members")
            .fetch_all(db.read())
            .await
            .unwrap();
    for (name, p, s) in &stored {
        assert_eq!(p, &dangjian_server::collate::pinyin_key(name));
        assert_eq!(s, &dangjian_server::collate::strokes_key(name));
    }
    // The suffix search finds exactly the member whose number ends so.
    let (id, number) = &ids[3];
    let suffix = &number[14..];
    let found = member::routes::list(
        &db,
        &admin,
        &root,
        true,
        &member::routes::MemberSearch::parse(&suffix.to_ascii_lowercase()),
        NameOrder::Pinyin,
        &page(1, 20),
    )
    .await
    .unwrap();
    assert_eq!(found.items.iter().map(|m| &m.id).collect::<Vec<_>>(), [id]);
    // Rows written before the keys existed (or under another collator) get them at start.
    sqlx::query("UPDATE members SET sort_pinyin = NULL, sort_strokes = NULL, id_suffix_idx = NULL")
        .execute(db.write())
        .await
        .unwrap();
    sqlx::query("DELETE FROM sort_key_versions")
        .execute(db.write())
        .await
        .unwrap();
    // No version recorded: every row, the two accounts included, gets keys.
    assert_eq!(member::sort_keys::backfill(&db).await.unwrap(), 6 + 2);
    assert_eq!(member::sort_keys::backfill(&db).await.unwrap(), 0, "once");
    assert_eq!(
        names_in(NameOrder::Strokes, false, page(1, 20)).await,
        strokes
    );
    assert_eq!(names_in(NameOrder::Pinyin, true, page(1, 20)).await, pinyin);
    let again = member::routes::list(
        &db,
        &admin,
        &branch,
        false,
        &member::routes::MemberSearch::parse(suffix),
        NameOrder::Pinyin,
        &page(1, 20),
    )
    .await
    .unwrap();
    assert_eq!(again.items.len(), 1);
    sqlx::query("UPDATE members SET sort_strokes = 'ff' WHERE name = '丁四'")
        .execute(db.write())
        .await
        .unwrap();
    sqlx::query("UPDATE sort_key_versions SET version = 'an older collator'")
        .execute(db.write())
        .await
        .unwrap();
    // Another collator: every member's keys and both accounts' pinyin keys again.
    assert_eq!(member::sort_keys::backfill(&db).await.unwrap(), 6 + 2);
    let accounts: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, sort_pinyin FROM accounts")
            .fetch_all(db.read())
            .await
            .unwrap();
    assert_eq!(accounts.len(), 2);
    for (name, key) in accounts {
        assert_eq!(key, Some(dangjian_server::collate::pinyin_key(&name)));
    }
    assert_eq!(
        names_in(NameOrder::Strokes, false, page(1, 20)).await,
        strokes
    );
}

async fn a_large_subtree_lists_in_name_order_through_the_key_index(t: TestDb) {
    let db = open(&t).await;
    let members = member::routes::LARGE_SUBTREE as usize + 300;
    let (admin, _, _, _) = encrypted_province(&db, members).await;
    let root: String = sqlx::query_scalar("SELECT id FROM orgs WHERE parent_id IS NULL")
        .fetch_one(db.read())
        .await
        .unwrap();
    // The backfill at start (many transactions, many statements) gives every row the keys
    // its writer gave it.
    let before: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, sort_pinyin, sort_strokes, id_suffix_idx FROM members ORDER BY id",
    )
    .fetch_all(db.read())
    .await
    .unwrap();
    sqlx::query("UPDATE members SET sort_pinyin = NULL, sort_strokes = NULL, id_suffix_idx = NULL")
        .execute(db.write())
        .await
        .unwrap();
    member::sort_keys::backfill(&db).await.unwrap();
    let after: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, sort_pinyin, sort_strokes, id_suffix_idx FROM members ORDER BY id",
    )
    .fetch_all(db.read())
    .await
    .unwrap();
    assert_eq!(before.len(), members + 1);
    assert!(before == after, "the backfill computes the same keys");
    let all = member::routes::MemberSearch::All;
    let total = members as i64 + 1;
    for order in [NameOrder::Pinyin, NameOrder::Strokes] {
        let everyone: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT id, name FROM members ORDER BY {}, id",
            order.column()
        ))
        .fetch_all(db.read())
        .await
        .unwrap();
        let list_page = |page: i64, per_page: i64| {
            let (db, admin, root, all) = (&db, &admin, &root, &all);
            async move {
                let list = member::routes::list(
                    db,
                    admin,
                    root,
                    true,
                    all,
                    order,
                    &Paging {
                        page: Some(page),
                        per_page: Some(per_page),
                    },
                )
                .await
                .unwrap();
                assert_eq!(list.total, total);
                list.items
                    .into_iter()
                    .map(|m| (m.id, m.name))
                    .collect::<Vec<_>>()
            }
        };
        let mut got = Vec::new();
        for page in 1..=3 {
            got.extend(list_page(page, 20).await);
        }
        assert_eq!(got, everyone[..60], "{order:?}");
        let keys: Vec<String> = got.iter().map(|(_, n)| order.key(n)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        // Pages in the second half are counted from the end (`ids_of_page`): the middle ones,
        // the last (partial) one and one past the end are the same slices of the whole order.
        let per_page = 50i64;
        let pages = (total + per_page - 1) / per_page;
        for page in [pages / 2, pages / 2 + 1, pages - 1, pages, pages + 1] {
            let from = ((page - 1) * per_page).min(total) as usize;
            let to = (page * per_page).min(total) as usize;
            assert_eq!(
                list_page(page, per_page).await,
                everyone[from..to],
                "{order:?} page {page} of {pages}"
            );
        }
    }
}

/// The local real-name registry: a CSV with a BOM, a header and bad lines is imported (the bad
/// lines reported by number, the rest upserted in one transaction with `realname.import`), the
/// ID numbers are sealed, and the registry answers match and mismatch (other name, unknown
/// number) through the `RealNameSource` the server uses.
async fn realname_registry_imports_a_csv_and_answers_checks(t: TestDb) {
    use dangjian_server::realname::{local, RealNameSource, Verdict};
    let db = open(&t).await;
    let person = |y: i32, seq: u16| {
        member::idcard::compose(
            "370102",
            chrono::NaiveDate::from_ymd_opt(y, 5, 6).unwrap(),
            seq,
        )
    };
    let (a, b, c) = (person(1980, 11), person(1985, 22), person(1990, 33));
    let mut wrong = a.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '1' { '2' } else { '1' });
    let csv = format!(
        "\u{feff}身份证号,姓名\r\n{a},张实名\r\n{wrong},李校验\r\n{},王小写\r\n{a},重复行\r\n只有一列\r\n\r\n{c},赵三\r\n",
        b.to_lowercase()
    );
    let report = local::import_csv(&db, &access::platform(), &Who::system(), &csv, false)
        .await
        .unwrap();
    assert!(report.header);
    assert_eq!((report.imported, report.updated), (3, 0));
    let bad: Vec<usize> = report.bad.iter().map(|l| l.line).collect();
    assert_eq!(bad, vec![3, 5, 6], "{:?}", report.bad);
    assert!(report.bad[0].reason.contains("校验位"), "{:?}", report.bad);
    assert_eq!(local::count(&db).await.unwrap(), 3);
    // Sealed at rest, found through the blind index.
    let stored: Vec<String> = sqlx::query_scalar("SELECT id_number FROM realname_registry")
        .fetch_all(db.read())
        .await
        .unwrap();
    for s in &stored {
        assert!(crypto::is_sealed(s), "{s}");
        assert!(!s.contains(&a[..10]), "{s}");
    }
    let source = local::LocalRegistry::new(db.clone());
    assert_eq!(source.check(&a, "张实名").await, Ok(Verdict::Match));
    assert_eq!(
        source.check(&format!(" {b} "), " 王小写").await,
        Ok(Verdict::Match)
    );
    assert_eq!(source.check(&a, "张冒名").await, Ok(Verdict::Mismatch));
    assert_eq!(
        source.check(&person(1970, 44), "张实名").await,
        Ok(Verdict::Mismatch)
    );
    // Upsert: a second import renames a known number and adds a new one; the rest stays.
    let d = person(1995, 55);
    let report = local::import_csv(
        &db,
        &access::platform(),
        &Who::system(),
        &format!("{c},赵叁\n{d},钱四\n"),
        false,
    )
    .await
    .unwrap();
    assert!(!report.header);
    assert_eq!(
        (report.imported, report.updated, report.bad.len()),
        (2, 1, 0)
    );
    assert_eq!(local::count(&db).await.unwrap(), 4);
    assert_eq!(source.check(&c, "赵叁").await, Ok(Verdict::Match));
    assert_eq!(source.check(&c, "赵三").await, Ok(Verdict::Mismatch));
    assert_eq!(source.check(&a, "张实名").await, Ok(Verdict::Match));
    // Strict: one bad line imports nothing.
    let strict = local::import_csv(
        &db,
        &access::platform(),
        &Who::system(),
        &format!("{},孙五\nbad,line\n", person(1996, 66)),
        true,
    )
    .await
    .unwrap();
    assert_eq!((strict.imported, strict.bad.len()), (0, 1));
    assert_eq!(local::count(&db).await.unwrap(), 4);
    // Each import is audited with its count, and the chain holds.
    let details: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'realname.import' ORDER BY seq",
    )
    .fetch_all(db.read())
    .await
    .unwrap();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(details[0].starts_with("3 人"), "{details:?}");
    assert_eq!(audit::verify(&db).await.unwrap(), None);
}

/// Attachments on both engines: an accepted file is stored (row, 0600 file, audit record), a
/// file whose transaction never commits is removed, a member's photo is set, replaced (the old
/// row and file gone) and removed, and a free attachment is linked to an owner once.
async fn attachments_are_stored_linked_and_replaced(t: TestDb) {
    use dangjian_server::attachment::{accept, store, Kind};
    let db = open(&t).await;
    let data = dangjian_tests::TempDir::new("dangjian-attachments");
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &access::platform(),
        &root,
        "037",
        None,
        &new_org("根", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (branch, branch_code) = child(&db, &root, "037", "第一支部", "631").await;
    let number = member::idcard::compose(
        "370102",
        chrono::NaiveDate::from_ymd_opt(1980, 1, 2).unwrap(),
        13,
    );
    add_member(&db, &branch, &branch_code, &number).await;
    let member_id: String = sqlx::query_scalar("SELECT id FROM members LIMIT 1")
        .fetch_one(db.read())
        .await
        .unwrap();
    let who = Who::system();
    let pdf = accept(Kind::Document, "表.pdf", b"%PDF-1.4\n%%EOF\n").unwrap();
    let row = store::create(
        &db,
        &access::platform(),
        data.path(),
        &who,
        &branch_code,
        None,
        &pdf,
    )
    .await
    .unwrap();
    let file = data.path().join("attachments").join(&row.id);
    assert_eq!(std::fs::read(&file).unwrap(), pdf.bytes);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let got = store::get(&db, &row.id).await.unwrap().unwrap();
    assert_eq!(
        (got.size, got.org_code.as_str()),
        (pdf.bytes.len() as i64, branch_code.as_str())
    );
    // A file written whose transaction does not commit is removed.
    let pending = store::write_file(data.path(), "0123abcd", b"x").unwrap();
    assert!(data.path().join("attachments/0123abcd").exists());
    drop(pending);
    assert!(!data.path().join("attachments/0123abcd").exists());
    assert!(store::file_of(data.path(), "../keys.json").is_none());
    // Linked once, to its own organisation only.
    let mut tx = db.begin().await.unwrap();
    assert!(!store::link_owner(
        &mut tx,
        &access::platform(),
        &row.id,
        "037",
        "application",
        "a1"
    )
    .await
    .unwrap());
    assert!(store::link_owner(
        &mut tx,
        &access::platform(),
        &row.id,
        &branch_code,
        "application",
        "a1"
    )
    .await
    .unwrap());
    assert!(!store::link_owner(
        &mut tx,
        &access::platform(),
        &row.id,
        &branch_code,
        "application",
        "a2"
    )
    .await
    .unwrap());
    tx.commit().await.unwrap();
    let linked = store::of_owner(&db, "application", "a1").await.unwrap();
    assert_eq!(linked.len(), 1);
    // The member's photo: set, replaced, removed.
    let png = |w: u32| {
        let mut out = Vec::new();
        image_png(w, &mut out);
        out
    };
    let first = accept(Kind::Photo, "a.png", &png(300)).unwrap();
    let a = store::set_member_photo(
        &db,
        &access::platform(),
        data.path(),
        &who,
        &member_id,
        &branch_code,
        Some(&first),
    )
    .await
    .unwrap()
    .unwrap();
    let second = accept(Kind::Photo, "b.png", &png(100)).unwrap();
    let b = store::set_member_photo(
        &db,
        &access::platform(),
        data.path(),
        &who,
        &member_id,
        &branch_code,
        Some(&second),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(store::get(&db, &a.id).await.unwrap().is_none());
    assert!(!data.path().join("attachments").join(&a.id).exists());
    assert_eq!(
        store::member_photo(&db, &member_id).await.unwrap(),
        Some((branch_code.clone(), Some(b.id.clone())))
    );
    store::set_member_photo(
        &db,
        &access::platform(),
        data.path(),
        &who,
        &member_id,
        &branch_code,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        store::member_photo(&db, &member_id).await.unwrap(),
        Some((branch_code.clone(), None))
    );
    assert!(!data.path().join("attachments").join(&b.id).exists());
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'member.photo'")
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(audit::verify(&db).await.unwrap(), None);
}

/// A PNG `w` pixels wide and 1.4 times as high.
fn image_png(w: u32, out: &mut Vec<u8>) {
    let h = w * 14 / 10;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 200) as u8, (y % 200) as u8, 7])
    });
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(out), image::ImageFormat::Png)
        .unwrap();
}

/// A member moved into history keeps every stored column (sealed values as they were) and
/// recovery puts back exactly that row; the ledger counts the leaving as a decrease and the
/// recovery as a correction; a second recovery is refused.
async fn history_keeps_every_column_and_recovery_restores_it(t: TestDb) {
    use dangjian_server::approval::history::{self, Leaving, COPY_COLUMNS};
    use dangjian_server::approval::Reason;
    use sqlx::Row;
    let db = open(&t).await;
    let root = demo_province(&db, 200).await;
    let member: String = sqlx::query_scalar("SELECT id FROM members ORDER BY id LIMIT 1")
        .fetch_one(db.read())
        .await
        .unwrap();
    let row_of = |table: &'static str, key: &'static str, id: String| {
        let db = db.clone();
        async move {
            let r = sqlx::query(&format!(
                "SELECT {COPY_COLUMNS} FROM {table} WHERE {key} = $1"
            ))
            .bind(&id)
            .fetch_one(db.read())
            .await
            .unwrap();
            (0..r.len())
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .map(|v| v.unwrap_or_default())
                        .or_else(|_| r.try_get::<i64, _>(i).map(|n| n.to_string()))
                        .unwrap()
                })
                .collect::<Vec<String>>()
        }
    };
    let before = row_of("members", "id", member.clone()).await;
    let mut actor = auditor(&root, "037");
    actor.role = Role::Admin;
    actor.tier = Some(1);
    let mut tx = db.begin().await.unwrap();
    let history_id = history::move_out(
        &mut tx,
        &actor,
        Leaving {
            member_id: &member,
            reason: Reason::Other,
            left_on: "2026-10-01",
            remark: "测试",
            application_id: None,
        },
        &access::platform(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let kept = row_of("member_history", "history_id", history_id.clone()).await;
    assert_eq!(kept, before, "history keeps every column");
    let living: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE id = $1")
        .bind(&member)
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(living, 0);
    let row = history::get(db.read(), &history_id).await.unwrap().unwrap();
    let mut tx = db.begin().await.unwrap();
    history::recover(&mut tx, &row, "误操作", &access::platform())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut after = row_of("members", "id", member.clone()).await;
    // updated_at moves (column 28 of COPY_COLUMNS); everything else is as it was.
    let updated = COPY_COLUMNS
        .split(", ")
        .position(|c| c.trim() == "updated_at")
        .unwrap();
    after[updated] = before[updated].clone();
    assert_eq!(after, before, "recovery restores every column");
    let ledger: Vec<(String, String)> = sqlx::query_as(
        "SELECT change, counts_as FROM member_changes WHERE member_id = $1 ORDER BY at, change",
    )
    .bind(&member)
    .fetch_all(db.read())
    .await
    .unwrap();
    assert_eq!(
        ledger,
        [
            ("left".to_string(), "decrease".to_string()),
            ("recovered".to_string(), "correction".to_string())
        ]
    );
    let mut tx = db.begin().await.unwrap();
    let again = history::recover(&mut tx, &row, "再次", &access::platform()).await;
    assert_eq!(again.unwrap_err().status.as_u16(), 409);
}

/// The demo province below a new root organisation (037), with `members` members and no
/// real-name registry. Returns the root's id.
async fn demo_province(db: &Db, members: usize) -> String {
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &access::platform(),
        &root,
        "037",
        None,
        &new_org("中共泉山省委员会", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    dangjian_server::demo::generate(db, &root, "037", members, false)
        .await
        .unwrap();
    root
}

/// `member::bulk::insert` (the demo and the summary-sheet import) passes its rows as arrays on
/// PostgreSQL and as bound values on SQLite: every column, NULLs, and text with the characters
/// an array literal escapes arrive as given, sealed and indexed as a single write seals them.
async fn bulk_insert_stores_what_a_single_write_stores(t: TestDb) {
    use dangjian_server::member::bulk::{insert, NewMember};
    use dangjian_server::member::rules::ValidMember;
    use dangjian_server::member::sort_keys::Derived;
    let db = open(&t).await;
    demo_province(&db, 0).await;
    let (branch_id, branch_code): (String, String) =
        sqlx::query_as("SELECT id, code FROM orgs WHERE category = '631' ORDER BY code LIMIT 1")
            .fetch_one(db.read())
            .await
            .unwrap();
    let date = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let awkward = r#"泉城路"1"号, {东}\楼 NULL"#;
    let member = |n: u32, registered: Option<&str>, floating_to: Option<&str>| NewMember {
        id: new_id(),
        branch_id: branch_id.clone(),
        branch_code: branch_code.clone(),
        member: ValidMember {
            name: if n == 0 { "张\"三" } else { "NULL" }.to_string(),
            id_number: dangjian_tests::synthetic_id_number(900 + n),
            sex: "male".to_string(),
            ethnicity: "01".to_string(),
            birth_date: date(1980, 2, 1),
            education: "21".to_string(),
            category: "full".to_string(),
            joined_on: date(2001, 7, 1),
            full_on: (n == 0).then(|| date(2002, 7, 1)),
            job: "01".to_string(),
            phone: format!("1390000{n:04}"),
            address: awkward.to_string(),
            status: "normal".to_string(),
            lost_contact: n == 1,
            lost_contact_on: (n == 1).then(|| date(2020, 1, 1)),
            floating: floating_to.is_some(),
            floating_to: floating_to.map(str::to_string),
            registered_phone: registered.map(str::to_string),
            origin: String::new(),
            title: "{}".to_string(),
            new_social_stratum: String::new(),
            completeness: 3,
        },
    };
    let rows = vec![
        member(0, Some("13800001111"), Some("上海,浦东")),
        member(1, None, None),
    ];
    let mut tx = db.begin().await.unwrap();
    insert(
        &mut tx,
        db.engine,
        "2026-11-26T00:00:00Z",
        &rows,
        &dangjian_server::access::platform(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let keys = crypto::keys();
    for row in &rows {
        use sqlx::Row;
        let stored = sqlx::query(
            "SELECT name, address, id_number, phone, registered_phone, full_on, lost_contact, \
             lost_contact_on, floating_to, id_number_idx, sort_pinyin, title, id_suffix_idx, id_region \
             FROM members WHERE id = $1",
        )
        .bind(&row.id)
        .fetch_one(db.read())
        .await
        .unwrap();
        let text = |i: usize| stored.get::<String, _>(i);
        let maybe = |i: usize| stored.get::<Option<String>, _>(i);
        let v = &row.member;
        let derived = Derived::of(&keys, &v.name, &v.id_number);
        assert_eq!(text(0), v.name);
        assert_eq!(text(1), awkward);
        assert_eq!(
            crypto::open(Column::MembersIdNumber, &text(2)).unwrap(),
            v.id_number
        );
        assert_eq!(
            crypto::open(Column::MembersPhone, &text(3)).unwrap(),
            v.phone
        );
        assert_eq!(
            maybe(4).map(|r| crypto::open(Column::MembersRegisteredPhone, &r).unwrap()),
            v.registered_phone
        );
        assert_eq!(maybe(5), v.full_on.map(|d| d.to_string()));
        assert_eq!(stored.get::<i64, _>(6), i64::from(v.lost_contact));
        assert_eq!(maybe(7), v.lost_contact_on.map(|d| d.to_string()));
        assert_eq!(maybe(8), v.floating_to);
        assert_eq!(
            maybe(9),
            keys.id_number_index(Column::MembersIdNumber, &v.id_number)
        );
        assert_eq!(text(10), derived.sort_pinyin);
        assert_eq!(text(11), "{}");
        assert_eq!(maybe(12), derived.id_suffix_idx);
        assert_eq!(text(13), derived.id_region);
    }
    // The statistics tally counted them (the load went through the triggers).
    let counted: i64 = sqlx::query_scalar(
        "SELECT COALESCE(CAST(SUM(n) AS BIGINT), 0) FROM member_tally WHERE dim = 'sex'",
    )
    .fetch_one(db.read())
    .await
    .unwrap();
    assert_eq!(counted, 2);
}

/// The demo's journal-less build on SQLite (`db::Scratch`): what is written in the copy
/// reaches the database only through `finish`; an abandoned build leaves the original as it
/// was, and no copy behind; the finished database reopens in WAL mode and is sound.
#[tokio::test]
async fn a_scratch_build_replaces_the_database_only_when_finished() {
    let t = TestDb::sqlite().await;
    let count = |db: Db| async move {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scratch_t")
            .fetch_one(db.read())
            .await
            .unwrap();
        db.close().await;
        n
    };
    let db = open(&t).await;
    raw(&db, "CREATE TABLE scratch_t (x INTEGER)").await;
    raw(&db, "INSERT INTO scratch_t VALUES (1)").await;

    let scratch = dangjian_server::db::Scratch::open(db, &t.url)
        .await
        .unwrap();
    raw(scratch.db(), "INSERT INTO scratch_t VALUES (2)").await;
    scratch.abandon().await;
    let path = t
        .url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap();
    assert!(!std::path::Path::new(&format!("{path}.building")).exists());
    assert_eq!(count(Db::connect(&t.url).await.unwrap()).await, 1);

    let db = Db::connect(&t.url).await.unwrap();
    let scratch = dangjian_server::db::Scratch::open(db, &t.url)
        .await
        .unwrap();
    let mut tx = scratch.db().begin().await.unwrap();
    for x in 2..=1000 {
        sqlx::query("INSERT INTO scratch_t VALUES ($1)")
            .bind(x as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    scratch.finish().await.unwrap();
    let db = Db::connect(&t.url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(db.write())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(count(db).await, 1000);
}

/// On SQLite one connection writes. A job whose end comes while a long transaction holds it
/// (the confirmation of a million-row import, which the end of its validation lets start,
/// takes minutes) still records its end once the writer is free, beyond the pool's 30-second
/// wait, rather than being left to read as interrupted.
#[tokio::test]
async fn a_job_end_waits_out_a_writer_held_past_the_pool_wait() {
    use dangjian_server::jobs::{self, JobState};
    let t = TestDb::sqlite().await;
    let db = open(&t).await;
    let root = demo_province(&db, 0).await;
    let (actor, _) = accounts_and_admin(&db, &root).await;
    let job = jobs::start(&db, &access::platform(), "import", &actor, "导入".into())
        .await
        .unwrap();
    let held = db.begin().await.unwrap();
    let ending = tokio::spawn({
        let job = job.clone();
        async move { job.finish(serde_json::json!({"import_id": "x"})).await }
    });
    tokio::time::sleep(std::time::Duration::from_secs(32)).await;
    assert!(
        !ending.is_finished(),
        "the end could not have been written yet"
    );
    held.rollback().await.unwrap();
    ending.await.unwrap();
    let view = jobs::get(&db, job.id()).await.unwrap().unwrap();
    assert_eq!(view.state, JobState::Finished);
}
