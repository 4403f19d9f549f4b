//! Card routes: `POST /api/v1/session/card` (USB-key sign-in), enrolment codes and enrolment,
//! the security officer's certificate register (list, revoke), and the CRL at its
//! distribution point.

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    certificate_revoked, certs_error, no_certificate, parse_reason, reason_label, record_issued,
    refuse_if_crl_stale, unknown_certificate, with_ca, ENROLMENT_CODE_HOURS, EXPIRY_WARN_DAYS,
};
use crate::access::{self, Actor, Role};
use crate::account::routes::{account_row, complete_sign_in, CardCredential, SignedIn};
use crate::account::{session, throttle};
use crate::audit::{self, Event, Outcome, Who};
use crate::db::{now_rfc3339, subtree_upper};
use crate::error::{ApiError, ApiResult};
use crate::notify::{self, Message};
use crate::state::{ApiJson, ApiQuery, AppState, ConnInfo, Page, Paging};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(card_sign_in))
        .routes(routes!(enrolment_code_route))
        .routes(routes!(enrol_check_route))
        .routes(routes!(enrol_route))
        .routes(routes!(list_route))
        .routes(routes!(revoke_route))
}

// ---- card sign-in ------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
pub struct CardSignIn {
    /// 六位动态码
    pub code: String,
}

/// The certificate a card session is bound to.
#[derive(Serialize, ToSchema, Clone)]
pub struct CardCertificateView {
    pub serial: String,
    pub not_after: String,
}

#[derive(Serialize, ToSchema)]
pub struct CardSignedIn {
    #[serde(flatten)]
    pub signed: SignedIn,
    pub certificate: CardCertificateView,
    /// 证书即将到期的提示（30 天内到期时）
    pub notice: Option<String>,
}

