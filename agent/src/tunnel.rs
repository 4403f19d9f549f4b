//! The tunnel: ONE card-authenticated HTTP/2 connection to the server (`Upstream`; every
//! request of the browser is a stream on it, so the card signs once per session, and a new
//! connection after a network drop resumes the TLS session) and the local endpoint on
//! 127.0.0.1 for the administrator's browser (`serve`).
//!
//! The local endpoint:
//! - listens on loopback only and answers only `Host: 127.0.0.1:<port>` or `localhost:<port>`
//!   (a rebound DNS name reaching it gets 403);
//! - accepts only its own browser: the first URL carries a secret (`/?k=…`) that sets the
//!   `dj_agent` cookie (HttpOnly, SameSite=Strict; a new random value for every `connect`
//!   run) on the local origin; every later request needs it (403 otherwise). The secret works
//!   once: the exchange mints the next one, whose URL the agent prints for another browser;
//! - refuses cross-site requests: cookies are per host, not per port, so a page on another
//!   loopback port is same-site and its form POST or no-cors fetch would carry the cookie.
//!   Every request other than GET and HEAD must come from the tunnel's own origin — `Origin`
//!   equal to `http://<Host>`, or, when the browser sends `Origin: null` or none (the pages'
//!   `Referrer-Policy: no-referrer` makes it null), `Sec-Fetch-Site: same-origin` — and is
//!   answered 403 otherwise, never forwarded; each refusal is reported to the server
//!   (`POST /api/v1/agent/refusals`), which records it in the audit log (a flood is
//!   coalesced into reports with a count);
//! - forwards every request with `Authorization: Bearer <card session token>`; the `dj_agent`
//!   cookie and the browser's own Authorization never reach the server;
//! - rewrites what would break the plain-http local origin: `Location` headers naming the server
//!   are rewritten to the local origin, the `Secure` attribute is removed from `Set-Cookie`
//!   (the browser would drop such cookies on http), `Strict-Transport-Security` is dropped;
//! - while the card is out (or before the session is open again) answers every request with a
//!   Chinese page, HTTP 503 — also a request whose upload was still arriving when the card
//!   was pulled.
//!
//! Request bodies are buffered (up to 16 MiB; the server takes 1 MiB) so a request can be sent
//! again on a fresh connection when the connection turned out dead before the server took it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};

use crate::tls::TlsClient;

