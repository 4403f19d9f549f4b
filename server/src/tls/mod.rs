//! The listener: HTTPS with rustls (ring provider) using the server certificate that the
//! platform CA issued at `init`, or plain HTTP on loopback with `--insecure-http`. Each
//! connection's facts (client address, TLS, the verified client certificate) reach the
//! handlers as a [`ConnInfo`] extension.
//!
//! Client certificates (USB keys, SPEC §8 and §11) are requested but optional: tier-3 browsers
//! have none. A presented certificate is checked against a trust store that holds only the
//! platform CA (never the system roots): chain, validity, keyUsage digitalSignature, EKU
//! clientAuth and the CRL. The CRL is reloaded without restart ([`Pki::reload_if_changed`],
//! every few seconds): a new `ServerConfig` with a new verifier is built and swapped in, and
//! the accept loop takes the current config for every new connection. A CRL past its
//! nextUpdate does not stop handshakes (the pages must still explain themselves); it stops card
//! sign-in and card-bound requests (`card`), fails closed there, and `GET /api/v1/health`
//! reports it.

pub mod pki;
pub mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tower::Service;

use crate::state::ConnInfo;

use anyhow::Context;

use crate::config::write_private;
pub use pki::{describe, install, normalize_serial, pki, CrlStatus, Pki};

pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// The platform CA (`dangjian-certs` layout: `ca.crt`, `ca.key`, `register.jsonl`,
/// `crl.pem`, `config.json`).
pub fn ca_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ca")
}

/// The platform CA certificate that clients trust (PEM; a copy of `ca/ca.crt`).
pub fn ca_cert_path(data_dir: &Path) -> PathBuf {
    tls_dir(data_dir).join("ca.crt")
}

/// The CRL the server loads, watches and serves at [`CRL_URL_PATH`]: the one `dangjian-certs
/// crl` (and the server itself on revocation) writes into the CA directory.
pub fn crl_path(data_dir: &Path) -> PathBuf {
    dangjian_certs::CaDir::new(ca_dir(data_dir)).crl_path()
}

/// Validity of the server certificate, in days; `serve` renews it 30 days before the end.
pub const SERVER_CERT_DAYS: u32 = 825;

/// The address clients reach the server at when the operator named none (`init
/// --public-url`).
pub const DEFAULT_PUBLIC_URL: &str = "https://localhost:8443";

/// Checks a public URL (`https://host[:port]`, no path) and returns it without a trailing
/// slash.
pub fn check_public_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let ok = url
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', '?', '#', '@']))
        && url.is_ascii()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        anyhow::bail!(
            "--public-url {url:?} is not an address such as https://dangjian.example.cn:8443"
        );
    }
    Ok(url.to_string())
}

/// The public URL of a listening address: `https://<ip>:<port>`, `localhost` for an
/// unspecified address (0.0.0.0, ::).
pub fn public_url_of(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("https://{host}:{}", addr.port())
}

/// The CRL distribution point of a server reached at `public_url`: where it serves the CRL
/// ([`CRL_URL_PATH`]).
pub fn crl_url_of(public_url: &str) -> String {
    format!("{}{CRL_URL_PATH}", public_url.trim_end_matches('/'))
}