/// USB-key sign-in 证书登录: over a connection that carried the card's client certificate,
/// with the six-digit code. The session is bound to that certificate.
#[utoipa::path(post, path = "/api/v1/session/card", request_body = CardSignIn, security(()),
    responses((status = 200, body = CardSignedIn), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 423, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
async fn card_sign_in(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<CardSignIn>,
) -> ApiResult<Response> {
    let client = conn.client_addr.ip().to_string();
    let once = card_sign_in_once(&state, &client, conn.peer_cert.as_ref(), &body.code);
    let signed = throttle::attempt(&state.db, "sign_in", &client, once).await?;
    let cookie = session::session_cookie(&signed.signed.token, state.config.secure_cookies);
    Ok(([(SET_COOKIE, cookie)], Json(signed)).into_response())
}

async fn refuse(
    state: &AppState,
    who: &Who,
    target: &str,
    outcome: Outcome,
    why: &str,
    error: ApiError,
) -> ApiResult<CardSignedIn> {
    audit::append_alone(
        &state.db,
        who,
        Event::ok("session.sign_in", target)
            .outcome(outcome)
            .with_detail(format!("USB key: {why}")),
    )
    .await?;
    Err(error)
}

async fn card_sign_in_once(
    state: &AppState,
    client: &str,
    peer: Option<&crate::tls::PeerCert>,
    code: &str,
) -> ApiResult<CardSignedIn> {
    let who = Who::anonymous(client);
    let Some(peer) = peer else {
        return refuse(
            state,
            &who,
            "-",
            Outcome::Refused,
            "no client certificate",
            no_certificate(),
        )
        .await;
    };
    let who = Who {
        cert_serial: Some(peer.serial_hex.clone()),
        ..who
    };
    let target = peer.serial_hex.as_str();
    if code.trim().is_empty() {
        return Err(ApiError::field("code", "请输入六位动态码"));
    }
    if let Err(e) = refuse_if_crl_stale() {
        return refuse(state, &who, target, Outcome::Refused, "CRL stale", e).await;
    }
    type Row = (Option<String>, String, Option<String>, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT account_id, fingerprint, revoked_at, expires_at FROM certificates \
         WHERE issuer = $1 AND serial = $2",
    )
    .bind(&peer.issuer)
    .bind(&peer.serial_hex)
    .fetch_optional(state.db.read())
    .await?;
    let Some((account_id, fingerprint, revoked_at, expires_at)) = row else {
        return refuse(
            state,
            &who,
            target,
            Outcome::Failed,
            "certificate not in the register",
            unknown_certificate(),
        )
        .await;
    };
    if fingerprint != peer.fingerprint {
        return refuse(
            state,
            &who,
            target,
            Outcome::Failed,
            "fingerprint differs from the register",
            unknown_certificate(),
        )
        .await;
    }
    if revoked_at.is_some() {
        return refuse(
            state,
            &who,
            target,
            Outcome::Refused,
            "certificate revoked",
            certificate_revoked(),
        )
        .await;
    }
    if super::has_expired(&expires_at, Utc::now()) {
        // Reachable over a resumed TLS session, which does not verify the certificate again.
        return refuse(
            state,
            &who,
            target,
            Outcome::Refused,
            "certificate expired",
            super::certificate_expired(),
        )
        .await;
    }
    let account = match &account_id {
        Some(id) => account_row(state, id).await?,
        None => None,
    };
    let Some(account) = account else {
        return refuse(
            state,
            &who,
            target,
            Outcome::Failed,
            "certificate of no account",
            unknown_certificate(),
        )
        .await;
    };
    let card = CardCredential {
        serial: peer.serial_hex.clone(),
        fingerprint: peer.fingerprint.clone(),
    };
    let signed = complete_sign_in(state, account, who, target, None, code, Some(&card)).await?;
    Ok(CardSignedIn {
        signed,
        certificate: CardCertificateView {
            serial: peer.serial_hex.clone(),
            not_after: expires_at.clone(),
        },
        notice: super::expiry_notice(&expires_at),
    })
}

// ---- enrolment ---------------------------------------------------------------------------

pub(crate) fn enrolment_code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(
        format!("enrolment\x1f{}", code.trim().to_ascii_uppercase()).as_bytes(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct EnrolmentCodeIssued {
    /// Expiry of the code (the code itself goes through the notifier).
    pub expires_at: String,
}

/// A live grant of an account the officer may manage: (proof, account id, org code, org name).
async fn grant_in_scope(
    state: &AppState,
    actor: &Actor,
    grant_id: &str,
) -> ApiResult<(access::Allowed, String, String, String)> {
    let row: Option<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT g.account_id, o.code, o.name, g.revoked_at FROM grants g \
         JOIN orgs o ON o.id = g.org_id WHERE g.id = $1",
    )
    .bind(grant_id)
    .fetch_optional(state.db.read())
    .await?;
    let Some((account_id, code, org_name, revoked_at)) = row else {
        return Err(ApiError::not_found("授权"));
    };
    access::grant_admin(actor, &code)?;
    if account_id == actor.account_id {
        return Err(ApiError::forbidden("不能为自己签发证书申领码（三员分立）"));
    }
    if revoked_at.is_some() {
        return Err(ApiError::conflict("grant_revoked", "该授权已撤销"));
    }
    // The grant is live, so the account has at least this one live grant.
    let codes = crate::account::store::live_grant_codes(state.db.read(), &account_id).await?;
    let allowed = access::account_admin(actor, &codes)?;
    Ok((allowed, account_id, code, org_name))
}

/// 签发证书申领码: a one-time code for the holder of a grant to enrol a USB key, sent through
/// the notifier; earlier unused codes of the grant stop working.
pub async fn issue_enrolment_code(
    state: &AppState,
    actor: &Actor,
    grant_id: &str,
) -> ApiResult<EnrolmentCodeIssued> {
    let (allowed, account_id, _, org_name) = grant_in_scope(state, actor, grant_id).await?;
    let mut tx = state.db.begin().await?;
    let (code, expires_at) =
        insert_enrolment_code(&mut tx, &allowed, grant_id, &account_id, &actor.account_id).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("certificate.enrolment_code", grant_id)
            .with_detail(format!("account {account_id}")),
    )
    .await?;
    let contact = crate::account::activation::contact_of(&mut *tx, &account_id).await?;
    tx.commit().await?;
    let Some((name, _, mobile)) = contact else {
        return Err(ApiError::not_found("账号"));
    };
    notify::send(
        &state.config,
        &Message {
            to: mobile,
            kind: "enrolment_code".to_string(),
            text: format!(
                "【党员信息管理系统】{name}，您在{org_name}的 USB Key 证书申领码为{code}，\
                 {ENROLMENT_CODE_HOURS}小时内有效，仅可使用一次。请在党建客户端中选择“申领证书”并输入此码。"
            ),
            code: Some(code),
        },
    )
    .await?;
    Ok(EnrolmentCodeIssued { expires_at })
}

/// Makes a one-time enrolment code for a grant inside the caller's transaction (which also
/// holds its audit record): earlier unused codes of the grant stop working; only the code's
/// hash is stored. Returns the code and its expiry. `created_by` is the issuing account's id
/// (`system` for `init`).
pub async fn insert_enrolment_code(
    tx: &mut crate::db::Tx,
    allowed: &access::Allowed,
    grant_id: &str,
    account_id: &str,
    created_by: &str,
) -> ApiResult<(String, String)> {
    let code = crate::account::activation::new_activation_code();
    let expires_at = (Utc::now() + chrono::Duration::hours(ENROLMENT_CODE_HOURS))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    super::store_enrolment_code(
        tx,
        allowed,
        grant_id,
        account_id,
        &code,
        created_by,
        &expires_at,
    )
    .await?;
    Ok((code, expires_at))
}

/// 签发证书申领码 (security officer): the code goes to the holder through the notifier.
#[utoipa::path(post, path = "/api/v1/grants/{id}/enrolment-code", params(("id" = String, Path)),
    responses((status = 201, body = EnrolmentCodeIssued), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
async fn enrolment_code_route(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<EnrolmentCodeIssued>)> {
    let issued = issue_enrolment_code(&state, &actor, &id).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[derive(Deserialize, ToSchema)]
pub struct Enrol {
    /// 证书申领码
    pub code: String,
    /// PKCS#10 certificate request (PEM) signed by the card's key; only its public key is used
    pub csr: String,
    /// PIV attestation of the CSR's key (PEM or base64 DER): the certificate the card made for
    /// the new key in slot 9A (YubiKey: `INS F9`, P1 = 9A)
    #[serde(default)]
    pub attestation: Option<String>,
    /// The card's attestation certificate (PEM or base64 DER) that signed `attestation`
    /// (YubiKey: slot F9, object 5FFF01)
    #[serde(default)]
    pub attestation_signer: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    /// The certificate (PEM)
    pub certificate: String,
    pub serial: String,
    pub not_after: String,
}

fn bad_code() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "bad_enrolment_code",
        "证书申领码无效、已使用或已过期，请联系安全员重新签发",
    )
    .with_field("code")
}

#[derive(Deserialize, ToSchema)]
pub struct EnrolmentCheck {
    /// 证书申领码
    pub code: String,
}

/// Whom a live enrolment code is for: the grant holder and the scope organisation.
#[derive(Serialize, ToSchema)]
pub struct EnrolmentHolder {
    /// The holder's name (the certificate's CN)
    pub name: String,
    /// The scope organisation's unified code (the certificate's OU)
    pub org_code: String,
    pub org_name: Option<String>,
    /// Expiry of the code
    pub expires_at: String,
}

/// The live code's row: (code id, grant id, expiry), or `None` when the code is unknown,
/// used, revoked or expired.
async fn live_code(state: &AppState, code: &str) -> ApiResult<Option<(String, String, String)>> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT id, grant_id, expires_at FROM enrolment_codes WHERE code_hash = $1 \
         AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(enrolment_code_hash(code))
    .fetch_optional(state.db.read())
    .await?;
    Ok(row.filter(|(_, _, expires)| {
        DateTime::parse_from_rfc3339(expires).is_ok_and(|t| t > Utc::now())
    }))
}