/// The local cookie that proves the request comes from the browser that opened the first URL.
pub const LOCAL_COOKIE: &str = "dj_agent";
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;
/// A silent connection is probed this often (HTTP/2 PING), and given up when a probe is not
/// answered in `PING_TIMEOUT`: a dropped network is noticed without waiting for a request.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A buffered request to send (kept so it can be sent again on a fresh connection).
#[derive(Clone)]
pub struct Outgoing {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The answer's head; its body streams to the browser.
pub type Answer = Response<Incoming>;

/// What the local endpoint answers with: a page of its own or the server's streamed body.
pub type LocalBody = BoxBody<Bytes, hyper::Error>;

fn full(bytes: Bytes) -> LocalBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// The connection to the server over TLS (with the card's client certificate when the config
/// has it), HTTP/2.
pub struct Upstream {
    host: String,
    port: u16,
    /// `https://host:port`, as `Location` headers name it.
    pub base: String,
    server_name: ServerName<'static>,
    tls: Mutex<TlsClient>,
    /// The open connection; the lock is held while one is being opened, so concurrent requests
    /// wait for it rather than open (and make the card sign for) connections of their own.
    conn: tokio::sync::Mutex<Option<Kept>>,
    /// Numbers the connections, so a failed one is forgotten and not its successor.
    opened: AtomicU64,
}

type Sender = SendRequest<Full<Bytes>>;

/// The kept connection and its number.
struct Kept {
    number: u64,
    sender: Sender,
}

impl Upstream {
    /// `server` is `https://host[:port]`.
    pub fn new(server: &str, tls: TlsClient) -> anyhow::Result<Self> {
        let rest = server
            .strip_prefix("https://")
            .ok_or_else(|| anyhow::anyhow!("服务器地址应以 https:// 开头：{server}"))?
            .trim_end_matches('/');
        anyhow::ensure!(!rest.contains('/'), "服务器地址不应包含路径：{server}");
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("端口无效：{server}"))?,
            ),
            _ => (rest.to_string(), 443),
        };
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| anyhow::anyhow!("服务器名称无效：{host}"))?;
        Ok(Self {
            base: format!("https://{rest}"),
            host,
            port,
            server_name,
            tls: Mutex::new(tls),
            conn: tokio::sync::Mutex::new(None),
            opened: AtomicU64::new(0),
        })
    }

    /// The `Host` header for the server.
    pub fn authority(&self) -> String {
        self.base.trim_start_matches("https://").to_string()
    }

    /// Forgets the connection and the TLS sessions to resume (a new configuration has an empty
    /// cache): after the card was pulled, nothing may reach the server without it. Streams
    /// already under way finish on the old connection, which then closes.
    pub async fn reset(&self, tls: TlsClient) {
        let mut conn = self.conn.lock().await;
        *self.tls.lock().unwrap() = tls;
        *conn = None;
    }

    async fn connect(&self) -> anyhow::Result<Sender> {
        let config = self.tls.lock().unwrap().config.clone();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("连接服务器超时"))??;
        tcp.set_nodelay(true)?;
        let tls = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_rustls::TlsConnector::from(config).connect(self.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| anyhow::anyhow!("与服务器的 TLS 握手超时"))??;
        anyhow::ensure!(
            tls.get_ref().1.alpn_protocol() == Some(b"h2"),
            "服务器不支持 HTTP/2"
        );
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tls))
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// The open connection (with its number), or a new one (`open`), or none.
    async fn sender(&self, open: bool) -> anyhow::Result<Option<(u64, Sender)>> {
        let mut conn = self.conn.lock().await;
        if let Some(kept) = conn.as_ref() {
            if !kept.sender.is_closed() {
                return Ok(Some((kept.number, kept.sender.clone())));
            }
        }
        *conn = None;
        if !open {
            return Ok(None);
        }
        let sender = self.connect().await?;
        let number = self.opened.fetch_add(1, Ordering::SeqCst) + 1;
        *conn = Some(Kept {
            number,
            sender: sender.clone(),
        });
        Ok(Some((number, sender)))
    }

    /// Forgets connection `number` if it is still the kept one.
    async fn forget(&self, number: u64) {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(|k| k.number == number) {
            *conn = None;
        }
    }

    fn build(&self, out: &Outgoing) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(out.method.clone())
            .uri(format!("{}{}", self.base, out.path))
            .body(Full::new(out.body.clone()))?;
        *req.headers_mut() = out.headers.clone();
        Ok(req)
    }

    async fn exchange(
        sender: &mut Sender,
        req: Request<Full<Bytes>>,
    ) -> Result<Answer, hyper::Error> {
        sender.ready().await?;
        sender.send_request(req).await
    }

    /// Sends over the open connection only (never opens one): used to end the session after
    /// the card was pulled, on the connection the card authenticated.
    pub async fn send_on_open_connection(&self, out: &Outgoing) -> Option<Answer> {
        let (_, mut sender) = self.sender(false).await.ok()??;
        Self::exchange(&mut sender, self.build(out).ok()?)
            .await
            .ok()
    }

    /// Sends a request as a stream of the connection (opening one when there is none) and
    /// returns the answer's head; sent again once on a fresh connection when the kept one had
    /// died before the server took the request (or, for GET and HEAD, at any point).
    pub async fn send(&self, out: &Outgoing) -> anyhow::Result<Answer> {
        let req = self.build(out)?;
        let (number, mut sender) = self.sender(true).await?.expect("opened");
        match Self::exchange(&mut sender, req).await {
            Ok(answer) => Ok(answer),
            Err(e)
                if e.is_canceled()
                    || sender.is_closed()
                    || out.method == Method::GET
                    || out.method == Method::HEAD =>
            {
                self.forget(number).await;
                let (_, mut sender) = self.sender(true).await?.expect("opened");
                Ok(Self::exchange(&mut sender, self.build(out)?).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A JSON request (for the agent's own calls: sign-in, sign-out, enrolment).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, serde_json::Value)> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Some(t) = token {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}"))?,
            );
        }
        let out = Outgoing {
            method,
            path: path.to_string(),
            headers,
            body: body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
        };
        let answer = self.send(&out).await?;
        let status = answer.status();
        let bytes = answer.into_body().collect().await?.to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }
}

/// The message of an API error body, or a fallback.
pub fn error_message(status: StatusCode, body: &serde_json::Value) -> String {
    body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("服务器返回 HTTP {}", status.as_u16()))
}

