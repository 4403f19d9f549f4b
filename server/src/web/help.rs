//! 帮助: how to get and start the USB-key agent (`/help/agent`), with its download and SHA-256
//! when the agent binary is at hand — named by `DANGJIAN_AGENT_BINARY`, or
//! `dangjian-agent`/`dangjian-agent.exe` next to the server's own binary. Public: the people
//! who need it are those the sign-in refused.

use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{html, Markup, DOCTYPE};
use sha2::{Digest, Sha256};

use super::html_response;

/// The help page on the agent.
pub const AGENT_PATH: &str = "/help/agent";
/// The agent binary itself, when the server has it.
pub const AGENT_DOWNLOAD_PATH: &str = "/help/agent/download";
/// Names the agent binary to offer (otherwise it is looked for next to the server binary).
pub const AGENT_BINARY_ENV: &str = "DANGJIAN_AGENT_BINARY";

pub fn router() -> super::PageRouter {
    super::PageRouter::new()
        .route(AGENT_PATH, get(agent_page))
        .route(AGENT_DOWNLOAD_PATH, get(agent_download))
}

/// The agent binary the server offers, if any.
fn agent_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(AGENT_BINARY_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
    ["dangjian-agent", "dangjian-agent.exe"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dangjian-agent".to_string())
}

/// The binary's path, size and SHA-256 (hex). The digest is kept while the file's size and
/// modification time stay the same: the page is public, and must not read and hash the binary
/// for every visitor.
async fn agent_facts() -> Option<(PathBuf, u64, String)> {
    type Kept = (PathBuf, u64, std::time::SystemTime, String);
    static KEPT: std::sync::Mutex<Option<Kept>> = std::sync::Mutex::new(None);
    let path = agent_binary()?;
    tokio::task::spawn_blocking(move || {
        let meta = std::fs::metadata(&path).ok()?;
        let (len, modified) = (meta.len(), meta.modified().ok()?);
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, l, m, digest)) = kept.as_ref() {
            if *p == path && *l == len && *m == modified {
                return Some((path, len, digest.clone()));
            }
        }
        let mut file = std::fs::File::open(&path).ok()?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).ok()?;
        let digest = hex::encode(hasher.finalize());
        *kept = Some((path.clone(), len, modified, digest.clone()));
        Some((path, len, digest))
    })
    .await
    .ok()
    .flatten()
}

/// A page outside the signed-in layout (sign-in help, error pages without a session).
pub fn plain_page(status: StatusCode, title: &str, body: Markup) -> Response {
    html_response(
        status,
        html! {
            (DOCTYPE)
            html lang="zh-CN" {
                (super::head(title, false))
                body.plain-body {
                    header.plain-header { a href="/" { "党员信息管理系统" } }
                    main.plain-main { (body) }
                }
            }
        },
    )
}

async fn agent_page() -> Response {
    let agent = agent_facts().await;
    let body = html! {
        div.panel.help {
            h2 { "USB Key 登录：USB Key 代理的下载与使用" }
            p {
                "县级及以上党委和具有发展党员审批权限的基层党委的管理员、安全保密员、审计员须使用 USB Key 登录。"
                "USB Key 代理（dangjian-agent）在本机运行：用 USB Key 中的证书与平台建立加密连接，并自动打开浏览器进入平台。"
            }
            h3 { "一、下载" }
            @match &agent {
                Some((path, len, digest)) => {
                    p {
                        a.button.primary #agent-download href=(super::help::AGENT_DOWNLOAD_PATH) download=(file_name(path)) { "下载 USB Key 代理" }
                        " " (file_name(path)) "，" (format!("{:.1}", *len as f64 / 1_048_576.0)) " MB"
                    }
                    p { "下载后请核对文件的 SHA-256 校验值，与下面的值一致才能运行：" }
                    p { code #agent-sha256 { (digest) } }
                    p.muted {
                        "核对方法：Linux 上运行 " code { "sha256sum " (file_name(path)) }
                        "；macOS 上运行 " code { "shasum -a 256 " (file_name(path)) }
                        "；Windows 上运行 " code { "certutil -hashfile " (file_name(path)) " SHA256" } "。"
                    }
                }
                None => {
                    p #agent-missing {
                        "本服务器未提供代理程序的下载。请向本单位的安全保密员或平台运维人员索取 USB Key 代理（dangjian-agent），"
                        "并向其核对程序的 SHA-256 校验值。"
                    }
                }
            }
            h3 { "二、启动" }
            ol {
                li { "插入 USB Key（读卡器需已连接，Linux 上需运行 pcscd 服务）。" }
                li {
                    "在命令行中运行（平台地址和 CA 证书由运维人员提供）："
                    pre { "dangjian-agent connect --server https://平台地址:8443 --ca ca.crt" }
                }
                li { "代理显示 PIN 剩余尝试次数后，输入 USB Key 的 PIN（输入时不显示），再输入验证器中的六位动态码。" }
                li { "登录成功后代理自动打开浏览器进入平台。没有打开时，把代理显示的 http://127.0.0.1:…/?k=… 链接复制到浏览器中打开。" }
            }
            h3 { "三、使用中" }
            ul {
                li { "代理显示的链接只能使用一次。需要新链接（例如换用其他浏览器）时，在代理窗口中按回车键，代理会显示一条新的一次性链接。" }
                li { "使用期间请保持代理窗口打开。拔出 USB Key 会立即结束会话；重新插入后在代理窗口中按回车键，输入 PIN 和新的动态码即可继续。" }
                li { "不希望自动打开浏览器时，启动时加 " code { "--no-browser" } "。按 Ctrl+C 退出代理。" }
                li { "PIN 连续输错 3 次 USB Key 将被锁定，请联系安全保密员解锁。" }
            }
            p { a href="/login" { "返回登录页面" } }
        }
    };
    plain_page(StatusCode::OK, "USB Key 代理", body)
}

async fn agent_download() -> Response {
    let facts = agent_facts().await;
    let read = match &facts {
        Some((path, _, _)) => tokio::fs::read(path).await.ok(),
        None => None,
    };
    match facts.zip(read) {
        Some(((path, _, digest), bytes)) => {
            let mut res = bytes.into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) =
                HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file_name(&path)))
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&digest) {
                h.insert("x-sha256", v);
            }
            res
        }
        None => crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "本服务器未提供 USB Key 代理的下载，请向安全保密员或运维人员索取",
        )
        .into_response(),
    }
}
