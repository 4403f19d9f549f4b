//! Store suite: the same tests against SQLite and PostgreSQL (`<test>::sqlite`,
//! `<test>::postgres`), through the server's own storage functions.

use dangjian_server::audit::{self, Event, Who};
use dangjian_server::db::{new_id, Db};
use dangjian_server::error::ApiError;
use dangjian_server::org::store::{self as orgs, NewOrg};
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
    demo_province_is_consistent,
);

async fn open(t: &TestDb) -> Db {
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
    let code = orgs::next_child_code(&mut tx, parent_id, parent_code)
        .await
        .unwrap();
    let id = new_id();
    orgs::insert(
        &mut tx,
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

async fn add_member(db: &Db, branch_id: &str, code: &str, id_number: &str) {
    let mut tx = db.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO members (id, name, id_number, sex, ethnicity, birth_date, education, category, branch_id, \
         org_code, joined_on, job, created_at, updated_at) VALUES ($1, '测试', $2, 'male', '01', '1980-01-01', \
         '21', 'full', $3, $4, '2000-01-01', 'worker', 'now', 'now')",
    )
    .bind(new_id())
    .bind(id_number)
    .bind(branch_id)
    .bind(code)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn subtree_is_one_range_over_unified_codes(t: TestDb) {
    let db = open(&t).await;
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(&mut tx, &root, "037", None, &new_org("根", "1"))
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
    orgs::insert(&mut tx, &root, "037", None, &new_org("根", "1"))
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
    let mut tx = db.begin().await.unwrap();
    let dup = sqlx::query(
        "INSERT INTO members (id, name, id_number, sex, ethnicity, birth_date, education, category, branch_id, \
         org_code, joined_on, job, created_at, updated_at) VALUES ($1, '重复', '370102198001011231', 'male', '01', \
         '1980-01-01', '21', 'full', $2, $3, '2000-01-01', 'worker', 'now', 'now')",
    )
    .bind(new_id())
    .bind(&branch)
    .bind(&code)
    .execute(&mut *tx)
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
    let mut tx = db.begin().await.unwrap();
    sqlx::query("UPDATE audit_log SET target = 'forged' WHERE seq = 3")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(audit::verify(&db).await.unwrap(), Some(3));
}

async fn demo_province_is_consistent(t: TestDb) {
    let db = open(&t).await;
    let root = new_id();
    let mut tx = db.begin().await.unwrap();
    orgs::insert(
        &mut tx,
        &root,
        "037",
        None,
        &new_org("中共泉山省委员会", "1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let accounts = dangjian_server::demo::generate(&db, &root, "037", 2000)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 5);
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