/// Where the tunnel stands.
#[derive(Clone)]
pub enum Phase {
    /// The card session is open: forward with this token.
    Open { token: String },
    /// The card was pulled: 503 with the page that says so.
    CardRemoved,
    /// The card is back, the session is being opened again.
    Reopening,
}

/// The local endpoint's shared state.
pub struct Tunnel {
    pub upstream: Upstream,
    phase: RwLock<Phase>,
    port: u16,
    /// The secret of the current first URL: exchanged once for the cookie, then replaced.
    secret: Mutex<String>,
    /// The cookie value, new for every `connect` run.
    cookie: String,
    reports: Mutex<Reports>,
}

/// A refused cross-site request, as reported to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub method: String,
    pub path: String,
    pub origin: Option<String>,
    pub fetch_site: Option<String>,
}

/// Reports of refused requests sent to the server in the current minute; past the budget the
/// refusals are counted and sent as one report at the end of the minute.
#[derive(Default)]
struct Reports {
    window_start: Option<Instant>,
    sent: u32,
    /// Refusals held back in this window, and the latest of them.
    held: u32,
    latest: Option<Refused>,
    flush_scheduled: bool,
}

/// Reports sent at once per minute; more refusals wait for one report with their count.
const REPORTS_PER_MINUTE: u32 = 20;
const REPORT_WINDOW: Duration = Duration::from_secs(60);

