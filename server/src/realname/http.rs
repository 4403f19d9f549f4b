//! The HTTP adapter for a provincial real-name service, over mutual TLS.
//!
//! Protocol (`docs/api.md`, "Real-name adapter"): `POST <url>` with
//! `{"id_number": "…", "name": "…"}` (`application/json`); the service answers 200 with
//! `{"match": true}` or `{"match": false}`. Anything else — another status, another body, no
//! answer within the timeout, a refused connection or handshake — is a [`RealNameError`], never a
//! match. This server presents a client certificate issued by the platform CA
//! (`dangjian-server realname client-cert`) and trusts only the CA named in the configuration
//! for the service's certificate.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{normalise, CheckFuture, RealNameError, RealNameSource, Verdict};

/// Where and how to reach the service.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub url: String,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub ca: PathBuf,
    pub timeout: Duration,
}

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Question {
    pub id_number: String,
    pub name: String,
}

/// The answer body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    #[serde(rename = "match")]
    pub matched: bool,
}

/// The adapter.
pub struct HttpSource {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl HttpSource {
    /// Reads the certificate, key and CA files and builds the client.
    pub fn new(options: &HttpOptions) -> anyhow::Result<HttpSource> {
        let url = reqwest::Url::parse(&options.url)
            .with_context(|| format!("realname.url {:?} is not a URL", options.url))?;
        anyhow::ensure!(
            url.scheme() == "https",
            "realname.url must be https:// (mutual TLS)"
        );
        let mut identity = std::fs::read(&options.client_cert).with_context(|| {
            format!(
                "read realname.client_cert {}",
                options.client_cert.display()
            )
        })?;
        identity.push(b'\n');
        identity.extend(std::fs::read(&options.client_key).with_context(|| {
            format!("read realname.client_key {}", options.client_key.display())
        })?);
        let identity = reqwest::Identity::from_pem(&identity)
            .context("realname.client_cert / client_key: not a PEM certificate and key")?;
        let ca_pem = std::fs::read(&options.ca)
            .with_context(|| format!("read realname.ca {}", options.ca.display()))?;
        let cas = reqwest::Certificate::from_pem_bundle(&ca_pem)
            .context("realname.ca: not PEM certificates")?;
        anyhow::ensure!(!cas.is_empty(), "realname.ca holds no certificate");
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .identity(identity)
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none());
        for ca in cas {
            builder = builder.add_root_certificate(ca);
        }
        Ok(HttpSource {
            client: builder.build().context("build the real-name HTTP client")?,
            url: url.to_string(),
            timeout: options.timeout,
        })
    }

    async fn ask(&self, id_number: &str, name: &str) -> Result<Verdict, RealNameError> {
        let (id_number, name) = normalise(id_number, name);
        let sent = self
            .client
            .post(&self.url)
            .json(&Question { id_number, name })
            .send()
            .await;
        let res = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.failure(&e)),
        };
        let status = res.status();
        if !status.is_success() {
            return Err(RealNameError::BadAnswer(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        let body = res.bytes().await.map_err(|e| self.failure(&e))?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| RealNameError::BadAnswer("应答不是 {\"match\": true|false}".into()))?;
        Ok(if answer.matched {
            Verdict::Match
        } else {
            Verdict::Mismatch
        })
    }

    fn failure(&self, e: &reqwest::Error) -> RealNameError {
        if e.is_timeout() {
            return RealNameError::Timeout(self.timeout.as_millis() as u64);
        }
        // The innermost cause says most (connection refused, certificate unknown, …).
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        tracing::warn!("real-name service: {e}: {cause}");
        let what = if e.is_connect() {
            "无法建立连接"
        } else {
            "通信中断"
        };
        RealNameError::Unavailable(format!("{what}：{cause}"))
    }
}

impl RealNameSource for HttpSource {
    fn check<'a>(&'a self, id_number: &'a str, name: &'a str) -> CheckFuture<'a> {
        Box::pin(self.ask(id_number, name))
    }

    fn label(&self) -> &'static str {
        "省级实名认证服务"
    }
}

/// Issues the client certificate this server presents to the provincial service, from the
/// platform CA of `data_dir` (`<data>/ca`); writes `realname-client.crt` and
/// `realname-client.key` (0600) into `out`. Returns the two paths.
pub fn issue_client_cert(
    data_dir: &std::path::Path,
    out: &std::path::Path,
    name: &str,
    days: u32,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let ca = dangjian_certs::Ca::open(
        &crate::tls::ca_dir(data_dir),
        crate::tls::ca_passphrase().as_deref(),
    )
    .context("open the platform CA")?;
    let issued = ca.issue_service_client(name, days)?;
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let crt = out.join("realname-client.crt");
    let key = out.join("realname-client.key");
    std::fs::write(&crt, &issued.cert_pem).with_context(|| format!("write {}", crt.display()))?;
    crate::config::write_private(&key, issued.key_pem.unwrap_or_default().as_bytes())?;
    Ok((crt, key))
}
