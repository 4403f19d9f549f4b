//! 采集表 collection forms (issue 16 item 5): printable A4 pages laid out like the seeds'
//! 党员信息采集表 and 党组织信息采集表 — filled from a record (`/members/{id}/form`,
//! `/orgs/{id}/form`) or blank for collecting on paper (`/forms/member`, `/forms/org`).
//!
//! A member's form reads the record as the member page does: masked unless `?unmask=1`, and
//! every reading audited (`member.view`); an organisation's form reads it like the
//! organisation page (contact phone masked unless unmasked, which is audited).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use maud::{html, Markup};
use serde::Deserialize;

use crate::access::{self, Actor};
use crate::error::ApiError;
use crate::member::dict::{self, CATEGORIES, JOBS};
use crate::member::MemberView;
use crate::org::OrgView;
use crate::state::AppState;
use crate::web::{or_error, page, PageActor, PageRouter};

pub fn pages() -> PageRouter {
    PageRouter::new()
        .route("/members/{id}/form", get(member_form))
        .route("/orgs/{id}/form", get(org_form))
        .route("/forms/member", get(blank_member_form))
        .route("/forms/org", get(blank_org_form))
}

#[derive(Debug, Default, Deserialize)]
pub struct FormQuery {
    pub unmask: Option<String>,
}

fn unmasked(q: &FormQuery) -> bool {
    matches!(q.unmask.as_deref(), Some("1") | Some("true"))
}

fn sex_label(code: &str) -> &'static str {
    match code {
        "male" => "男",
        "female" => "女",
        _ => "",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "是"
    } else {
        "否"
    }
}

/// The toolbar above a form (hidden in print).
fn toolbar(back: Option<(String, &str)>, unmask: Option<(String, bool)>) -> Markup {
    html! {
        div.toolbar {
            button.primary.print-button type="button" data-print="1" { "打印" }
            @if let Some((href, masked)) = unmask {
                @if masked {
                    a.button #unmask href={(href) "?unmask=1"} { "显示完整信息" }
                } @else {
                    a.button href=(href) { "隐藏完整信息" }
                }
            }
            @if let Some((href, text)) = back { a.button href=(href) { (text) } }
        }
        p.muted.print-screen-note { "打印时请在浏览器“更多设置”中去掉“页眉和页脚”，纸张选 A4。" }
    }
}

