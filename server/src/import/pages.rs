//! The page 导入汇总表 (`/import/members`): download the template, upload a filled sheet into
//! an organisation, follow the validation's progress, read the row report (行号, 字段, 原因),
//! then 确认导入 or 取消.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{html, Markup};
use serde::Deserialize;

use super::{store, ImportState, ImportView};
use crate::access::{self, Actor, Reach};
use crate::attachment::routes::read_fields;
use crate::audit::query::beijing_time;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{csrf_field, error_page, page, CsrfForm, PageActor, PageRouter};

pub const PATH: &str = "/import/members";

pub fn router() -> PageRouter {
    PageRouter::new()
        .route(
            PATH,
            get(index)
                .post(upload)
                .layer(DefaultBodyLimit::max(super::MAX_UPLOAD_BYTES)),
        )
        .route("/import/members/{id}", get(show))
        .route("/import/members/{id}/confirm", post(confirm))
        .route("/import/members/{id}/cancel", post(cancel))
}

fn crumbs(extra: Option<&str>) -> Vec<(String, String)> {
    let mut c = vec![("/".to_string(), "首页".to_string())];
    match extra {
        None => c.push((String::new(), "导入汇总表".to_string())),
        Some(t) => {
            c.push((PATH.to_string(), "导入汇总表".to_string()));
            c.push((String::new(), t.to_string()));
        }
    }
    c
}

#[derive(Deserialize, Default)]
struct IndexQuery {
    org_id: Option<String>,
}

