//! The real-name HTTP adapter against a real HTTPS service started here: a small rustls server
//! that demands a client certificate from the platform CA (the one `tls::ensure_server_certificate`
//! makes in a fresh data directory) and answers the adapter's JSON protocol from a table. The
//! adapter presents the certificate `realname client-cert` issues; its server certificate comes
//! from a CA made here, which the adapter is told to trust. Keys and certificates are made at
//! run time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dangjian_server::realname::http::{issue_client_cert, HttpOptions, HttpSource};
use dangjian_server::realname::{RealNameConfig, RealNameError, RealNameSource, Verdict};
use dangjian_tests::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the service behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers `{"match": …}` from its table.
    Answer,
    /// Answers 200 with a body that is not the protocol's.
    Garbage,
    /// Completes the handshake and never answers.
    Silent,
}

struct Pki {
    data: TempDir,
    /// The service's CA (PEM file) and its server certificate and key.
    service_ca: PathBuf,
    server_cert: rcgen::Certificate,
    server_key: rcgen::KeyPair,
    /// The adapter's client certificate and key from the platform CA.
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki() -> Pki {
    let data = TempDir::new("realname-http");
    dangjian_server::tls::ensure_server_certificate(data.path(), "https://localhost:8443")
        .expect("platform CA");
    let (client_cert, client_key) = issue_client_cert(
        data.path(),
        &data.path().join("realname"),
        "dangjian realname client",
        30,
    )
    .expect("client certificate from the platform CA");
    // The provincial service's own CA and server certificate.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "provincial test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let service_ca = data.path().join("service-ca.crt");
    std::fs::write(&service_ca, ca.pem()).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let server_cert = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
    Pki {
        data,
        service_ca,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn pem_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let text = std::fs::read(path).unwrap();
    rustls_pemfile::certs(&mut text.as_slice())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Starts the service on a random port; returns its URL.
async fn service(pki: &Pki, mode: Mode, people: HashMap<String, String>) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(&dangjian_server::tls::ca_cert_path(pki.data.path())) {
        roots.add(c).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(pki.server_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server_cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let people = Arc::new(people);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let people = people.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // a refused client certificate ends here
                };
                let Some(body) = read_request(&mut tls).await else {
                    return;
                };
                let answer = match mode {
                    Mode::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Mode::Garbage => "<html>维护中</html>".to_string(),
                    Mode::Answer => {
                        let q: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let matched = people
                            .get(q["id_number"].as_str().unwrap())
                            .is_some_and(|n| n == q["name"].as_str().unwrap());
                        serde_json::json!({"match": matched}).to_string()
                    }
                };
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tls.write_all(res.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://127.0.0.1:{port}/v1/realname/check")
}

/// Reads one HTTP/1.1 request; returns its body.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            assert!(head.starts_with("post "), "{head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf[end + 4..end + 4 + len].to_vec());
        }
    }
}

fn adapter(pki: &Pki, url: &str, timeout_ms: u64) -> HttpSource {
    HttpSource::new(&HttpOptions {
        url: url.to_string(),
        client_cert: pki.client_cert.clone(),
        client_key: pki.client_key.clone(),
        ca: pki.service_ca.clone(),
        timeout: Duration::from_millis(timeout_ms),
    })
    .expect("adapter")
}

fn person(seq: u16) -> String {
    dangjian_server::member::idcard::compose(
        "370102",
        chrono::NaiveDate::from_ymd_opt(1984, 7, 9).unwrap(),
        seq,
    )
}

#[tokio::test]
async fn the_adapter_asks_the_service_over_mutual_tls() {
    let pki = pki();
    let known = person(101);
    let people = HashMap::from([(known.clone(), "周实名".to_string())]);
    let url = service(&pki, Mode::Answer, people).await;
    let source = adapter(&pki, &url, 3000);
    assert_eq!(source.check(&known, "周实名").await, Ok(Verdict::Match));
    assert_eq!(
        source.check(&format!(" {known} "), "周实名 ").await,
        Ok(Verdict::Match)
    );
    assert_eq!(source.check(&known, "周冒名").await, Ok(Verdict::Mismatch));
    assert_eq!(
        source.check(&person(103), "周实名").await,
        Ok(Verdict::Mismatch)
    );
    assert_eq!(source.label(), "省级实名认证服务");

    // The same through the configuration the server reads (relative paths from the data
    // directory).
    let config: RealNameConfig = serde_json::from_value(serde_json::json!({
        "kind": "http", "url": url, "client_cert": "realname/realname-client.crt",
        "client_key": "realname/realname-client.key", "ca": pki.service_ca,
    }))
    .unwrap();
    let db = dangjian_server::db::Db::connect("sqlite::memory:")
        .await
        .unwrap();
    let built = dangjian_server::realname::build(&config, &db, pki.data.path())
        .unwrap()
        .expect("a source");
    assert_eq!(built.check(&known, "周实名").await, Ok(Verdict::Match));
    // The key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pki.client_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = pki();
    let url = service(&pki, Mode::Answer, HashMap::new()).await;
    // A client certificate from a CA the service does not trust.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = other_params.self_signed(&other_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "impostor");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &other_ca, &other_key).unwrap();
    let cert_path = pki.data.path().join("impostor.crt");
    let key_path = pki.data.path().join("impostor.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let source = HttpSource::new(&HttpOptions {
        url: url.clone(),
        client_cert: cert_path,
        client_key: key_path,
        ca: pki.service_ca.clone(),
        timeout: Duration::from_millis(3000),
    })
    .unwrap();
    let err = source.check(&person(101), "周实名").await.unwrap_err();
    assert!(matches!(err, RealNameError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().contains("实名认证服务暂时无法连接"),
        "{err}"
    );
    // A service whose certificate the adapter does not trust is refused as well: the
    // adapter told to trust the platform CA instead of the service's.
    let wrong_trust = HttpSource::new(&HttpOptions {
        url,
        client_cert: pki.client_cert.clone(),
        client_key: pki.client_key.clone(),
        ca: dangjian_server::tls::ca_cert_path(pki.data.path()),
        timeout: Duration::from_millis(3000),
    })
    .unwrap();
    let err = wrong_trust.check(&person(101), "周实名").await.unwrap_err();
    assert!(matches!(err, RealNameError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_service_down_slow_or_garbled_is_an_error_never_a_match() {
    let pki = pki();
    // Down: a port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = adapter(&pki, &format!("https://127.0.0.1:{closed}/check"), 2000);
    let err = down.check(&person(101), "周实名").await.unwrap_err();
    assert!(matches!(err, RealNameError::Unavailable(_)), "{err:?}");
    let api: dangjian_server::error::ApiError = err.clone().into();
    assert_eq!(api.status.as_u16(), 503);
    assert_eq!(api.code, "realname_unavailable");
    assert!(api.message.contains("实名未核验"), "{}", api.message);
    // Slow: no answer within the timeout.
    let url = service(&pki, Mode::Silent, HashMap::new()).await;
    let slow = adapter(&pki, &url, 500);
    let started = std::time::Instant::now();
    let err = slow.check(&person(101), "周实名").await.unwrap_err();
    assert_eq!(err, RealNameError::Timeout(500));
    assert!(err.to_string().contains("500 毫秒内没有应答"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Garbled: 200 with something that is not `{"match": bool}`.
    let url = service(&pki, Mode::Garbage, HashMap::new()).await;
    let garbled = adapter(&pki, &url, 3000);
    let err = garbled.check(&person(101), "周实名").await.unwrap_err();
    assert!(matches!(err, RealNameError::BadAnswer(_)), "{err:?}");
    assert!(err.to_string().contains("无法识别"), "{err}");
}

#[test]
fn the_configuration_reads_each_kind() {
    let none: RealNameConfig = serde_json::from_str(r#"{"kind": "none"}"#).unwrap();
    assert!(none.is_none());
    let local: RealNameConfig = serde_json::from_str(r#"{"kind": "local"}"#).unwrap();
    assert_eq!(local, RealNameConfig::Local);
    let http: RealNameConfig = serde_json::from_str(
        r#"{"kind": "http", "url": "https://x", "client_cert": "a", "client_key": "b", "ca": "c"}"#,
    )
    .unwrap();
    assert!(
        matches!(
            http,
            RealNameConfig::Http {
                timeout_ms: 5000,
                ..
            }
        ),
        "{http:?}"
    );
    assert!(serde_json::from_str::<RealNameConfig>(r#"{"kind": "national"}"#).is_err());
}