/// The 党员信息采集表 grid, filled from `m` or blank.
fn member_grid(m: Option<&MemberView>, org_name: &str) -> Markup {
    let v = |f: &dyn Fn(&MemberView) -> String| m.map(f).unwrap_or_default();
    html! {
        div.collection-form #member-form {
            h2 { "党员信息采集表" }
            div.form-meta { span { "所在党组织：" (org_name) } span { "填表日期：　　年　　月　　日" } }
            table.form-grid {
                tr {
                    th { "姓名" } td { (v(&|m| m.name.clone())) }
                    th { "性别" } td { (v(&|m| sex_label(&m.sex).to_string())) }
                    td.photo rowspan="4" { "照片" br; "（近期一寸免冠）" }
                }
                tr {
                    th { "民族" } td { (v(&|m| m.ethnicity_name.clone())) }
                    th { "出生日期" } td { (v(&|m| m.birth_date.clone().unwrap_or_else(|| m.age.map(|a| format!("（{a}岁）")).unwrap_or_default()))) }
                }
                tr {
                    th { "公民身份证号" } td colspan="3" #form-id-number { (v(&|m| m.id_number.clone())) }
                }
                tr {
                    th { "学历" } td { (v(&|m| m.education_name.clone())) }
                    th { "人员类别" } td { (v(&|m| dict::label(&CATEGORIES, &m.category).unwrap_or("").to_string())) }
                }
                tr {
                    th { "加入党组织日期" } td { (v(&|m| m.joined_on.clone())) }
                    th { "转为正式党员日期" } td colspan="2" { (v(&|m| m.full_on.clone().unwrap_or_default())) }
                }
                tr {
                    th { "所在党支部" } td colspan="4" { (v(&|m| m.branch_name.clone())) }
                }
                tr {
                    th { "工作岗位" } td { (v(&|m| dict::label(&JOBS, &m.job).unwrap_or("").to_string())) }
                    th { "技术职称" } td colspan="2" { (v(&|m| m.title.clone())) }
                }
                tr {
                    th { "新社会阶层类型" } td { (v(&|m| m.new_social_stratum.clone())) }
                    th { "籍贯" } td colspan="2" { (v(&|m| m.origin.clone())) }
                }
                tr {
                    th { "联系电话" } td { (v(&|m| m.phone.clone())) }
                    th { "注册手机号" } td colspan="2" { (v(&|m| m.registered_phone.clone().unwrap_or_default())) }
                }
                tr { th { "家庭住址" } td colspan="4" { (v(&|m| m.address.clone())) } }
                tr {
                    th { "是否失联党员" } td { (v(&|m| yes_no(m.lost_contact).to_string())) }
                    th { "失去联系日期" } td colspan="2" { (v(&|m| m.lost_contact_on.clone().unwrap_or_default())) }
                }
                tr {
                    th { "是否流动党员" } td { (v(&|m| yes_no(m.floating).to_string())) }
                    th { "外出流向" } td colspan="2" { (v(&|m| m.floating_to.clone().unwrap_or_default())) }
                }
                tr.tall { th { "本人确认" } td colspan="4" { "以上信息经本人核对无误。　　　　本人签字：　　　　　　　　年　　月　　日" } }
                tr.tall { th { "党支部意见" } td colspan="4" { "（盖章）　　　　　　　　　　　　　　　　　　　　年　　月　　日" } }
            }
            p.form-note { "注：公民身份证号只能填写18位，最后一位可以是字母X；性别、出生日期应与身份证号一致。本表签字确认、加盖公章后扫描上传至党员信息。" }
        }
    }
}

/// The 党组织信息采集表 grid, filled from `o` or blank.
fn org_grid(o: Option<&OrgView>, parent_name: &str) -> Markup {
    let v = |f: &dyn Fn(&OrgView) -> String| o.map(f).unwrap_or_default();
    html! {
        div.collection-form #org-form {
            h2 { "党组织信息采集表" }
            div.form-meta { span { "上级党组织：" (parent_name) } span { "填表日期：　　年　　月　　日" } }
            table.form-grid {
                tr { th { "党组织全称" } td colspan="3" { (v(&|o| o.name.clone())) } }
                tr {
                    th { "简称" } td { (v(&|o| o.short_name.clone())) }
                    th { "党组织统一编码" } td { (v(&|o| o.code.clone())) }
                }
                tr {
                    th { "组织类别" } td { (v(&|o| o.category_name.clone())) }
                    th { "级别" } td { (v(&|o| crate::web::orgs::level_label(o.level.as_deref()).to_string())) }
                }
                tr {
                    th { "书记" } td { (v(&|o| o.secretary.clone())) }
                    th { "联系人" } td { (v(&|o| o.contact_name.clone())) }
                }
                tr {
                    th { "联系电话" } td #form-contact-phone { (v(&|o| o.contact_phone.clone())) }
                    th { "党组织隶属关系" } td { (v(&|o| crate::org::rules::subordination_label(&o.subordination))) }
                }
                tr {
                    th { "批准建立日期" } td { (v(&|o| o.founded_on.clone().unwrap_or_default())) }
                    th { "所在单位情况" } td { (v(&|o| crate::web::orgs::unit_mode_label(o.unit_mode.as_deref()).to_string())) }
                }
                tr {
                    th { "党组织工作分类" } td { (v(&|o| o.work_category.as_deref().and_then(crate::unit::category_label).unwrap_or("").to_string())) }
                    th { "具有发展党员审批权限" } td { (v(&|o| yes_no(o.may_approve_development).to_string())) }
                }
                tr { th { "所在单位名称" } td colspan="3" {} }
                tr { th { "单位地址" } td colspan="3" {} }
                tr.tall { th { "备注" } td colspan="3" {} }
                tr.tall { th { "上级党组织意见" } td colspan="3" { "（盖章）　　　　　　　　　　　　　　　　年　　月　　日" } }
            }
            p.form-note { "注：本表由党组织填写，经上级党组织审核盖章后录入党组织信息。" }
        }
    }
}