/// The host name (or address) of a public URL, as the server certificate names it.
fn public_host(public_url: &str) -> Option<String> {
    let rest = public_url.strip_prefix("https://")?;
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        rest.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// The passphrase of the CA key, when the operator encrypted it (`dangjian-certs init-ca
/// --passphrase`); the server needs the key for enrolment and revocation.
pub fn ca_passphrase() -> Option<String> {
    std::env::var("DANGJIAN_CA_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
}

/// Makes sure the data directory has the platform CA (created in `<data>/ca` with a first CRL
/// when missing, its CRL distribution point on `public_url`), `tls/ca.crt` (a copy of the CA
/// certificate, which clients trust) and a server certificate issued by the CA for
/// `localhost`, 127.0.0.1, ::1 and the host of `public_url`, renewed when it ends within 30
/// days or was issued by another CA.
pub fn ensure_server_certificate(data_dir: &Path, public_url: &str) -> anyhow::Result<()> {
    let dir = tls_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let ca_path = ca_dir(data_dir);
    let ca_dir_files = dangjian_certs::CaDir::new(&ca_path);
    let passphrase = ca_passphrase();
    let ca = if ca_dir_files.cert_path().exists() {
        None
    } else {
        Some(
            dangjian_certs::Ca::init(
                &ca_path,
                "dangjian platform CA",
                &crl_url_of(public_url),
                None,
            )
            .context("create the platform CA")?,
        )
    };
    let ca_pem = std::fs::read_to_string(ca_dir_files.cert_path())
        .with_context(|| format!("read {}", ca_dir_files.cert_path().display()))?;
    if std::fs::read_to_string(ca_cert_path(data_dir))
        .ok()
        .as_deref()
        != Some(ca_pem.as_str())
    {
        std::fs::write(ca_cert_path(data_dir), &ca_pem)?;
    }
    let ca_der = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .next()
        .context("no certificate in ca/ca.crt")??;
    let ca_subject = describe(ca_der.as_ref())?.subject;
    let current = std::fs::read(dir.join("server.crt"))
        .ok()
        .and_then(|pem| rustls_pemfile::certs(&mut pem.as_slice()).next()?.ok())
        .and_then(|der| describe(der.as_ref()).ok());
    let fresh = current.is_some_and(|c| {
        c.issuer == ca_subject && c.not_after > chrono::Utc::now() + chrono::Duration::days(30)
    });
    if fresh && dir.join("server.key").exists() {
        return Ok(());
    }
    let ca = match ca {
        Some(ca) => ca,
        None => dangjian_certs::Ca::open(&ca_path, passphrase.as_deref())
            .context("open the platform CA to issue the server certificate")?,
    };
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(host) = public_host(public_url) {
        if !names.contains(&host) {
            names.push(host);
        }
    }
    let issued = ca.issue_server(&names, SERVER_CERT_DAYS)?;
    let key = issued
        .key_pem
        .context("the CA returned no key for the server certificate")?;
    write_private(&dir.join("server.key"), key.as_bytes())?;
    std::fs::write(dir.join("server.crt"), issued.cert_pem + &ca_pem)?;
    Ok(())
}

/// Where the CRL is served (its distribution point, on this server).
pub const CRL_URL_PATH: &str = "/crl/platform.crl";

/// The verified client certificate of a connection.
#[derive(Clone, Debug)]
pub struct PeerCert {
    /// The certificate (DER).
    pub der: Arc<Vec<u8>>,
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    /// The issuer's distinguished name as text.
    pub issuer: String,
    /// The subject as text (shown in audit records only; never used to find an account).
    pub subject: String,
}

impl PeerCert {
    /// Reads the facts of a certificate that the verifier accepted.
    pub fn from_der(der: &[u8]) -> Option<PeerCert> {
        let info = pki::describe(der).ok()?;
        Some(PeerCert {
            der: Arc::new(der.to_vec()),
            serial_hex: info.serial_hex,
            fingerprint: info.sha256_fingerprint,
            issuer: info.issuer,
            subject: info.subject,
        })
    }
}

/// A handshake refused because of the client's certificate (audited by `card`).
#[derive(Clone, Debug)]
pub struct RefusedHandshake {
    pub client_addr: SocketAddr,
    /// Serial, subject and issuer of the refused certificate, when it could be read.
    pub serial_hex: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub reason: String,
}

/// Called for every handshake refused because of the client certificate.
pub type RefusalHook = Arc<dyn Fn(RefusedHandshake) + Send + Sync>;

/// Serves `app` on `listener` until the process ends. With `pki` absent, plain HTTP. A
/// connection from a `trusted` balancer may start with a PROXY protocol v2 header, whose source
/// becomes the client address; from anyone else such a header is refused ([`proxy`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    pki: Option<Arc<Pki>>,
    on_refusal: Option<RefusalHook>,
    trusted: proxy::Trusted,
) -> anyhow::Result<()> {
    let trusted = Arc::new(trusted);
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let app = app.clone();
        // The current configuration: a CRL reload swaps it for new connections.
        let acceptor = pki
            .as_ref()
            .map(|p| tokio_rustls::TlsAcceptor::from(p.config()));
        let on_refusal = on_refusal.clone();
        let trusted = trusted.clone();
        tokio::spawn(async move {
            let client_addr = match proxy::client_address(&mut stream, peer, &trusted).await {
                Ok(a) => a,
                Err(proxy::Refused::Untrusted) => {
                    tracing::warn!(%peer, "PROXY header from a peer not named by --proxy-from: connection refused");
                    return;
                }
                Err(proxy::Refused::Malformed(e)) => {
                    tracing::warn!(%peer, "unreadable PROXY header from a balancer: {e}");
                    return;
                }
            };
            let Some(acceptor) = acceptor else {
                let info = ConnInfo {
                    client_addr,
                    tls: false,
                    peer_cert: None,
                };
                serve_connection(stream, app, info).await;
                return;
            };
            let (accepted, refused) = pki::capture_refusal(acceptor.accept(stream)).await;
            let tls_stream = match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%client_addr, "TLS handshake failed: {e}");
                    if let (Some(r), Some(hook)) = (refused, on_refusal) {
                        hook(RefusedHandshake {
                            client_addr,
                            serial_hex: r.serial_hex,
                            subject: r.subject,
                            issuer: r.issuer,
                            reason: r.reason,
                        });
                    }
                    return;
                }
            };
            let peer_cert = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| PeerCert::from_der(c.as_ref()));
            let info = ConnInfo {
                client_addr,
                tls: true,
                peer_cert,
            };
            serve_connection(tls_stream, app, info).await;
        });
    }
}