/// 核验证书申领码: whom the code is for, without using it up, so that the agent touches the
/// card only for a code the server will accept. Throttled with enrolment (a wrong code counts
/// as a failed attempt); writes nothing else.
pub async fn check_enrolment_code(
    state: &AppState,
    client: &str,
    code: &str,
) -> ApiResult<EnrolmentHolder> {
    throttle::attempt(&state.db, "enrolment", client, check_once(state, code)).await
}

async fn check_once(state: &AppState, code: &str) -> ApiResult<EnrolmentHolder> {
    if code.trim().is_empty() {
        return Err(ApiError::field("code", "请输入证书申领码"));
    }
    let Some((_, grant_id, expires_at)) = live_code(state, code).await? else {
        return Err(bad_code());
    };
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT o.code, o.name FROM grants g JOIN orgs o ON o.id = g.org_id \
         WHERE g.id = $1 AND g.revoked_at IS NULL",
    )
    .bind(&grant_id)
    .fetch_optional(state.db.read())
    .await?;
    let Some((org_code, org_name)) = row else {
        return Err(
            ApiError::conflict("grant_revoked", "该证书申领码对应的授权已撤销").with_field("code"),
        );
    };
    let (_, subject) = super::subject_of_grant(&state.db, &grant_id).await?;
    Ok(EnrolmentHolder {
        name: subject.name,
        org_code,
        org_name: Some(org_name),
        expires_at,
    })
}

