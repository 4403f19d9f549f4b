//! 安全审计 pages for auditors: 审计日志查询 (filters, paged table, export links) and
//! 校验审计链 (the chain check). Both call the same functions as the JSON API.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{html, Markup};

use super::orgs::pager;
use super::{
    date_field, error_page, page, page_with_status, select_field, text_field, FormErrors, PageActor,
};
use crate::access::{self, Actor};
use crate::audit::query::{
    self, action_label, beijing_time, outcome_label, role_label, AuditFilter, AuditItem, AuditQuery,
};
use crate::audit::{Anchor, VerifyReport};
use crate::state::AppState;

pub fn router() -> super::PageRouter {
    super::PageRouter::new()
        .route("/audit", get(search_page))
        .route("/audit/verify", get(verify_page))
}

fn crumbs(current: &str) -> Vec<(String, String)> {
    vec![
        ("/audit".to_string(), "安全审计".to_string()),
        (String::new(), current.to_string()),
    ]
}

/// The filters as a query string (without `?`), for the pager and the export links.
fn filter_query(f: &AuditFilter) -> String {
    let pairs: Vec<(&str, &str)> = [
        ("actor", &f.actor),
        ("action", &f.action),
        ("outcome", &f.outcome),
        ("since", &f.since),
        ("until", &f.until),
        ("target", &f.target),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| (k, s))
    })
    .collect();
    serde_html_form::to_string(&pairs).unwrap_or_default()
}

fn v(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

fn filter_form(q: &AuditQuery, errors: &FormErrors) -> Markup {
    let outcomes = vec![
        ("success".to_string(), "成功".to_string()),
        ("refused".to_string(), "拒绝".to_string()),
        ("failed".to_string(), "失败".to_string()),
    ];
    html! {
        form #audit-search.form.search method="get" action="/audit" {
            (text_field("actor", "操作人（姓名或账号）", v(&q.actor), false, errors))
            div.field.has-error[errors.fields.contains_key("action")] {
                label for="action" { "操作类型" }
                input #action type="text" name="action" value=(v(&q.action)) list="audit-actions"
                    placeholder="如 session.sign_in、member.view";
                datalist #audit-actions {
                    @for (code, label) in query::ACTIONS {
                        option value=(code) { (label) }
                    }
                }
                (errors.at("action"))
            }
            (select_field("outcome", "结果", &outcomes, v(&q.outcome), false, errors))
            (date_field("since", "开始日期", v(&q.since), false, errors))
            (date_field("until", "结束日期", v(&q.until), false, errors))
            (text_field("target", "对象", v(&q.target), false, errors))
            div.actions {
                button.primary type="submit" { "查询" }
                a.button href="/audit" { "重置" }
            }
        }
    }
}

fn table(items: &[AuditItem]) -> Markup {
    html! {
        @if items.is_empty() {
            p.muted { "没有符合条件的审计记录" }
        } @else {
            table.list #audit-table {
                thead { tr {
                    th { "序号" } th { "时间" } th { "操作人" } th { "角色" } th { "组织" }
                    th { "客户端地址" } th { "证书序列号" } th { "操作" } th { "对象" } th { "结果" } th { "说明" }
                } }
                tbody {
                    @for i in items {
                        tr data-seq=(i.seq) {
                            td.num { (i.seq) }
                            td { (beijing_time(&i.at)) }
                            td { (i.actor_name) }
                            td { (role_label(&i.role)) }
                            td { (i.org_name.as_deref().or(i.org_id.as_deref()).unwrap_or("")) }
                            td { (i.client_addr) }
                            td { (i.cert_serial.as_deref().unwrap_or("")) }
                            td { (action_label(&i.action)) }
                            td { (i.target) }
                            td {
                                @if i.outcome == "success" { (outcome_label(&i.outcome)) }
                                @else { span.badge { (outcome_label(&i.outcome)) } }
                            }
                            td { (i.detail) }
                        }
                    }
                }
            }
        }
    }
}