async fn index(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<IndexQuery>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        access::business_read(&actor)?;
        let org_id = q.org_id.unwrap_or_else(|| actor.org_id.clone());
        let org = crate::org::routes::load(&state.db, &org_id).await?;
        access::org(&actor, &org.code, Reach::Subtree)?;
        let recent = store::recent(&state.db, &actor, 20).await?;
        let body = html! {
            div.panel #import-upload {
                h2 { "导入党员信息汇总表" }
                p { "第一步：下载汇总表模板，每行填写一名党员（模板中“填写说明”工作表列出各列的要求）。" }
                p { a.button #import-template href="/api/v1/import/members/template.xlsx" { "下载汇总表模板" } }
                p { "第二步：上传填好的汇总表。系统逐行校验并列出每一行的全部问题；确认导入前不会写入任何党员。" }
                form #import-form method="post" action=(PATH) enctype="multipart/form-data" {
                    (csrf_field(&actor))
                    input type="hidden" name="org_id" value=(org.id);
                    p { "导入到：" strong { (org.name) } "（“党组织代码”列须为其下的党支部）" }
                    label for="import-file" { "选择汇总表" }
                    input #import-file type="file" name="file"
                        accept=".xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" required;
                    button.primary #import-submit type="submit" { "上传并校验" }
                }
            }
            div.panel {
                h3 { "导入记录" }
                @if recent.is_empty() {
                    p.muted { "暂无导入记录" }
                } @else {
                    table.list #import-list {
                        thead { tr { th { "文件" } th { "导入党组织" } th { "状态" } th { "总行数" } th { "通过" } th { "有误" } th { "上传时间" } } }
                        tbody {
                            @for (r, name) in &recent {
                                tr {
                                    td { a href={"/import/members/" (r.id)} { (r.file_name) } }
                                    td { (name) }
                                    td { (r.state().label()) }
                                    td { (r.total_rows) }
                                    td { (r.good_rows) }
                                    td { (r.bad_rows) }
                                    td { (beijing_time(&r.created_at)) }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(page(&actor, "导入汇总表", &crumbs(None), Some(&org.id), body))
    }
    .await;
    result.unwrap_or_else(|e| error_page(Some(&actor), e))
}

async fn upload(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        access::business_read(&actor)?;
        let mut fields = read_fields(multipart).await?;
        if fields.get("csrf") != Some(actor.csrf_token.as_str()) {
            return Err(ApiError::forbidden(
                "表单已失效（防伪令牌不符），请返回刷新页面后重新提交",
            ));
        }
        let id = super::routes::start_upload(&state, &actor, &mut fields).await?;
        Ok(Redirect::to(&format!("/import/members/{id}")).into_response())
    }
    .await;
    result.unwrap_or_else(|e| error_page(Some(&actor), e))
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    notice: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    match store::view(&state.db, &actor, &id).await {
        Ok(v) => page(
            &actor,
            "导入汇总表",
            &crumbs(Some(&v.file_name)),
            Some(&v.org_id),
            report(&actor, &v, q.notice.as_deref()),
        ),
        Err(e) => error_page(Some(&actor), e),
    }
}

/// The state of an import: progress, counts, the row report and the buttons.
fn report(actor: &Actor, v: &ImportView, notice: Option<&str>) -> Markup {
    html! {
        div.panel #import-report data-state=(v.state.as_str()) {
            h2 { "导入汇总表：" (v.file_name) }
            @if notice == Some("confirmed") {
                div.alert.alert-info role="status" { "已导入 " (v.good_rows) " 名党员" }
            }
            @if notice == Some("cancelled") {
                div.alert.alert-info role="status" { "已取消本次导入，未写入任何党员" }
            }
            p { "导入到：" (v.org_name) " · 状态：" strong #import-state { (v.state_label) } }
            @match v.state {
                ImportState::Validating => {
                    p { "正在校验…… " (v.done_rows) " / " (v.total_rows) " 行" }
                    // app.js reloads the page while `data-import-progress` is on it.
                    progress #import-progress data-import-progress="1"
                        value=(v.done_rows) max=(v.total_rows.max(1)) {}
                }
                ImportState::Failed => {
                    div.alert.alert-error role="alert" { (v.message.clone().unwrap_or_default()) }
                }
                _ => {
                    p #import-counts {
                        "共 " (v.total_rows) " 行：校验通过 " strong { (v.good_rows) } " 行，有误 "
                        strong { (v.bad_rows) } " 行。"
                        @if v.state == ImportState::Pending { "确认导入时只写入校验通过的行。" }
                    }
                }
            }
            @if !v.problems.is_empty() {
                h3 { "有误的行" }
                table.list #import-problems {
                    thead { tr { th { "行号" } th { "字段" } th { "原因" } } }
                    tbody {
                        @for p in &v.problems {
                            tr { td { (p.row) } td { (p.field) } td { (p.reason) } }
                        }
                    }
                }
            }
            @if v.state == ImportState::Pending {
                div.actions {
                    @if v.good_rows > 0 {
                        form.inline method="post" action={"/import/members/" (v.id) "/confirm"}
                            data-confirm={"确定导入校验通过的 " (v.good_rows) " 名党员吗？"} {
                            (csrf_field(actor))
                            button.primary #import-confirm type="submit" { "确认导入" }
                        }
                    }
                    form.inline method="post" action={"/import/members/" (v.id) "/cancel"} {
                        (csrf_field(actor))
                        button #import-cancel type="submit" { "取消" }
                    }
                }
            }
            @if v.state == ImportState::Confirmed {
                p { a #import-members href={"/orgs/" (v.org_id) "?tab=members&include_sub=1"} { "查看党员" } }
            }
            p { a href={(PATH) "?org_id=" (v.org_id)} { "返回导入汇总表" } }
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<Empty>,
) -> Response {
    match store::confirm(&state.db, &f.actor, &id).await {
        Ok(_) => Redirect::to(&format!("/import/members/{id}?notice=confirmed")).into_response(),
        Err(e) => error_page(Some(&f.actor), e),
    }
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<Empty>,
) -> Response {
    match store::cancel(&state.db, &f.actor, &id).await {
        Ok(()) => Redirect::to(&format!("/import/members/{id}?notice=cancelled")).into_response(),
        Err(e) => error_page(Some(&f.actor), e),
    }
}
