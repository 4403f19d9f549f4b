//! 修改密码: the change-password page, linked from the header of every page. A session whose
//! account still has the one-time password from `init` is sent here by `PageActor` until the
//! password is changed.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::{csrf_field, error_page, page_with_status, CsrfForm, FormErrors, PageActor};
use crate::access::Actor;
use crate::account::change_password::{self as ops, ChangePassword};
use crate::state::AppState;

/// The path of the page (also the one page a session with a one-time password may reach).
pub const PATH: &str = "/account/password";

pub fn router() -> super::PageRouter {
    super::PageRouter::new().route(PATH, get(form).post(submit))
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

fn password_field(name: &str, label: &str, errors: &FormErrors) -> maud::Markup {
    html! {
        div.field.has-error[errors.fields.contains_key(name)] {
            label for=(name) { span.req { "*" } (label) }
            input type="password" id=(name) name=(name) autocomplete=(if name == "old_password" { "current-password" } else { "new-password" });
            (errors.at(name))
        }
    }
}

fn render(actor: &Actor, errors: &FormErrors, done: bool, status: StatusCode) -> Response {
    let crumbs = vec![(String::new(), "修改密码".to_string())];
    page_with_status(
        status,
        actor,
        "修改密码",
        &crumbs,
        None,
        html! {
            div.panel.password-panel {
                h2 { "修改密码" }
                @if done {
                    div.alert.alert-info role="status" #password-changed {
                        "密码已修改。您在其他设备上的登录已全部退出。"
                        a href="/" { "返回首页" }
                    }
                } @else if actor.must_change_password {
                    div.alert.alert-warn role="note" #first-sign-in {
                        "您正在使用初始密码登录。为保障账号安全，请先修改密码，修改后方可办理业务。"
                    }
                }
                p.muted { "新密码长度为8至18位，须同时包含大写字母、小写字母和数字，且不能与原密码相同。修改后，本账号在其他设备上的登录将全部退出；修改记入审计日志。" }
                (errors.banner())
                form #password-form.form method="post" action=(PATH) autocomplete="off" {
                    (csrf_field(actor))
                    (password_field("old_password", "原密码", errors))
                    (password_field("new_password", "新密码", errors))
                    (password_field("new_password_again", "确认新密码", errors))
                    div.actions {
                        button.primary type="submit" { "确认修改" }
                        @if !actor.must_change_password { a.button href="/" { "取消" } }
                    }
                }
            }
        },
    )
}

async fn form(PageActor(actor): PageActor, Query(q): Query<DoneQuery>) -> Response {
    let done = q.done.as_deref() == Some("1") && !actor.must_change_password;
    render(&actor, &FormErrors::default(), done, StatusCode::OK)
}

async fn submit(State(state): State<AppState>, f: CsrfForm<ChangePassword>) -> Response {
    let actor = f.actor;
    match ops::change(&state.db, &actor, &f.form).await {
        Ok(_) => Redirect::to(&format!("{PATH}?done=1")).into_response(),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            render(&actor, &FormErrors::from_api(&e), false, e.status)
        }
        Err(e) if e.status == StatusCode::LOCKED => {
            // The account is locked and every session ended: back to the sign-in page.
            error_page(None, e)
        }
        Err(e) => error_page(Some(&actor), e),
    }
}