/// Whether a request other than GET/HEAD comes from the tunnel's own origin
/// (`http://<host>`, the Host header having been checked).
pub fn from_own_origin(method: &Method, headers: &HeaderMap, host: &str) -> bool {
    if *method == Method::GET || *method == Method::HEAD {
        return true;
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    match text("origin") {
        Some(origin) if origin != "null" => origin.eq_ignore_ascii_case(&format!("http://{host}")),
        // No Origin, or an opaque one (the pages' no-referrer policy makes a same-origin
        // form's Origin null): the browser's own verdict must be same-origin.
        _ => text("sec-fetch-site") == Some("same-origin"),
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tunnel {
    pub fn new(upstream: Upstream, port: u16, token: String) -> Self {
        Self {
            upstream,
            phase: RwLock::new(Phase::Open { token }),
            port,
            secret: Mutex::new(random_hex(24)),
            cookie: random_hex(32),
            reports: Mutex::default(),
        }
    }

    /// The URL to open first (it carries the current one-time secret).
    pub fn first_url(&self) -> String {
        let secret = self.secret.lock().unwrap().clone();
        self.url_with(&secret)
    }

    /// A fresh one-time URL on request: a new secret replaces the current one (a link printed
    /// earlier and not yet used stops working).
    pub fn fresh_url(&self) -> String {
        let mut secret = self.secret.lock().unwrap();
        *secret = random_hex(24);
        self.url_with(&secret)
    }

    fn url_with(&self, secret: &str) -> String {
        format!("http://127.0.0.1:{}/?k={secret}", self.port)
    }

    /// Exchanges `given` for the cookie when it is the current secret; the next secret is
    /// minted at once (the same URL never works twice) and returned as its URL.
    fn exchange_secret(&self, given: &str) -> Option<String> {
        let mut secret = self.secret.lock().unwrap();
        if !same(given.as_bytes(), secret.as_bytes()) {
            return None;
        }
        *secret = random_hex(24);
        Some(self.url_with(&secret))
    }

    /// Reports a refused cross-site request to the server (in the background; coalesced
    /// past [`REPORTS_PER_MINUTE`]).
    fn report(self: &Arc<Self>, refused: Refused) {
        let mut r = self.reports.lock().unwrap();
        let now = Instant::now();
        if r.window_start
            .is_none_or(|s| now.duration_since(s) >= REPORT_WINDOW)
            && r.held == 0
        {
            r.window_start = Some(now);
            r.sent = 0;
        }
        if r.sent < REPORTS_PER_MINUTE && r.held == 0 {
            r.sent += 1;
            drop(r);
            let tunnel = self.clone();
            tokio::spawn(async move { tunnel.send_report(&refused, 1).await });
            return;
        }
        r.held += 1;
        r.latest = Some(refused);
        if r.flush_scheduled {
            return;
        }
        r.flush_scheduled = true;
        let wait = r
            .window_start
            .map(|s| REPORT_WINDOW.saturating_sub(now.duration_since(s)))
            .unwrap_or_default();
        drop(r);
        let tunnel = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let (held, latest) = {
                let mut r = tunnel.reports.lock().unwrap();
                r.flush_scheduled = false;
                r.window_start = Some(Instant::now());
                r.sent = 1;
                (std::mem::take(&mut r.held), r.latest.take())
            };
            if let Some(latest) = latest {
                tunnel.send_report(&latest, held).await;
            }
        });
    }

    async fn send_report(&self, refused: &Refused, count: u32) {
        let Phase::Open { token } = self.phase() else {
            crate::say!("警告：无法向服务器报告被拒绝的跨站请求（会话未打开）");
            return;
        };
        let body = serde_json::json!({
            "method": refused.method,
            "path": refused.path,
            "origin": refused.origin,
            "fetch_site": refused.fetch_site,
            "count": count,
        });
        match self
            .upstream
            .json(
                Method::POST,
                "/api/v1/agent/refusals",
                Some(&token),
                Some(&body),
            )
            .await
        {
            Ok((status, _)) if status.is_success() => {}
            Ok((status, body)) => {
                crate::say!("警告：报告跨站请求失败：{}", error_message(status, &body))
            }
            Err(e) => crate::say!("警告：报告跨站请求失败：{e}"),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase.read().unwrap().clone()
    }

    pub fn set_phase(&self, phase: Phase) {
        *self.phase.write().unwrap() = phase;
    }

    fn host_ok(&self, req: &Request<Incoming>) -> bool {
        let Some(host) = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
        else {
            return false;
        };
        host == format!("127.0.0.1:{}", self.port) || host == format!("localhost:{}", self.port)
    }

    fn cookie_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(k, v)| k == LOCAL_COOKIE && same(v.as_bytes(), self.cookie.as_bytes()))
    }

    /// The session token while the session is open, else the page that says why not.
    fn open_token(&self) -> Result<String, ClosedPage> {
        match self.phase() {
            Phase::Open { token } => Ok(token),
            Phase::CardRemoved => Err(ClosedPage(Box::new(removed_page()))),
            Phase::Reopening => Err(ClosedPage(Box::new(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "正在恢复会话",
                "USB Key 已插入，请在代理窗口中输入 PIN 码和六位动态码，然后刷新本页。",
            )))),
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<LocalBody> {
        if !self.host_ok(&req) {
            return page(
                StatusCode::FORBIDDEN,
                "访问被拒绝",
                "只能通过 USB Key 代理打印的本机地址访问（127.0.0.1 或 localhost）。",
            );
        }
        // The first URL: the secret sets the local cookie, then the query is dropped.
        let given = req.uri().query().and_then(|query| {
            query
                .split('&')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == "k")
                .map(|(_, v)| v.to_string())
        });
        if let Some(given) = &given {
            if req.method() == Method::GET {
                if let Some(next) = self.exchange_secret(given) {
                    crate::say!(
                        "浏览器已打开一次性链接（该链接不能再次使用）。如需在其他浏览器中打开平台，请使用新的一次性链接："
                    );
                    crate::prompt::show(&next);
                    return Response::builder()
                        .status(StatusCode::SEE_OTHER)
                        .header(header::LOCATION, req.uri().path())
                        .header(
                            header::SET_COOKIE,
                            format!(
                                "{LOCAL_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                                self.cookie
                            ),
                        )
                        .header(header::CACHE_CONTROL, "no-store")
                        .body(full(Bytes::new()))
                        .expect("valid response");
                }
            }
        }
        if !self.cookie_ok(req.headers()) {
            if given.is_some() {
                return page(
                    StatusCode::FORBIDDEN,
                    "链接已失效",
                    "该链接是一次性的，已经使用过或不正确。请在 USB Key 代理窗口中按回车键获取新的一次性链接。如果这是代理自动打开的第一个链接而您此前并未打开过它，说明链接可能已被他人使用：请立即按 Ctrl+C 关闭代理后重新启动。",
                );
            }
            return page(
                StatusCode::FORBIDDEN,
                "访问被拒绝",
                "请使用 USB Key 代理启动时显示的链接打开平台（该链接只对本浏览器有效）。",
            );
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if !from_own_origin(req.method(), req.headers(), &host) {
            let text = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let refused = Refused {
                method: req.method().to_string(),
                path: req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into()),
                origin: text("origin"),
                fetch_site: text("sec-fetch-site"),
            };
            crate::say!(
                "警告：已拒绝跨站请求 {} {}（来源 {}），并已报告服务器",
                refused.method,
                refused.path,
                refused.origin.as_deref().unwrap_or("未知")
            );
            let api = refused.path.starts_with("/api/");
            self.report(refused);
            return cross_site_refusal(api);
        }
        let token = match self.open_token() {
            Ok(token) => token,
            Err(ClosedPage(closed)) => return *closed,
        };
        let local_origin = format!("http://{host}");
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "请求过大",
                    "提交的内容超过了代理允许的大小。",
                )
            }
        };
        // The card may have been pulled while the upload arrived: the request is not sent.
        match self.open_token() {
            Ok(now) if now == token => {}
            Ok(_) => return removed_page(),
            Err(ClosedPage(closed)) => return *closed,
        }
        let out = Outgoing {
            method: parts.method,
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            headers: request_headers(&parts.headers, &token, &local_origin, &self.upstream.base),
            body,
        };
        match self.upstream.send(&out).await {
            Ok(answer) => {
                let (parts, body) = answer.into_parts();
                let mut res = Response::new(body.boxed());
                *res.status_mut() = parts.status;
                *res.headers_mut() =
                    response_headers(&parts.headers, &self.upstream.base, &local_origin);
                res
            }
            Err(_) if matches!(self.phase(), Phase::CardRemoved) => removed_page(),
            Err(e) => page(
                StatusCode::BAD_GATEWAY,
                "无法连接服务器",
                &format!("USB Key 代理无法连接到平台服务器，请稍后刷新重试。（{e}）"),
            ),
        }
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The browser's headers as the server gets them: no hop-by-hop headers, no Host (set by the
/// upstream), the card session's bearer token instead of any Authorization, the local cookie
/// removed, Origin/Referer naming the local origin rewritten to the server's.
fn request_headers(
    incoming: &HeaderMap,
    token: &str,
    local_origin: &str,
    server_base: &str,
) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        if hop_by_hop(name) || name == header::HOST || name == header::AUTHORIZATION {
            continue;
        }
        if name == header::COOKIE {
            let kept: Vec<&str> = value
                .to_str()
                .unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty() && !p.starts_with(&format!("{LOCAL_COOKIE}=")))
                .collect();
            if !kept.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                    out.append(header::COOKIE, v);
                }
            }
            continue;
        }
        if name == header::ORIGIN || name == header::REFERER {
            let text = value.to_str().unwrap_or_default();
            if let Some(rest) = text.strip_prefix(local_origin) {
                if let Ok(v) = HeaderValue::from_str(&format!("{server_base}{rest}")) {
                    out.append(name.clone(), v);
                }
                continue;
            }
        }
        out.append(name.clone(), value.clone());
    }
    out.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("token is header-safe"),
    );
    out
}

