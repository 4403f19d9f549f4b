//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`),
//! with screenshots saved for people to look at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

/// A chromedriver process and a WebDriver session on a headless Chromium.
pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_url: String,
    _profile: crate::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Browser {
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (scripts/test.sh installs chromium-driver)");
        let profile = crate::TempDir::new("dangjian-chromium");
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), serde_json::json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=zh-CN",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..50 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        driver_url: url,
                        _profile: profile,
                    }
                }
                Err(e) => {
                    last_error = e.to_string();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        panic!("could not start a WebDriver session: {last_error}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Fills a form field by its id.
    pub async fn fill(&self, id: &str, value: &str) {
        let e = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|_| panic!("no field #{id}"));
        if e.attr("type").await.ok().flatten().as_deref() == Some("date") {
            // Date inputs take keystrokes in the browser's locale order: set the value instead.
            self.client
                .execute(
                    "document.getElementById(arguments[0]).value = arguments[1];",
                    vec![serde_json::json!(id), serde_json::json!(value)],
                )
                .await
                .expect("set date");
            return;
        }
        e.clear().await.expect("clear");
        e.send_keys(value).await.expect("type");
    }

    /// Chooses an option of a select by its value.
    pub async fn select(&self, id: &str, value: &str) {
        let e = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|_| panic!("no select #{id}"));
        e.select_by_value(value).await.expect("select");
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("nothing matches {css}"))
            .click()
            .await
            .expect("click");
    }

    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css).await;
        self.client
            .find(Locator::Css(css))
            .await
            .expect("element")
            .text()
            .await
            .expect("text")
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Waits up to ten seconds for an element.
    pub async fn wait_for(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("{css} did not appear"));
    }

    pub async fn current_path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        let mut s = url.path().to_string();
        if let Some(q) = url.query() {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    /// Saves a PNG screenshot under `docs/screenshots/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// The current page printed to PDF by Chromium (WebDriver's Print Page), as text
    /// (poppler's `pdftotext`, installed by scripts/test.sh), pages joined by form feeds.
    pub async fn print_text(&self) -> String {
        let pdf = self.print_pdf().await;
        assert!(pdf.starts_with(b"%PDF"), "Print Page did not return a PDF");
        let dir = crate::TempDir::new("dangjian-print");
        let path = dir.path().join("page.pdf");
        std::fs::write(&path, &pdf).expect("write PDF");
        let out = Command::new("pdftotext")
            .args(["-enc", "UTF-8", "-layout"])
            .arg(&path)
            .arg("-")
            .output()
            .expect("run pdftotext (scripts/test.sh installs poppler-utils)");
        assert!(out.status.success(), "pdftotext failed");
        String::from_utf8(out.stdout).expect("UTF-8 text")
    }

    /// The current page printed to PDF by Chromium (WebDriver's Print Page). A print the page
    /// started itself (`window.print()`) is waited out first.
    pub async fn print_pdf(&self) -> Vec<u8> {
        let mut tries = 0;
        loop {
            match self
                .client
                .print(fantoccini::wd::PrintConfiguration::default())
                .await
            {
                Ok(pdf) => return pdf,
                Err(e) if tries < 50 && e.to_string().contains("already being printed") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("print to PDF: {e}"),
            }
        }
    }

    /// Renders the page with its print styles (`@media print`) on screen, or back, through
    /// chromedriver's DevTools bridge, so that a screenshot shows what paper gets.
    pub async fn emulate_print(&self, on: bool) {
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let res = reqwest::Client::new()
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.driver_url
            ))
            .json(&serde_json::json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": { "media": if on { "print" } else { "" } }
            }))
            .send()
            .await
            .expect("emulate print media");
        assert!(res.status().is_success(), "{}", res.status());
    }

    /// The value property of a field, by id.
    pub async fn value(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|_| panic!("no field #{id}"))
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