/// Serves HTTP/2 or HTTP/1.1 (as ALPN chose; plain HTTP on loopback: HTTP/1.1 or HTTP/2 with
/// prior knowledge) on one connection, inserting the connection's facts into every request.
///
/// Oversized uploads are answered 413 after the body is drained (see `app`), so HTTP/2 clients
/// get the answer; curl 7.88 (Debian 12) still loses an early answer on an HTTP/2 stream whose
/// upload runs on, so scripts uploading more than the limit use `--http1.1`.
async fn serve_connection<S>(stream: S, app: Router, info: ConnInfo)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let client_addr = info.client_addr;
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(info.clone());
            let mut app = app.clone();
            async move {
                let http1 = req.version() < hyper::Version::HTTP_2;
                let unread = !hyper::body::Body::is_end_stream(req.body());
                let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let watched = done.clone();
                let req = req.map(|inner| {
                    axum::body::Body::new(Watched {
                        inner,
                        done: watched,
                    })
                });
                let mut res = app.call(req).await?;
                // An answer given before the request body was read (a 401 ahead of an upload):
                // hyper then closes the HTTP/1.1 connection. Saying so keeps a client from
                // sending its next request into the closing connection (found by the fuzz
                // suite: Python clients saw "EOF occurred in violation of protocol").
                if http1 && unread && !done.load(std::sync::atomic::Ordering::Acquire) {
                    res.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, std::convert::Infallible>(res)
            }
        });
    let result = Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(%client_addr, "connection ended: {e}");
    }
}

/// A request body that records whether it was read to its end.
struct Watched {
    inner: hyper::body::Incoming,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl hyper::body::Body for Watched {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled {
            self.done.store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Is this listen address on loopback (where plain HTTP is allowed)?
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_name_the_crl_and_the_host() {
        assert_eq!(
            check_public_url("https://dj.example.cn:8443/").unwrap(),
            "https://dj.example.cn:8443"
        );
        assert!(check_public_url("http://dj.example.cn").is_err());
        assert!(check_public_url("https://dj.example.cn/path").is_err());
        assert_eq!(
            crl_url_of("https://dj.example.cn:8443"),
            "https://dj.example.cn:8443/crl/platform.crl"
        );
        assert_eq!(
            public_host("https://dj.example.cn:8443").as_deref(),
            Some("dj.example.cn")
        );
        assert_eq!(public_host("https://[::1]:9").as_deref(), Some("::1"));
        assert_eq!(
            public_url_of("0.0.0.0:8443".parse().unwrap()),
            "https://localhost:8443"
        );
        assert_eq!(
            public_url_of("127.0.0.1:4000".parse().unwrap()),
            "https://127.0.0.1:4000"
        );
    }
}