/// The server's headers as the browser gets them (see the module note).
fn response_headers(incoming: &HeaderMap, server_base: &str, local_origin: &str) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        if hop_by_hop(name) || name == header::STRICT_TRANSPORT_SECURITY {
            continue;
        }
        let text = value.to_str().unwrap_or_default();
        if name == header::LOCATION {
            if let Some(rest) = text.strip_prefix(server_base) {
                if let Ok(v) = HeaderValue::from_str(&format!("{local_origin}{rest}")) {
                    out.append(name.clone(), v);
                }
                continue;
            }
        }
        if name == header::SET_COOKIE {
            let kept: Vec<&str> = text
                .split(';')
                .filter(|attr| !attr.trim().eq_ignore_ascii_case("secure"))
                .collect();
            if let Ok(v) = HeaderValue::from_str(&kept.join(";")) {
                out.append(name.clone(), v);
            }
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// What a refused cross-site request gets: the API's error shape for `/api/` paths, a page
/// otherwise.
const CROSS_SITE_MESSAGE: &str = "已拒绝跨站请求：USB Key 代理只接受本代理页面提交的操作，其他网页（包括本机其他端口上的网页）发起的请求一律拒绝，并已记入审计日志。如非本人操作，请关闭可疑网页并联系安全员。";

fn cross_site_refusal(api: bool) -> Response<LocalBody> {
    if !api {
        return page(StatusCode::FORBIDDEN, "已拒绝跨站请求", CROSS_SITE_MESSAGE);
    }
    let body = serde_json::json!({
        "error": { "code": "cross_site_request", "message": CROSS_SITE_MESSAGE }
    });
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(full(Bytes::from(body.to_string())))
        .expect("valid response")
}

/// The page shown while the card is out.
pub const REMOVED_MESSAGE: &str = "USB Key 已拔出，会话已结束。请插入 USB Key 并重新输入 PIN 码";

/// The page answered while no session is open.
struct ClosedPage(Box<Response<LocalBody>>);

fn removed_page() -> Response<LocalBody> {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "USB Key 已拔出",
        &format!("{REMOVED_MESSAGE}（在 USB Key 代理窗口中输入），然后刷新本页。"),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A small Chinese page.
pub fn page(status: StatusCode, title: &str, message: &str) -> Response<LocalBody> {
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{margin:0;font-family:sans-serif;background:#f3f4f6}}\
         header{{background:#b5121b;color:#fff;padding:12px 16px;font-size:20px;font-weight:bold}}\
         main{{margin:24px auto;max-width:720px;background:#fff;border:1px solid #ddd;\
         padding:16px 24px}}h1{{color:#b5121b;font-size:22px}}</style></head>\
         <body><header>党员信息管理系统 · USB Key 代理</header>\
         <main><h1>{t}</h1><p>{m}</p></main></body></html>",
        t = escape(title),
        m = escape(message)
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(full(Bytes::from(html)))
        .expect("valid response")
}

/// Binds the local endpoint; refuses any address that is not loopback.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "本地端点只能监听本机回环地址（127.0.0.1）"
    );
    Ok(TcpListener::bind(addr).await?)
}

/// Serves the local endpoint until the process ends.
pub async fn serve(listener: TcpListener, tunnel: Arc<Tunnel>) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        if !peer.ip().is_loopback() {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let tunnel = tunnel.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let tunnel = tunnel.clone();
                async move { Ok::<_, Infallible>(tunnel.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_rewritten_for_the_local_origin() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("https://srv:8443/orgs/1"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("dj_session=abc; Path=/; HttpOnly; Secure; SameSite=Lax"),
        );
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=1"),
        );
        let out = response_headers(&h, "https://srv:8443", "http://127.0.0.1:5000");
        assert_eq!(out[header::LOCATION], "http://127.0.0.1:5000/orgs/1");
        assert_eq!(
            out[header::SET_COOKIE],
            "dj_session=abc; Path=/; HttpOnly; SameSite=Lax"
        );
        assert!(out.get(header::STRICT_TRANSPORT_SECURITY).is_none());
    }

    #[test]
    fn only_the_own_origin_may_change_state() {
        let host = "127.0.0.1:5000";
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let none = with(&[]);
        assert!(from_own_origin(&Method::GET, &none, host));
        assert!(from_own_origin(&Method::HEAD, &none, host));
        assert!(!from_own_origin(&Method::POST, &none, host));
        assert!(from_own_origin(
            &Method::POST,
            &with(&[("origin", "http://127.0.0.1:5000")]),
            host
        ));
        for origin in [
            "http://127.0.0.1:5001",
            "http://localhost:5000",
            "https://127.0.0.1:5000",
        ] {
            let h = with(&[("origin", origin), ("sec-fetch-site", "same-origin")]);
            assert!(!from_own_origin(&Method::POST, &h, host), "{origin}");
        }
        // The pages' no-referrer policy: Origin null, the browser says same-origin.
        let h = with(&[("origin", "null"), ("sec-fetch-site", "same-origin")]);
        assert!(from_own_origin(&Method::POST, &h, host));
        let h = with(&[("origin", "null"), ("sec-fetch-site", "same-site")]);
        assert!(!from_own_origin(&Method::POST, &h, host));
        let h = with(&[("sec-fetch-site", "cross-site")]);
        assert!(!from_own_origin(&Method::DELETE, &h, host));
        let h = with(&[("sec-fetch-site", "none")]);
        assert!(!from_own_origin(&Method::PATCH, &h, host));
        assert!(!from_own_origin(&Method::OPTIONS, &none, host));
    }

    #[test]
    fn requests_carry_the_token_not_the_local_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("dj_agent=secret; other=1"),
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:5000"),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        let out = request_headers(&h, "tok", "http://127.0.0.1:5000", "https://srv:8443");
        assert_eq!(out[header::COOKIE], "other=1");
        assert_eq!(out[header::AUTHORIZATION], "Bearer tok");
        assert_eq!(out[header::ORIGIN], "https://srv:8443");
        assert!(out.get(header::CONNECTION).is_none());
    }
}