async fn member_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<FormQuery>,
) -> Response {
    let r: Result<Response, ApiError> = async {
        let m = crate::member::routes::view(&state.db, &actor, &id, unmasked(&q)).await?;
        let mut crumbs = crate::web::org_crumbs(&state, &actor, &m.branch_id).await?;
        crumbs.push((format!("/members/{}", m.id), m.name.clone()));
        crumbs.push((String::new(), "党员信息采集表".into()));
        let href = format!("/members/{}/form", m.id);
        Ok(page(
            &actor,
            "党员信息采集表",
            &crumbs,
            Some(&m.branch_id),
            html! {
                (toolbar(Some((format!("/members/{}", m.id), "返回党员信息")), Some((href, m.masked))))
                @if m.masked {
                    p.muted.print-screen-note { "公民身份证号和电话号码已隐藏部分内容；显示完整信息将记入审计日志。" }
                }
                (member_grid(Some(&m), &m.branch_name))
            },
        ))
    }
    .await;
    or_error(&actor, r)
}

async fn org_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<FormQuery>,
) -> Response {
    let r: Result<Response, ApiError> = async {
        let row = crate::org::routes::load(&state.db, &id).await?;
        access::business_read(&actor)?;
        access::org_form(&actor, &row.code)?;
        let o = crate::org::routes::view(&state.db, &actor, &id, unmasked(&q)).await?;
        let parent_name = match &o.parent_id {
            Some(p) => crate::org::store::get(state.db.read(), p)
                .await?
                .map(|p| p.name)
                .unwrap_or_default(),
            None => String::new(),
        };
        let mut crumbs = crate::web::org_crumbs(&state, &actor, &o.id).await?;
        crumbs.push((String::new(), "党组织信息采集表".into()));
        let href = format!("/orgs/{}/form", o.id);
        Ok(page(
            &actor,
            "党组织信息采集表",
            &crumbs,
            Some(&o.id),
            html! {
                (toolbar(Some((format!("/orgs/{}", o.id), "返回党组织信息")), Some((href, o.masked))))
                (org_grid(Some(&o), &parent_name))
            },
        ))
    }
    .await;
    or_error(&actor, r)
}

fn blank(actor: &Actor, title: &str, grid: Markup) -> Result<Response, ApiError> {
    access::business_read(actor)?;
    let crumbs = vec![(String::new(), title.to_string())];
    Ok(page(
        actor,
        title,
        &crumbs,
        None,
        html! {
            (toolbar(None, None))
            (grid)
        },
    ))
}

async fn blank_member_form(PageActor(actor): PageActor) -> Response {
    let r = blank(&actor, "党员信息采集表（空白）", member_grid(None, ""));
    or_error(&actor, r)
}

async fn blank_org_form(PageActor(actor): PageActor) -> Response {
    let r = blank(&actor, "党组织信息采集表（空白）", org_grid(None, ""));
    or_error(&actor, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_forms_have_every_heading() {
        let m = member_grid(None, "").into_string();
        for h in [
            "党员信息采集表",
            "公民身份证号",
            "加入党组织日期",
            "党支部意见",
        ] {
            assert!(m.contains(h), "{h}");
        }
        let o = org_grid(None, "").into_string();
        for h in ["党组织信息采集表", "党组织全称", "上级党组织意见"] {
            assert!(o.contains(h), "{h}");
        }
    }
}
