//! The listener: HTTPS with rustls (ring provider) using the certificate made at `init`, or
//! plain HTTP on loopback with `--insecure-http`. Each connection's facts (client address, TLS)
//! reach the handlers as a [`ConnInfo`] extension.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tower::Service;

use crate::app::ConnInfo;
use crate::config::write_private;

pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// Creates a local certificate authority and a server certificate for `localhost`, 127.0.0.1
/// and ::1 (plus `extra_names`), unless they exist. Clients trust `tls/ca.crt`.
pub fn ensure_server_certificate(data_dir: &Path, extra_names: &[String]) -> anyhow::Result<()> {
    let dir = tls_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    if dir.join("server.crt").exists() && dir.join("server.key").exists() {
        return Ok(());
    }
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "dangjian local CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "dangjian");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(extra_names.iter().cloned());
    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(names)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "dangjian server");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;
    std::fs::write(dir.join("ca.crt"), ca_cert.pem())?;
    write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    std::fs::write(dir.join("server.crt"), server_cert.pem() + &ca_cert.pem())?;
    write_private(
        &dir.join("server.key"),
        server_key.serialize_pem().as_bytes(),
    )?;
    Ok(())
}

fn load_server_config(data_dir: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let dir = tls_dir(data_dir);
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(dir.join("server.crt")).context("open tls/server.crt")?,
    ))
    .collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(dir.join("server.key")).context("open tls/server.key")?,
    ))?
    .context("no private key in tls/server.key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // HTTP/1.1 only for now: curl 7.88 (Debian 12) loses early answers on HTTP/2 streams
    // whose upload is still running. The agent tunnel brings HTTP/2 back with body draining.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` on `listener` until the process ends. With `tls` false, plain HTTP.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    data_dir: &Path,
    tls: bool,
) -> anyhow::Result<()> {
    let acceptor = if tls {
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            load_server_config(data_dir)?,
        )))
    } else {
        None
    };
    loop {
        let (stream, client_addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let info = ConnInfo {
                client_addr,
                tls: acceptor.is_some(),
            };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    let mut app = app.clone();
                    async move { app.call(req.map(axum::body::Body::new)).await }
                },
            );
            let builder = Builder::new(TokioExecutor::new()).http1_only();
            let result = match acceptor {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        builder
                            .serve_connection(TokioIo::new(tls_stream), service)
                            .await
                    }
                    Err(e) => {
                        tracing::debug!(%client_addr, "TLS handshake failed: {e}");
                        return;
                    }
                },
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%client_addr, "connection ended: {e}");
            }
        });
    }
}

/// Is this listen address on loopback (where plain HTTP is allowed)?
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
