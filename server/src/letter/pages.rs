//! The printable letter (A4, the traditional layout of 中国共产党党员组织关系介绍信 with its
//! 第二联 and the receipt stub 回执联 below a cut line) and the public verification page. Both
//! are standalone documents with the stylesheet [`super::routes::STYLESHEET_PATH`] (no inline
//! style or script: the CSP allows none) and the QR code as inline SVG.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::routes::{Verdict, STYLESHEET_PATH};
use super::{date_parts, LetterFields, LetterRow, Status};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The QR code of `text` as an inline SVG element (scaled by the stylesheet).
pub fn qr_svg(text: &str) -> ApiResult<Markup> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(ApiError::internal)?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(160, 160)
        .quiet_zone(true)
        .build();
    // The renderer starts with an XML declaration, which has no place inside HTML.
    let start = svg.find("<svg").unwrap_or(0);
    Ok(PreEscaped(svg[start..].to_string()))
}

/// A value written on a blank of the form: underlined.
fn blank(value: &str) -> Markup {
    html! { span.fill { (value) } }
}

/// The letter as a printable page (the caller checks access; the page holds the full ID
/// number, as the paper letter does).
pub fn letter_page(row: &LetterRow, state: &AppState) -> ApiResult<Markup> {
    let _ = state;
    let f = row.fields()?;
    let qr = qr_svg(row.verify_url())?;
    Ok(html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "党员组织关系介绍信 第" (row.number()) "号" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
            }
            body.letter-body {
                main.sheet {
                    (letter_part(row, &f, qr))
                    div.cut { span { "✂ 沿此线剪开" } }
                    (receipt_part(row, &f))
                }
            }
        }
    })
}

fn letter_part(row: &LetterRow, f: &LetterFields, qr: Markup) -> Markup {
    let (iy, im, id) = date_parts(row.issue_date());
    let (dy, dm, _) = date_parts(&f.dues_paid_to);
    html! {
        section.part.letter {
            div.seam { "加盖骑缝章" }
            div.content {
            div.qr {
                (qr)
                div.qr-note { "扫码核验" }
            }
            h1 { "中国共产党党员组织关系介绍信" }
            p.number { "第" span.num { (row.number()) } "号" }
            p.addressee { (blank(&f.addressee)) "：" }
            p.body {
                (blank(&f.name)) " 同志（" (blank(&f.sex)) "），"
                (blank(&f.age.to_string())) " 岁，" (blank(&f.ethnicity)) "，"
                "系中共" (blank(&f.category)) "党员，身份证号码 " (blank(&f.id_number)) "，"
                "由 " (blank(&f.from_org)) " 去 " (blank(&f.to_org)) "，"
                "请转接组织关系。该同志党费已交到 " (blank(&dy)) " 年 " (blank(&dm)) " 月。"
            }
            p.validity { "（有效期 " (row.validity_days()) " 天）" }
            div.sign {
                p { "（盖章）" }
                p { (iy) " 年 " (im) " 月 " (id) " 日" }
            }
            div.contacts {
                p { "党员联系电话或其他联系方式：" (blank(&f.member_phone)) }
                p { "党员原所在基层党委通讯地址：" (blank(&f.committee_address)) }
                p {
                    "联系电话：" (blank(&f.committee_phone))
                    " 传真：" (blank(&f.committee_fax))
                    " 邮编：" (blank(&f.committee_postcode))
                }
            }
            p.note {
                "本介绍信经平台电子签名，有效期至 " (row.valid_until())
                "。可扫描二维码核验真伪。"
            }
            p.copy { "第二联" }
            }
        }
    }
}

fn receipt_part(row: &LetterRow, f: &LetterFields) -> Markup {
    html! {
        section.part.receipt {
            h2 { "中国共产党党员组织关系介绍信回执联" }
            p.number { "第" span.num { (row.number()) } "号" }
            p.addressee { (blank(&f.from_org)) "：" }
            p.body {
                (blank(&f.name)) " 同志的党员组织关系已转达我处，特此回执。"
            }
            div.sign {
                p { "接收党组织（盖章）" }
                p { "年　　月　　日" }
            }
        }
    }
}

/// The public verification page: the verdict, and the letter's items as printed (ID number
/// masked) when the request proved it holds the letter.
pub fn verify_page(v: &Verdict) -> Markup {
    let good = v.status == Status::Genuine;
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "介绍信核验 - 党员信息管理系统" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
            }
            body.verify-body {
                main.verify {
                    h1 { "党员组织关系介绍信核验" }
                    p.number { "第" span.num { (v.number) } "号" }
                    p class=(if good { "verdict good" } else { "verdict bad" }) {
                        (v.status_label)
                    }
                    @if let (Some(issued), Some(until)) = (&v.issue_date, &v.valid_until) {
                        p { "开具日期：" (issued) "　有效期至：" (until) }
                    }
                    @if let Some(f) = &v.fields {
                        table.items {
                            tr { th { "收信党组织" } td { (f.addressee) } }
                            tr { th { "姓名" } td { (f.name) } }
                            tr { th { "性别" } td { (f.sex) } }
                            tr { th { "年龄" } td { (f.age) } }
                            tr { th { "民族" } td { (f.ethnicity) } }
                            tr { th { "党员类别" } td { (f.category) "党员" } }
                            tr { th { "身份证号码" } td { (f.id_number) } }
                            tr { th { "转出党组织" } td { (f.from_org) } }
                            tr { th { "转入党组织" } td { (f.to_org) } }
                            tr { th { "党费交到" } td { (f.dues_paid_to) } }
                        }
                        p.hint { "请核对纸质介绍信上的内容与上表一致。" }
                    } @else if v.status != Status::Unknown && v.status != Status::Altered {
                        p.hint { "扫描介绍信上的二维码可查看介绍信内容。" }
                    }
                    @if v.status == Status::Altered {
                        p.hint { "所出示的介绍信与平台存档不一致，可能已被涂改，请与开具介绍信的党组织联系。" }
                    }
                }
            }
        }
    }
}