/// 核验证书申领码 (no session): whom a live enrolment code is for; the code stays unused.
#[utoipa::path(post, path = "/api/v1/enrolment/check", request_body = EnrolmentCheck, security(()),
    responses((status = 200, body = EnrolmentHolder), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn enrol_check_route(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<EnrolmentCheck>,
) -> ApiResult<Json<EnrolmentHolder>> {
    let client = conn.client_addr.ip().to_string();
    Ok(Json(
        check_enrolment_code(&state, &client, &body.code).await?,
    ))
}

/// 申领证书: with a one-time enrolment code and a CSR; the subject is the grant's holder
/// (name, ID number, scope organisation code), never the CSR's.
pub async fn enrol(state: &AppState, client: &str, body: &Enrol) -> ApiResult<Enrolled> {
    throttle::attempt(
        &state.db,
        "enrolment",
        client,
        enrol_once(state, client, body),
    )
    .await
}

async fn enrol_once(state: &AppState, client: &str, body: &Enrol) -> ApiResult<Enrolled> {
    if body.code.trim().is_empty() {
        return Err(ApiError::field("code", "请输入证书申领码"));
    }
    if body.csr.trim().is_empty() {
        return Err(ApiError::field("csr", "缺少证书请求（CSR）"));
    }
    let live = live_code(state, &body.code).await?;
    let who = Who::anonymous(client);
    let Some((code_id, grant_id, _)) = live else {
        audit::append_alone(
            &state.db,
            &who,
            Event::ok("certificate.enrol", "-")
                .outcome(Outcome::Failed)
                .with_detail("bad enrolment code"),
        )
        .await?;
        return Err(bad_code());
    };
    let (account_id, subject) = super::subject_of_grant(&state.db, &grant_id).await?;
    let verdict = super::attestation::assess(
        &state.config.data_dir,
        &state.config.file,
        &body.csr,
        body.attestation.as_deref(),
        body.attestation_signer.as_deref(),
    );
    if state.config.file.require_attestation {
        if let Some(refusal) = verdict.refusal() {
            audit::append_alone(
                &state.db,
                &who,
                Event::ok("certificate.enrol", &grant_id)
                    .outcome(Outcome::Refused)
                    .with_detail(format!(
                        "attestation required; account {account_id}; {}",
                        verdict.detail()
                    )),
            )
            .await?;
            return Err(refusal);
        }
    }
    let csr = body.csr.clone();
    let issued = with_ca(&state.db, &state.config.data_dir, |ca| {
        ca.issue_client(
            &subject,
            Some(&csr),
            dangjian_certs::DEFAULT_DAYS,
            Some(&account_id),
        )
    })
    .await?
    .map_err(certs_error)?;
    let mut tx = state.db.begin().await?;
    let claimed = sqlx::query(
        "UPDATE enrolment_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL \
         AND revoked_at IS NULL",
    )
    .bind(now_rfc3339())
    .bind(&code_id)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        drop(tx);
        let serial = issued.serial_hex.clone();
        let _ = with_ca(&state.db, &state.config.data_dir, move |ca| {
            ca.revoke(&serial, dangjian_certs::RevocationReason::Superseded)
        })
        .await;
        return Err(bad_code());
    }
    let info = record_issued(&mut tx, &issued, &account_id, Some(&grant_id), None).await?;
    let holder = Who {
        account_id: Some(account_id.clone()),
        name: subject.name.clone(),
        cert_serial: Some(info.serial_hex.clone()),
        ..who
    };
    audit::append(
        &mut tx,
        &holder,
        Event::ok("certificate.issue", &info.serial_hex).with_detail(format!(
            "enrolment for grant {grant_id}; {}",
            verdict.detail()
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(Enrolled {
        certificate: issued.cert_pem,
        serial: info.serial_hex,
        not_after: super::rfc3339(info.not_after),
    })
}

/// 申领证书 (no session): the enrolment code and the card's CSR → the certificate.
#[utoipa::path(post, path = "/api/v1/enrolment", request_body = Enrol, security(()),
    responses((status = 200, body = Enrolled), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn enrol_route(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<Enrol>,
) -> ApiResult<Json<Enrolled>> {
    let client = conn.client_addr.ip().to_string();
    Ok(Json(enrol(&state, &client, &body).await?))
}

// ---- the register, for the security officer ----------------------------------------------

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CertificateQuery {
    /// 只列出该账号的证书
    pub account_id: Option<String>,
    /// `1`: only live certificates that end within 30 days
    pub expiring: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

/// One certificate of the register.
#[derive(Serialize, ToSchema, Clone)]
pub struct CertificateItem {
    pub serial: String,
    pub fingerprint: String,
    /// The subject, ID number masked.
    pub subject: String,
    pub account_id: Option<String>,
    pub holder_name: Option<String>,
    pub issued_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub reason: Option<String>,
    /// `valid` 有效, `expiring` 即将到期, `expired` 已过期, `revoked` 已吊销
    pub state: String,
    pub state_label: String,
    pub days_left: i64,
}

/// Certificates of accounts that hold (or held) a grant in the officer's subtree.
pub async fn list_certificates(
    state: &AppState,
    actor: &Actor,
    q: &CertificateQuery,
) -> ApiResult<Page<CertificateItem>> {
    access::grant_admin(actor, &actor.org_code)?;
    let paging = Paging {
        page: q.page,
        per_page: q.per_page,
    };
    let mut where_sql = String::from(
        "EXISTS (SELECT 1 FROM grants g JOIN orgs o ON o.id = g.org_id \
         WHERE g.account_id = c.account_id AND o.code >= $1 AND o.code < $2)",
    );
    let mut binds = vec![actor.org_code.clone(), subtree_upper(&actor.org_code)];
    if let Some(a) = q.account_id.as_deref().filter(|a| !a.is_empty()) {
        binds.push(a.to_string());
        where_sql.push_str(&format!(" AND c.account_id = ${}", binds.len()));
    }
    if matches!(q.expiring.as_deref(), Some("1" | "true")) {
        let soon = (Utc::now() + chrono::Duration::days(EXPIRY_WARN_DAYS))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        binds.push(soon);
        where_sql.push_str(&format!(
            " AND c.revoked_at IS NULL AND c.expires_at < ${}",
            binds.len()
        ));
    }
    let count_sql = format!("SELECT COUNT(*) FROM certificates c WHERE {where_sql}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    for b in &binds {
        count = count.bind(b.clone());
    }
    let total = count.fetch_one(state.db.read()).await?;
    let list_sql = format!(
        "SELECT c.serial, c.fingerprint, c.subject, c.account_id, a.name, c.issued_at, \
         c.expires_at, c.revoked_at, c.reason FROM certificates c \
         LEFT JOIN accounts a ON a.id = c.account_id WHERE {where_sql} \
         ORDER BY a.sort_pinyin, a.name, c.issued_at DESC LIMIT ${} OFFSET ${}",
        binds.len() + 1,
        binds.len() + 2
    );
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let mut list = sqlx::query_as::<_, Row>(&list_sql);
    for b in &binds {
        list = list.bind(b.clone());
    }
    let rows = list
        .bind(paging.per_page())
        .bind(paging.offset())
        .fetch_all(state.db.read())
        .await?;
    let now = Utc::now();
    let items = rows
        .into_iter()
        .map(|r| {
            let days_left = DateTime::parse_from_rfc3339(&r.6)
                .map(|t| (t.with_timezone(&Utc) - now).num_days())
                .unwrap_or(0);
            let ended = DateTime::parse_from_rfc3339(&r.6).is_ok_and(|t| t <= now);
            let (s, label) = if r.7.is_some() {
                ("revoked", "已吊销")
            } else if ended {
                ("expired", "已过期")
            } else if days_left < EXPIRY_WARN_DAYS {
                ("expiring", "即将到期")
            } else {
                ("valid", "有效")
            };
            CertificateItem {
                serial: r.0,
                fingerprint: r.1,
                subject: r.2,
                account_id: r.3,
                holder_name: r.4,
                issued_at: r.5,
                expires_at: r.6,
                revoked_at: r.7,
                reason: r.8,
                state: s.to_string(),
                state_label: label.to_string(),
                days_left,
            }
        })
        .collect();
    Ok(Page::new(items, total, &paging))
}

/// 证书管理: the register of card certificates in the officer's scope.
#[utoipa::path(get, path = "/api/v1/certificates", params(CertificateQuery),
    responses((status = 200, body = Page<CertificateItem>), (status = 403, body = crate::error::ErrorBody)))]
async fn list_route(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<CertificateQuery>,
) -> ApiResult<Page<CertificateItem>> {
    Paging::check(q.page, q.per_page)?;
    list_certificates(&state, &actor, &q).await
}

#[derive(Deserialize, ToSchema, Default)]
pub struct Revoke {
    /// `unspecified` (default), `key_compromise`, `affiliation_changed`, `superseded`,
    /// `cessation_of_operation`
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    pub serial: String,
    pub revoked_at: String,
    pub reason: String,
    /// Sessions of the certificate that ended.
    pub sessions_ended: u64,
}

/// 吊销证书: records the revocation with the CA, publishes a new CRL, ends the certificate's
/// sessions and reloads the listener's CRL at once.
pub async fn revoke_certificate(
    state: &AppState,
    actor: &Actor,
    serial: &str,
    reason: Option<&str>,
) -> ApiResult<Revoked> {
    if actor.role != Role::Security {
        return Err(ApiError::forbidden("只有安全员可以吊销证书（三员分立）"));
    }
    let serial = crate::tls::normalize_serial(serial).map_err(|_| ApiError::not_found("证书"))?;
    let reason = parse_reason(reason)?;
    let row: Option<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT c.id, c.fingerprint, c.account_id, c.revoked_at FROM certificates c \
         WHERE c.serial = $1 AND EXISTS (SELECT 1 FROM grants g JOIN orgs o ON o.id = g.org_id \
         WHERE g.account_id = c.account_id AND o.code >= $2 AND o.code < $3)",
    )
    .bind(&serial)
    .bind(&actor.org_code)
    .bind(subtree_upper(&actor.org_code))
    .fetch_optional(state.db.read())
    .await?;
    let Some((id, fingerprint, account_id, revoked_at)) = row else {
        return Err(ApiError::not_found("证书"));
    };
    if account_id.as_deref() == Some(actor.account_id.as_str()) {
        return Err(ApiError::forbidden("不能吊销自己的证书"));
    }
    // The officer reaches the certificate through its account: every live grant of that
    // account must be in the officer's subtree (none left: the query above found a grant of
    // it in the subtree).
    let codes = match account_id.as_deref() {
        Some(account) => crate::account::store::live_grant_codes(state.db.read(), account).await?,
        None => Vec::new(),
    };
    let allowed = if codes.is_empty() {
        access::grant_admin(actor, &actor.org_code)?
    } else {
        access::account_admin(actor, &codes)?
    };
    if revoked_at.is_some() {
        return Err(ApiError::conflict("already_revoked", "该证书已吊销"));
    }
    let s = serial.clone();
    with_ca(&state.db, &state.config.data_dir, move |ca| {
        match ca.revoke(&s, reason) {
            Ok(()) => {}
            // Revoked with the CA already (e.g. by the command line): publish all the same.
            Err(dangjian_certs::Error::Invalid(m)) if m.contains("already") => {}
            Err(e) => return Err(e),
        }
        ca.crl(dangjian_certs::DEFAULT_CRL_HOURS)
    })
    .await?
    .map_err(ApiError::internal)?;
    let now = now_rfc3339();
    let mut tx = state.db.begin().await?;
    let ended =
        super::mark_revoked(&mut tx, &allowed, &id, &fingerprint, reason.as_str(), &now).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("certificate.revoke", &serial).with_detail(format!(
            "{}; account {}; {ended} sessions ended",
            reason.as_str(),
            account_id.as_deref().unwrap_or("-")
        )),
    )
    .await?;
    tx.commit().await?;
    if let Some(pki) = crate::tls::pki() {
        super::reload_crl(&state.db, &pki).await;
    }
    Ok(Revoked {
        serial,
        revoked_at: now,
        reason: reason.as_str().to_string(),
        sessions_ended: ended,
    })
}

/// 吊销证书 (security officer): a new CRL is published and loaded at once.
#[utoipa::path(post, path = "/api/v1/certificates/{serial}/revoke", params(("serial" = String, Path)),
    request_body = Revoke,
    responses((status = 200, body = Revoked), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn revoke_route(
    State(state): State<AppState>,
    actor: Actor,
    Path(serial): Path<String>,
    ApiJson(body): ApiJson<Revoke>,
) -> ApiResult<Json<Revoked>> {
    Ok(Json(
        revoke_certificate(&state, &actor, &serial, body.reason.as_deref()).await?,
    ))
}

/// The CRL at its distribution point (DER), public.
pub async fn crl_file() -> Response {
    match crate::tls::pki().and_then(|p| p.crl_der()) {
        Some(der) => (
            [(CONTENT_TYPE, "application/pkix-crl")],
            der.as_ref().clone(),
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "证书吊销列表尚未发布")
            .into_response(),
    }
}

/// The label of a reason, for pages.
pub fn reason_text(reason: Option<&str>) -> &'static str {
    reason.map(reason_label).unwrap_or("")
}
