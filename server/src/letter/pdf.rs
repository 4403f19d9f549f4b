//! The letter as a PDF (A4), drawn with `krilla` in a CJK font found on the system (Noto CJK
//! from the `fonts-noto-cjk` package, subset into the file). The same items and order as the
//! printable page; the QR code drawn as vector squares.

use std::sync::OnceLock;

use axum::http::StatusCode;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke, StrokeDash};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::Document;

use super::{date_parts, LetterRow};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Where CJK fonts are looked for, in order, with the face of Simplified Chinese in a
/// collection (Noto CJK collections: 0 JP, 1 KR, 2 SC, 3 TC, 4 HK).
pub const FONT_CANDIDATES: &[(&str, u32)] = &[
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    (
        "/usr/share/fonts/google-noto-cjk/NotoSerifCJK-Regular.ttc",
        2,
    ),
    (
        "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
        2,
    ),
    (
        "/usr/share/fonts/opentype/noto/NotoSerifCJKsc-Regular.otf",
        0,
    ),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
];

/// The font, loaded once (a CJK collection is tens of megabytes).
fn font() -> ApiResult<Font> {
    static FONT: OnceLock<Option<Font>> = OnceLock::new();
    FONT.get_or_init(|| {
        FONT_CANDIDATES.iter().find_map(|(path, index)| {
            let data = std::fs::read(path).ok()?;
            Font::new(data.into(), *index)
        })
    })
    .clone()
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "font_missing",
            "服务器缺少中文字体，无法生成 PDF：请安装字体包 fonts-noto-cjk 后重试，或使用打印页面",
        )
    })
}

const A4_W: f32 = 595.28;
const A4_H: f32 = 841.89;
const LEFT: f32 = 70.0;
const RIGHT: f32 = A4_W - 60.0;

