//! Refused TLS handshakes (a client certificate of another CA, expired, revoked, without
//! clientAuth), aggregated per source address and minute: anyone can open connections, so one
//! record per handshake would let an anonymous flood grow the log without bound. Each
//! (address, minute) becomes one `tls.client_certificate` record with the count, the first
//! reason, subject and issuer, and the serials seen (at most [`MAX_SERIALS`]). Records are
//! written once their minute is over, before any read of the log (so an auditor always sees
//! them), and at shutdown. At most [`MAX_BUCKETS`] buckets are pending; beyond that, refusals
//! are counted in one bucket of address `*`.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Event, Outcome, Who};
use crate::db::Db;

/// Serials listed in one record.
pub const MAX_SERIALS: usize = 20;
/// Pending (address, minute) buckets before further addresses share one.
pub const MAX_BUCKETS: usize = 10_000;

/// One refused handshake.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub client_addr: String,
    pub serial: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub reason: String,
}

/// The refusals of one address in one minute.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// the minute (Unix seconds / 60)
    pub minute: i64,
    pub client_addr: String,
    pub count: u64,
    /// the first refusal's facts
    pub first: Refusal,
    pub serials: Vec<String>,
    /// refusals whose serial is not among `serials` (listed ones are full)
    pub more_serials: u64,
}

impl Bucket {
    /// The audit record's detail.
    pub fn detail(&self) -> String {
        let start = DateTime::<Utc>::from_timestamp(self.minute * 60, 0)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default();
        let mut serials = self.serials.join(", ");
        if self.more_serials > 0 {
            serials.push_str(&format!(
                " (and {} refusals with other serials)",
                self.more_serials
            ));
        }
        format!(
            "{} TLS handshake(s) refused in the minute from {start}: {}; subject {}; issuer {}; serials {}",
            self.count,
            self.first.reason,
            self.first.subject.as_deref().unwrap_or("-"),
            self.first.issuer.as_deref().unwrap_or("-"),
            if serials.is_empty() { "-" } else { &serials },
        )
    }
}

/// Pending buckets by (minute, address).
#[derive(Debug, Default)]
pub struct Aggregator {
    buckets: Mutex<BTreeMap<(i64, String), Bucket>>,
}

impl Aggregator {
    /// Counts one refusal at `now`.
    pub fn note(&self, r: Refusal, now: DateTime<Utc>) {
        let minute = now.timestamp().div_euclid(60);
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        let mut key = (minute, r.client_addr.clone());
        if !buckets.contains_key(&key) && buckets.len() >= MAX_BUCKETS {
            key = (minute, "*".to_string());
        }
        let bucket = buckets.entry(key.clone()).or_insert_with(|| Bucket {
            minute,
            client_addr: key.1.clone(),
            count: 0,
            first: r.clone(),
            serials: Vec::new(),
            more_serials: 0,
        });
        bucket.count += 1;
        if let Some(serial) = r.serial {
            if !bucket.serials.contains(&serial) {
                if bucket.serials.len() < MAX_SERIALS {
                    bucket.serials.push(serial);
                } else {
                    bucket.more_serials += 1;
                }
            }
        }
    }

    /// Removes and returns the buckets of minutes before `now`'s (all of them with `all`).
    pub fn take(&self, now: DateTime<Utc>, all: bool) -> Vec<Bucket> {
        let minute = now.timestamp().div_euclid(60);
        let Ok(mut buckets) = self.buckets.lock() else {
            return Vec::new();
        };
        if all {
            return std::mem::take(&mut *buckets).into_values().collect();
        }
        let later = buckets.split_off(&(minute, String::new()));
        std::mem::replace(&mut *buckets, later)
            .into_values()
            .collect()
    }
}

static PENDING: LazyLock<Aggregator> = LazyLock::new(Aggregator::default);

/// Counts one refused handshake (the listener's hook).
pub fn note(r: Refusal) {
    PENDING.note(r, Utc::now());
}

/// Writes the pending records: those of past minutes, or with `all` every one (before the log
/// is read, at shutdown).
pub async fn flush(db: &Db, all: bool) -> Result<(), sqlx::Error> {
    for b in PENDING.take(Utc::now(), all) {
        let who = Who {
            cert_serial: b.first.serial.clone(),
            ..Who::anonymous(&b.client_addr)
        };
        let target = b.first.serial.clone().unwrap_or_else(|| "-".to_string());
        let event = Event::ok("tls.client_certificate", &target)
            .outcome(Outcome::Refused)
            .with_detail(b.detail());
        super::append_alone(db, &who, event).await?;
    }
    Ok(())
}

/// Writes the records of each minute once it is over, for the life of the process.
pub fn spawn_flusher(db: Db) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = flush(&db, false).await {
                tracing::error!("audit refused handshakes: {e}");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(addr: &str, serial: &str) -> Refusal {
        Refusal {
            client_addr: addr.to_string(),
            serial: Some(serial.to_string()),
            subject: Some("CN=x".to_string()),
            issuer: Some("CN=other CA".to_string()),
            reason: "unknown issuer".to_string(),
        }
    }

    #[test]
    fn one_bucket_per_address_and_minute_with_a_count() {
        let agg = Aggregator::default();
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap(); // a whole minute
        for i in 0..1000 {
            agg.note(refusal("10.0.0.1", &format!("s{}", i % 30)), t0);
        }
        agg.note(refusal("10.0.0.2", "t"), t0);
        agg.note(
            refusal("10.0.0.1", "s0"),
            t0 + chrono::Duration::seconds(61),
        );
        // The current minute stays pending; past minutes are taken.
        let past = agg.take(t0 + chrono::Duration::seconds(61), false);
        assert_eq!(past.len(), 2);
        let first = past.iter().find(|b| b.client_addr == "10.0.0.1").unwrap();
        assert_eq!(first.count, 1000);
        assert_eq!(first.serials.len(), MAX_SERIALS);
        // s20…s29 were refused 33 times each once the list was full.
        assert_eq!(first.more_serials, 330);
        assert!(first.detail().starts_with("1000 TLS handshake(s) refused"));
        assert!(first
            .detail()
            .contains("and 330 refusals with other serials"));
        let rest = agg.take(t0 + chrono::Duration::seconds(61), true);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].count, 1);
        assert!(agg.take(t0, true).is_empty());
    }

    #[test]
    fn buckets_are_bounded() {
        let agg = Aggregator::default();
        let t0 = Utc::now();
        for i in 0..(MAX_BUCKETS + 50) {
            agg.note(refusal(&format!("addr{i}"), "s"), t0);
        }
        let all = agg.take(t0, true);
        assert_eq!(all.len(), MAX_BUCKETS + 1);
        let shared = all.iter().find(|b| b.client_addr == "*").unwrap();
        assert_eq!(shared.count, 50);
    }
}
