//! The agent suite: `dangjian-agent enrol` against a `dangjian-server demo`, with the virtual
//! card in real pcscd + vpcd (reader 0; see `dangjian_tests::rig`). The tunnel has its own
//! suite (`tunnel.rs`).

use dangjian_tests::rig::{self, VirtualCard, PORT_0, READER_0};
use dangjian_tests::Server;
use serde_json::{json, Value};

/// Reader 0: a security officer's enrolment code, `dangjian-agent enrol` on a blank card, and
/// the card then holds the grant holder's certificate.
#[tokio::test(flavor = "multi_thread")]
async fn enrol_writes_the_issued_certificate_to_a_blank_card() {
    rig::ensure_pcscd();
    let server = Server::demo(50, None).await;
    let tier3 = server.account("admin", Some(3));
    let officer = server.sign_in(&server.account("security", None)).await;
    let grants = officer.get("/api/v1/grants?per_page=200").await;
    assert_eq!(grants.status, 200, "{:?}", grants.body);
    let grant = grants.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["org_id"] == tier3.org_id.as_str() && g["tier"] == 3)
        .cloned()
        .expect("the tier-3 grant");
    let r = officer
        .post(
            &format!(
                "/api/v1/grants/{}/enrolment-code",
                grant["grant_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let outbox = std::fs::read_to_string(server.data.path().join("outbox.jsonl")).unwrap();
    let code = outbox
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["kind"] == "enrolment_code")
        .and_then(|m| m["code"].as_str().map(str::to_string))
        .expect("an enrolment code in the outbox");

    let card = VirtualCard::start(server.data.path(), PORT_0, None);
    let run = |args: &[&str], stdin: &str| {
        let out = rig::agent(args, Some(stdin));
        (out.status.success(), rig::text(&out))
    };
    let ca = server.ca_path();
    let (ok, said) = run(
        &[
            "enrol",
            "--server",
            &server.base,
            "--ca",
            ca.to_str().unwrap(),
            "--code",
            &code,
            "--reader",
            READER_0,
        ],
        "123456\n",
    );
    assert!(ok, "{said}");
    assert!(said.contains("证书已写入"), "{said}");
    assert_eq!(
        card.state().signature_counter,
        1,
        "the CSR was signed by the card"
    );

    let (ok, status) = run(&["status", "--reader", READER_0], "");
    assert!(ok, "{status}");
    for expected in [
        format!("持有人：{}", grant["name"].as_str().unwrap()),
        format!("身份证号：{}", tier3.id_number),
        format!("组织代码：{}", grant["org_code"].as_str().unwrap()),
    ] {
        assert!(status.contains(&expected), "missing {expected}:\n{status}");
    }
    drop(card);
}
