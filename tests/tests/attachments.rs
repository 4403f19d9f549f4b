//! Attachments and the member photo through a real demo server: what is refused is never stored
//! (no row, no file), what is accepted is served only in scope with safe headers, photos are
//! scaled to the 1-inch box, and the pages carry the photo and its upload form. Test files are
//! made at run time with the `image` crate.

use std::io::Cursor;
use std::path::Path;

use dangjian_tests::{Api, Server};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn gif(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, _| image::Rgba([(x * 20) as u8, 0, 200, 255]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Gif)
        .unwrap();
    out
}

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

/// A multipart upload with the bearer token (and optionally without it, by cookie).
async fn upload(api: &Api, path: &str, method: reqwest::Method, form: Form) -> (u16, Value) {
    let res = api
        .client
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn file_form(name: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()))
}

async fn db_count(server: &Server, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

async fn db_text(server: &Server, sql: &str, bind: &str) -> String {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn stored_files(data: &Path) -> Vec<String> {
    match std::fs::read_dir(data.join("attachments")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn refused_uploads_store_nothing_and_accepted_ones_are_served_in_scope_only() {
    let server = Server::demo(60, None).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let post = reqwest::Method::POST;
    let doc_form = |name: &str, bytes: Vec<u8>, kind: &str| {
        file_form(name, bytes)
            .text("kind", kind.to_string())
            .text("org_id", tier3.org_id.clone())
    };
    // A 6 MB file: 413 with a Chinese message.
    let mut big = b"%PDF-1.4\n".to_vec();
    big.resize(6 * 1024 * 1024, b' ');
    let (status, body) = upload(
        &api,
        "/api/v1/attachments",
        post.clone(),
        doc_form("大文件.pdf", big, "document"),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("5 MB"),
        "{body}"
    );
    // An executable renamed .pdf.
    let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00PE\x00\x00".to_vec();
    let (status, body) = upload(
        &api,
        "/api/v1/attachments",
        post.clone(),
        doc_form("申请表.pdf", exe, "document"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("file")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("与文件名无关"),
        "{body}"
    );
    // An SVG with a script named .png, as a photo and as a document.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(document.cookie)</script></svg>"#.to_vec();
    for kind in ["photo", "document"] {
        let (status, body) = upload(
            &api,
            "/api/v1/attachments",
            post.clone(),
            doc_form("照片.png", svg.clone(), kind),
        )
        .await;
        assert_eq!(status, 400, "{kind}: {body}");
    }
    // A path-traversal file name, even on a good image.
    let (status, body) = upload(
        &api,
        "/api/v1/attachments",
        post.clone(),
        doc_form("../../etc/passwd", png(20, 20), "document"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("文件名不合法"),
        "{body}"
    );
    // Nothing stored: no row, no file.
    assert_eq!(
        db_count(&server, "SELECT COUNT(*) FROM attachments").await,
        0
    );
    assert!(stored_files(server.data.path()).is_empty());
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'attachment.upload'"
        )
        .await,
        0
    );

    // A good PDF and a good PNG.
    let (status, pdf) = upload(
        &api,
        "/api/v1/attachments",
        post.clone(),
        doc_form("实名认证采集表.pdf", PDF.to_vec(), "document"),
    )
    .await;
    assert_eq!(status, 201, "{pdf}");
    assert_eq!(pdf["content_type"], "application/pdf");
    assert_eq!(pdf["file_name"], "实名认证采集表.pdf");
    assert_eq!(pdf["size"], PDF.len());
    let (status, image) = upload(
        &api,
        "/api/v1/attachments",
        post.clone(),
        doc_form("scan.png", png(300, 200), "document"),
    )
    .await;
    assert_eq!(status, 201, "{image}");
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(300), Some(200)),
        "documents are not scaled"
    );
    let pdf_id = pdf["id"].as_str().unwrap().to_string();
    // Stored under the generated id, 0600, outside any served folder; audited.
    let files = stored_files(server.data.path());
    assert_eq!(files.len(), 2);
    assert!(files.contains(&pdf_id), "{files:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.data.path().join("attachments").join(&pdf_id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'attachment.upload'"
        )
        .await,
        2
    );
    // Served back with the safe headers: the PDF downloads, the image shows inline.
    let res = api
        .client
        .get(server.url(&format!("/api/v1/attachments/{pdf_id}")))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "application/pdf");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;"),
        "{h:?}"
    );
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename*=UTF-8''"),
        "{h:?}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "sandbox");
    assert_eq!(res.bytes().await.unwrap().as_ref(), PDF);
    let res = api
        .client
        .get(server.url(&format!(
            "/api/v1/attachments/{}",
            image["id"].as_str().unwrap()
        )))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline;"));

    // Out of scope: a document of the tier-1 admin's own organisation is not found for the
    // tier-3 admin; security officers may not read business files at all.
    let tier1 = server.account("admin", Some(1));
    let t1 = server.sign_in(&tier1).await;
    let (status, above) = upload(
        &t1,
        "/api/v1/attachments",
        post.clone(),
        file_form("上级文件.pdf", PDF.to_vec()).text("org_id", tier1.org_id.clone()),
    )
    .await;
    assert_eq!(status, 201, "{above}");
    let above_path = format!("/api/v1/attachments/{}", above["id"].as_str().unwrap());
    assert_eq!(api.get(&above_path).await.status, 404);
    assert_eq!(t1.get(&above_path).await.status, 200);
    let officer = server.sign_in(&server.account("security", None)).await;
    assert_eq!(officer.get(&above_path).await.status, 403);
    // Uploading into an organisation out of scope is refused too.
    let (status, _) = upload(
        &api,
        "/api/v1/attachments",
        post.clone(),
        file_form("x.pdf", PDF.to_vec()).text("org_id", tier1.org_id.clone()),
    )
    .await;
    assert_eq!(status, 403);
    // No scope given, or a body that is not multipart.
    let (status, body) = upload(
        &api,
        "/api/v1/attachments",
        post.clone(),
        file_form("x.pdf", PDF.to_vec()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("org_id")),
        "{body}"
    );
    let r = api.post("/api/v1/attachments", serde_json::json!({})).await;
    assert_eq!(r.status, 415, "{:?}", r.body);

    // By cookie (the session the agent's tunnel carries), an upload needs the CSRF token.
    let csrf = api.get("/api/v1/session").await.body["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let by_cookie = |with_token: bool| {
        let mut req = api
            .client
            .post(server.url("/api/v1/attachments"))
            .multipart(doc_form("cookie.pdf", PDF.to_vec(), "document"));
        if with_token {
            req = req.header("X-CSRF-Token", csrf.clone());
        }
        req.send()
    };
    assert_eq!(by_cookie(false).await.unwrap().status(), 403);
    assert_eq!(by_cookie(true).await.unwrap().status(), 201);
}

