//! The notifier 短信通知: activation codes and SMS verification codes reach people through it.
//! The built-in one appends one JSON line per message to `<data dir>/outbox.jsonl` and logs
//! it; when `sms_gateway_url` is set in `config.json`, messages are POSTed there as JSON.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::config::Config;

/// One message to one mobile.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The mobile number.
    pub to: String,
    /// `activation_code`, `activation_sms`, `password_sms` or `grant`.
    pub kind: String,
    /// The text as the person reads it.
    pub text: String,
    /// The code the text carries, if any.
    pub code: Option<String>,
}

/// Something that delivers messages.
pub trait Notify {
    fn send(&self, msg: &Message) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Appends to `<data dir>/outbox.jsonl` and logs (development, tests, air-gapped sites).
#[derive(Debug, Clone)]
pub struct Outbox {
    pub path: PathBuf,
}

impl Notify for Outbox {
    async fn send(&self, msg: &Message) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut line = serde_json::to_string(msg)?;
        line.push('\n');
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).append(true);
        // Codes and mobiles: readable by the server's user only.
        #[cfg(unix)]
        options.mode(0o600);
        let mut f = options
            .open(&self.path)
            .await
            .with_context(|| format!("open {}", self.path.display()))?;
        f.write_all(line.as_bytes()).await?;
        f.flush().await?;
        tracing::info!(to = %mask_mobile(&msg.to), kind = %msg.kind, "message written to the outbox");
        Ok(())
    }
}

/// POSTs `{"to", "kind", "text", "code"}` as JSON to an SMS gateway; any 2xx is success.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub url: String,
    client: reqwest::Client,
}

impl Gateway {
    pub fn new(url: &str) -> anyhow::Result<Gateway> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("build the SMS gateway client")?;
        Ok(Gateway {
            url: url.to_string(),
            client,
        })
    }
}

impl Notify for Gateway {
    async fn send(&self, msg: &Message) -> anyhow::Result<()> {
        let res = self
            .client
            .post(&self.url)
            .json(msg)
            .send()
            .await
            .context("reach the SMS gateway")?;
        let status = res.status();
        if !status.is_success() {
            anyhow::bail!("SMS gateway answered {status}");
        }
        tracing::info!(to = %mask_mobile(&msg.to), kind = %msg.kind, "message sent to the SMS gateway");
        Ok(())
    }
}

/// The notifier the configuration selects.
#[derive(Debug, Clone)]
pub enum Notifier {
    Outbox(Outbox),
    Gateway(Gateway),
}

impl Notifier {
    pub fn from_config(config: &Config) -> anyhow::Result<Notifier> {
        match config
            .file
            .sms_gateway_url
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            Some(url) => Ok(Notifier::Gateway(Gateway::new(url)?)),
            None => Ok(Notifier::Outbox(Outbox {
                path: config.data_dir.join("outbox.jsonl"),
            })),
        }
    }
}

impl Notify for Notifier {
    async fn send(&self, msg: &Message) -> anyhow::Result<()> {
        match self {
            Notifier::Outbox(o) => o.send(msg).await,
            Notifier::Gateway(g) => g.send(msg).await,
        }
    }
}

/// Sends through the configured notifier; a failure is logged and answered as 502.
pub async fn send(config: &Config, msg: &Message) -> Result<(), crate::error::ApiError> {
    let result = match Notifier::from_config(config) {
        Ok(n) => n.send(msg).await,
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), kind = %msg.kind, "notifier failed");
        crate::error::ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "notify_failed",
            "短信发送失败，请稍后重试",
        )
    })
}

/// `138****5678`.
pub fn mask_mobile(m: &str) -> String {
    let chars: Vec<char> = m.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 7));
    out.extend(&chars[chars.len() - 4..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outbox_appends_json_lines() {
        let dir = std::env::temp_dir().join(format!("dj-outbox-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let o = Outbox {
            path: dir.join("outbox.jsonl"),
        };
        for code in ["111111", "222222"] {
            o.send(&Message {
                to: "13800001111".into(),
                kind: "activation_sms".into(),
                text: "t".into(),
                code: Some(code.into()),
            })
            .await
            .unwrap();
        }
        let text = std::fs::read_to_string(&o.path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["code"], "222222");
        assert_eq!(lines[0]["to"], "13800001111");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn masks_mobiles() {
        assert_eq!(mask_mobile("13800001111"), "138****1111");
    }
}