fn fill(r: u8, g: u8, b: u8) -> Fill {
    Fill {
        paint: rgb::Color::new(r, g, b).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

/// The estimated advance of a character: CJK full width, ASCII about half.
fn advance(c: char, size: f32) -> f32 {
    if c.is_ascii() {
        0.55 * size
    } else {
        size
    }
}

fn width(text: &str, size: f32) -> f32 {
    text.chars().map(|c| advance(c, size)).sum()
}

/// Breaks `text` into lines no wider than `max` (first line indented by `indent`).
fn wrap(text: &str, size: f32, max: f32, indent: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut w = indent;
    for c in text.chars() {
        let a = advance(c, size);
        if w + a > max && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            w = 0.0;
        }
        line.push(c);
        w += a;
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

struct Pen<'a, 'b> {
    surface: &'a mut Surface<'b>,
    font: Font,
}

impl Pen<'_, '_> {
    fn text(&mut self, x: f32, y: f32, size: f32, text: &str) {
        self.surface.draw_text(
            Point::from_xy(x, y),
            self.font.clone(),
            size,
            text,
            false,
            TextDirection::Auto,
        );
    }

    fn centered(&mut self, y: f32, size: f32, text: &str) {
        let x = (A4_W - width(text, size)) / 2.0;
        self.text(x, y, size, text);
    }

    fn right(&mut self, x_right: f32, y: f32, size: f32, text: &str) {
        self.text(x_right - width(text, size), y, size, text);
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, dashed: bool) {
        let Some(rect) = Rect::from_xywh(x, y, w, h) else {
            return;
        };
        let mut pb = PathBuilder::new();
        pb.push_rect(rect);
        let Some(path) = pb.finish() else { return };
        self.surface.set_fill(None);
        self.surface.set_stroke(Some(Stroke {
            paint: rgb::Color::new(200, 0, 0).into(),
            width: 0.8,
            dash: dashed.then(|| StrokeDash {
                array: vec![4.0, 3.0],
                offset: 0.0,
            }),
            ..Default::default()
        }));
        self.surface.draw_path(&path);
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(fill(0, 0, 0)));
    }

    fn line(&mut self, x1: f32, y: f32, x2: f32, dashed: bool) {
        let mut pb = PathBuilder::new();
        pb.move_to(x1, y);
        pb.line_to(x2, y);
        let Some(path) = pb.finish() else { return };
        self.surface.set_stroke(Some(Stroke {
            paint: rgb::Color::new(0, 0, 0).into(),
            width: 0.6,
            dash: dashed.then(|| StrokeDash {
                array: vec![4.0, 3.0],
                offset: 0.0,
            }),
            ..Default::default()
        }));
        self.surface.draw_path(&path);
        self.surface.set_stroke(None);
    }

    /// The QR code of `text`, `size` points wide, its top-left corner at (x, y).
    fn qr(&mut self, x: f32, y: f32, size: f32, text: &str) -> ApiResult<()> {
        let code = qrcode::QrCode::new(text.as_bytes()).map_err(ApiError::internal)?;
        let n = code.width();
        let quiet = 2;
        let cell = size / (n + 2 * quiet) as f32;
        let colors = code.to_colors();
        let mut pb = PathBuilder::new();
        for (i, color) in colors.iter().enumerate() {
            if *color == qrcode::Color::Dark {
                let (cx, cy) = ((i % n + quiet) as f32, (i / n + quiet) as f32);
                if let Some(r) = Rect::from_xywh(x + cx * cell, y + cy * cell, cell, cell) {
                    pb.push_rect(r);
                }
            }
        }
        if let Some(path) = pb.finish() {
            self.surface.set_stroke(None);
            self.surface.set_fill(Some(fill(0, 0, 0)));
            self.surface.draw_path(&path);
        }
        Ok(())
    }
}

/// The letter as `application/pdf`.
pub fn render(row: &LetterRow, state: &AppState) -> ApiResult<Vec<u8>> {
    let _ = state;
    let font = font()?;
    let f = row.fields()?;
    let (iy, im, id) = date_parts(row.issue_date());
    let (dy, dm, _) = date_parts(&f.dues_paid_to);
    let mut document = Document::new();
    let settings = PageSettings::from_wh(A4_W, A4_H)
        .ok_or_else(|| ApiError::internal("A4 page size refused"))?;
    let mut page = document.start_page_with(settings);
    let mut surface = page.surface();
    {
        let mut pen = Pen {
            surface: &mut surface,
            font,
        };
        let body = 12.5_f32;
        let lead = 22.0_f32;

        // The letter (第二联).
        let top = 50.0;
        pen.rect(LEFT - 20.0, top, RIGHT - LEFT + 30.0, 430.0, false);
        pen.qr(RIGHT - 78.0, top + 8.0, 72.0, row.verify_url())?;
        pen.text(RIGHT - 64.0, top + 90.0, 8.0, "扫码核验");
        pen.surface.set_fill(Some(fill(200, 0, 0)));
        pen.centered(top + 40.0, 20.0, "中国共产党党员组织关系介绍信");
        pen.surface.set_fill(Some(fill(0, 0, 0)));
        pen.centered(top + 66.0, body, &format!("第{}号", row.number()));
        let mut y = top + 110.0;
        pen.text(LEFT, y, body, &format!("{}：", f.addressee));
        y += lead;
        let text = format!(
            "{} 同志（{}），{} 岁，{}，系中共{}党员，身份证号码 {}，由 {} 去 {}，请转接组织关系。该同志党费已交到 {} 年 {} 月。",
            f.name, f.sex, f.age, f.ethnicity, f.category, f.id_number, f.from_org, f.to_org, dy, dm
        );
        let indent = 2.0 * body;
        for (i, line) in wrap(&text, body, RIGHT - LEFT, indent).iter().enumerate() {
            let x = if i == 0 { LEFT + indent } else { LEFT };
            pen.text(x, y, body, line);
            y += lead;
        }
        pen.right(
            RIGHT - 60.0,
            y,
            body,
            &format!("（有效期 {} 天）", row.validity_days()),
        );
        y += lead * 1.5;
        pen.right(RIGHT - 30.0, y, body, "（盖章）");
        y += lead;
        pen.right(RIGHT - 10.0, y, body, &format!("{iy} 年 {im} 月 {id} 日"));
        y += lead * 1.4;
        let small = 11.0;
        pen.text(
            LEFT,
            y,
            small,
            &format!("党员联系电话或其他联系方式：{}", f.member_phone),
        );
        y += lead * 0.9;
        for line in wrap(
            &format!("党员原所在基层党委通讯地址：{}", f.committee_address),
            small,
            RIGHT - LEFT,
            0.0,
        ) {
            pen.text(LEFT, y, small, &line);
            y += lead * 0.9;
        }
        pen.text(
            LEFT,
            y,
            small,
            &format!(
                "联系电话：{}　传真：{}　邮编：{}",
                f.committee_phone, f.committee_fax, f.committee_postcode
            ),
        );
        y += lead * 0.9;
        pen.text(
            LEFT,
            y,
            9.0,
            &format!(
                "本介绍信经平台电子签名，有效期至 {}。可扫描二维码核验真伪。",
                row.valid_until()
            ),
        );
        pen.right(RIGHT, top + 420.0, body, "第二联");

        // The cut line and the receipt stub 回执联.
        let cut = top + 455.0;
        pen.line(LEFT - 20.0, cut, RIGHT + 10.0, true);
        pen.centered(cut - 4.0, 9.0, "沿此线剪开");
        let top = cut + 20.0;
        pen.rect(LEFT - 20.0, top, RIGHT - LEFT + 30.0, 200.0, false);
        pen.surface.set_fill(Some(fill(200, 0, 0)));
        pen.centered(top + 36.0, 16.0, "中国共产党党员组织关系介绍信回执联");
        pen.surface.set_fill(Some(fill(0, 0, 0)));
        pen.centered(top + 60.0, body, &format!("第{}号", row.number()));
        let mut y = top + 96.0;
        pen.text(LEFT, y, body, &format!("{}：", f.from_org));
        y += lead;
        pen.text(
            LEFT + indent,
            y,
            body,
            &format!("{} 同志的党员组织关系已转达我处，特此回执。", f.name),
        );
        y += lead * 1.6;
        pen.right(RIGHT - 20.0, y, body, "接收党组织（盖章）");
        y += lead;
        pen.right(RIGHT - 20.0, y, body, "年　　月　　日");
    }
    surface.finish();
    page.finish();
    document
        .finish()
        .map_err(|e| ApiError::internal(format!("PDF: {e:?}")))
}