#[tokio::test]
async fn the_member_photo_is_scaled_shown_and_removed() {
    let server = Server::demo(60, None).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let members = api
        .get(&format!("/api/v1/orgs/{}/members", tier3.org_id))
        .await;
    let member = members.body["items"][0]["id"].as_str().unwrap().to_string();
    let photo_path = format!("/api/v1/members/{member}/photo");
    let put = reqwest::Method::PUT;
    // No photo yet: 404, and the record shows the placeholder.
    assert_eq!(api.get(&photo_path).await.status, 404);
    let page = |path: String| {
        let api = api.clone();
        async move {
            api.client
                .get(format!("{}{path}", api.base))
                .bearer_auth(&api.token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let record = page(format!("/members/{member}")).await;
    assert!(
        record.contains("member-photo") && record.contains(">照片<"),
        "{record}"
    );
    // A large photo is scaled to fit 120×168, keeping its aspect.
    let (status, body) = upload(
        &api,
        &photo_path,
        put.clone(),
        file_form("证件照.png", png(600, 800)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(120), Some(160)),
        "{body}"
    );
    let res = api
        .client
        .get(server.url(&photo_path))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.headers()["content-security-policy"], "sandbox");
    let served = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((served.width(), served.height()), (120, 160));
    let first_id = db_text(
        &server,
        "SELECT photo_id FROM members WHERE id = $1",
        &member,
    )
    .await;
    // The record and the form show it; the form has the upload control.
    let record = page(format!("/members/{member}")).await;
    assert!(
        record.contains(&format!("src=\"{photo_path}\"")),
        "{record}"
    );
    let form = page(format!("/members/{member}/edit")).await;
    assert!(form.contains("enctype=\"multipart/form-data\""), "{form}");
    assert!(
        form.contains(&format!("action=\"/members/{member}/photo\"")),
        "{form}"
    );
    // Over 2 MB: refused, and the photo stays.
    let mut big = png(10, 10);
    big.resize(2 * 1024 * 1024 + 10, 0);
    let (status, body) = upload(&api, &photo_path, put.clone(), file_form("大.png", big)).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("2 MB"),
        "{body}"
    );
    // A small GIF through the page form (multipart with the csrf field): not scaled; the old
    // photo's row and file are gone.
    let csrf = api.get("/api/v1/session").await.body["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let page_post = |form: Form| {
        api.client
            .post(server.url(&format!("/members/{member}/photo")))
            .bearer_auth(&api.token)
            .multipart(form)
            .send()
    };
    let forged = page_post(file_form("a.gif", gif(40, 50)).text("csrf", "forged"))
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let ok = page_post(file_form("a.gif", gif(40, 50)).text("csrf", csrf.clone()))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "redirect followed to the record");
    assert!(
        ok.url()
            .as_str()
            .ends_with(&format!("/members/{member}?notice=photo_saved")),
        "{}",
        ok.url()
    );
    let res = api
        .client
        .get(server.url(&photo_path))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    // Photos are re-encoded from their pixels (no metadata kept): a GIF is stored as PNG.
    assert_eq!(res.headers()["content-type"], "image/png");
    let served = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((served.width(), served.height()), (40, 50));
    assert!(!stored_files(server.data.path()).contains(&first_id));
    assert_eq!(
        db_count(&server, "SELECT COUNT(*) FROM attachments").await,
        1
    );
    // Removed: 204, then 404; audited.
    let r = api.delete(&photo_path).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(api.get(&photo_path).await.status, 404);
    assert_eq!(
        db_count(&server, "SELECT COUNT(*) FROM attachments").await,
        0
    );
    assert!(stored_files(server.data.path()).is_empty());
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'member.photo'"
        )
        .await,
        3
    );
    // A member out of scope: not found.
    let outside = db_text(
        &server,
        "SELECT id FROM members WHERE org_code NOT LIKE $1 LIMIT 1",
        &format!(
            "{}%",
            db_text(
                &server,
                "SELECT code FROM orgs WHERE id = $1",
                &server.account("admin", Some(1)).org_id
            )
            .await
        ),
    )
    .await;
    let (status, _) = upload(
        &api,
        &format!("/api/v1/members/{outside}/photo"),
        put,
        file_form("p.png", png(10, 10)),
    )
    .await;
    assert_eq!(status, 404);
}