async fn search_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<AuditQuery>,
    Query(print): Query<super::print::PrintQuery>,
) -> Response {
    if let Err(e) = access::audit_read(&actor) {
        return error_page(Some(&actor), e);
    }
    let filter = q.filter();
    let qs = filter_query(&filter);
    let printing = print.on();
    let found = if printing {
        let (q, db, actor) = (&q, &state.db, &actor);
        super::print::all_rows(|p| async move {
            let chunk = AuditQuery {
                actor: q.actor.clone(),
                action: q.action.clone(),
                outcome: q.outcome.clone(),
                since: q.since.clone(),
                until: q.until.clone(),
                target: q.target.clone(),
                page: p.page,
                per_page: p.per_page,
            };
            query::search(db, actor, &chunk).await
        })
        .await
    } else {
        query::search(&state.db, &actor, &q).await
    };
    let (errors, listing, status) = match found {
        Ok(p) => {
            let listing = html! {
                @if printing {
                    (super::print::list_head("审计日志", p.items.len(), p.total))
                }
                (table(&p.items))
                @if !printing { (pager(&format!("/audit?{qs}"), p.page, p.per_page, p.total)) }
            };
            (FormErrors::default(), listing, StatusCode::OK)
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            (FormErrors::from_api(&e), html! {}, StatusCode::BAD_REQUEST)
        }
        Err(e) => return error_page(Some(&actor), e),
    };
    let export = |format: &str| {
        if qs.is_empty() {
            format!("/api/v1/audit/export?format={format}")
        } else {
            format!("/api/v1/audit/export?format={format}&{qs}")
        }
    };
    page_with_status(
        status,
        &actor,
        "审计日志查询",
        &crumbs("审计日志查询"),
        None,
        html! {
            div.panel {
                h2 { "审计日志查询" }
                p.muted { "审计记录只能查询和导出，任何人都不能修改或删除；导出的文件带有导出人和导出时间水印，导出操作本身也记入审计日志。" }
                (errors.banner())
                (filter_form(&q, &errors))
                div.toolbar {
                    a.button #export-xlsx href=(export("xlsx")) { "导出Excel" }
                    a.button #export-csv href=(export("csv")) { "导出CSV" }
                    a.button #verify-chain href="/audit/verify" { "校验审计链" }
                    @if !printing {
                        (super::print::button(&if qs.is_empty() { "/audit?print=1".to_string() } else { format!("/audit?{qs}&print=1") }))
                    }
                }
                (listing)
            }
        },
    )
}

fn anchor_info(anchor: &Option<Anchor>) -> Markup {
    html! {
        @if let Some(a) = anchor {
            p {
                "已按保存期限清理 " (a.pruned_count) " 条早于 " (beijing_time(&a.cutoff)) " 的记录（清理时间 "
                (beijing_time(&a.at)) "）。校验从清理锚点（第 " (a.seq) " 条记录的哈希 "
                code { (a.hash) } "）开始。"
            }
        }
    }
}

fn verify_result(actor: &Actor, r: &VerifyReport) -> Response {
    page(
        actor,
        "校验审计链",
        &crumbs("校验审计链"),
        None,
        html! {
            div.panel {
                h2 { "校验审计链" }
                @if r.intact {
                    div.alert.alert-info #verify-result role="status" data-intact="true" {
                        "审计链完整：共校验 " (r.records) " 条记录，每条记录都与前一条记录的哈希相连，未发现篡改或缺失。"
                    }
                } @else {
                    div.alert.alert-error #verify-result role="alert" data-intact="false" {
                        "审计链已被破坏：第 " (r.first_broken.unwrap_or_default())
                        " 条记录被篡改或缺失（此前已校验 " (r.records) " 条）。请立即报告安全管理部门，并保留数据库现场。"
                    }
                }
                (anchor_info(&r.anchor))
                p { a.button href="/audit" { "返回审计日志查询" } }
            }
        },
    )
}

async fn verify_page(State(state): State<AppState>, PageActor(actor): PageActor) -> Response {
    match crate::audit::routes::verify(&state.db, &actor).await {
        Ok(r) => verify_result(&actor, &r),
        Err(e) => error_page(Some(&actor), e),
    }
}
