//! Server-rendered SVG charts: horizontal bars and a pie with its legend, Chinese labels, no
//! script and no style attributes (presentation attributes only, as the CSP allows).

use maud::{html, Markup};

use super::Count;

/// The colours of bars and slices, in turn.
pub const PALETTE: [&str; 10] = [
    "#c0392b", "#e67e22", "#f1c40f", "#27ae60", "#16a085", "#2980b9", "#8e44ad", "#7f8c8d",
    "#d35400", "#2c3e50",
];

/// A horizontal bar chart of `counts` (zero counts kept, so bands keep their places).
pub fn bars(title: &str, counts: &[Count]) -> Markup {
    let row = 24.0;
    let label_w = 170.0;
    let bar_w = 300.0;
    let width = label_w + bar_w + 70.0;
    let height = 30.0 + row * counts.len() as f64;
    let max = counts.iter().map(|c| c.n).max().unwrap_or(0).max(1) as f64;
    html! {
        svg.chart.bar-chart xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={"0 0 " (width) " " (height)} width=(width) height=(height) aria-label=(title) {
            title { (title) }
            text x="0" y="16" font-size="14" font-weight="bold" fill="#333" { (title) }
            @for (i, c) in counts.iter().enumerate() {
                @let y = 26.0 + row * i as f64;
                @let w = (c.n as f64 / max * bar_w).max(if c.n > 0 { 1.0 } else { 0.0 });
                text x=(label_w - 6.0) y=(y + 15.0) font-size="12" text-anchor="end" fill="#333" { (c.label) }
                rect x=(label_w) y=(y + 3.0) width=(format!("{w:.1}")) height=(row - 6.0)
                    fill=(PALETTE[i % PALETTE.len()]) {
                    title { (c.label) "：" (c.n) "人" }
                }
                text x=(label_w + w + 6.0) y=(y + 15.0) font-size="12" fill="#333" { (c.n) }
            }
        }
    }
}

/// A point on the circle of radius `r` around (`cx`, `cy`) at `fraction` of a turn from 12
/// o'clock, clockwise.
fn point(cx: f64, cy: f64, r: f64, fraction: f64) -> (f64, f64) {
    let a = fraction * std::f64::consts::TAU - std::f64::consts::FRAC_PI_2;
    (cx + r * a.cos(), cy + r * a.sin())
}

/// A pie chart of `counts` with a legend (count and share); zero counts are left out.
pub fn pie(title: &str, counts: &[Count]) -> Markup {
    let total: i64 = counts.iter().map(|c| c.n.max(0)).sum();
    let slices: Vec<(usize, &Count)> = counts.iter().enumerate().filter(|(_, c)| c.n > 0).collect();
    let (cx, cy, r) = (80.0, 105.0, 70.0);
    let height = (190.0f64).max(40.0 + 22.0 * slices.len() as f64);
    let mut parts = Vec::with_capacity(slices.len());
    let mut start = 0.0;
    for (i, c) in &slices {
        let share = c.n as f64 / total as f64;
        parts.push((*i, *c, start, share));
        start += share;
    }
    html! {
        svg.chart.pie-chart xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={"0 0 380 " (height)} width="380" height=(height) aria-label=(title) {
            title { (title) }
            text x="0" y="16" font-size="14" font-weight="bold" fill="#333" { (title) }
            @if total == 0 {
                circle cx=(cx) cy=(cy) r=(r) fill="#eee" {}
                text x=(cx) y=(cy + 4.0) font-size="12" text-anchor="middle" fill="#666" { "无数据" }
            }
            @for (i, c, start, share) in &parts {
                @let (start, share) = (*start, *share);
                @let (x0, y0) = point(cx, cy, r, start);
                @let (x1, y1) = point(cx, cy, r, start + share);
                @let large = if share > 0.5 { 1 } else { 0 };
                @let colour = PALETTE[*i % PALETTE.len()];
                @if slices.len() == 1 {
                    circle cx=(cx) cy=(cy) r=(r) fill=(colour) { title { (c.label) "：" (c.n) "人" } }
                } @else {
                    path d=(format!("M{cx:.1},{cy:.1} L{x0:.2},{y0:.2} A{r:.1},{r:.1} 0 {large} 1 {x1:.2},{y1:.2} Z"))
                        fill=(colour) stroke="#fff" stroke-width="1" {
                        title { (c.label) "：" (c.n) "人" }
                    }
                }
            }
            @for (row, (i, c)) in slices.iter().enumerate() {
                @let y = 40.0 + 22.0 * row as f64;
                rect x="180" y=(y) width="14" height="14" fill=(PALETTE[*i % PALETTE.len()]) {}
                text x="200" y=(y + 12.0) font-size="12" fill="#333" {
                    (c.label) "  " (c.n) "人（" (format!("{:.1}", c.n as f64 * 100.0 / total as f64)) "%）"
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(label: &str, n: i64) -> Count {
        Count {
            key: label.into(),
            label: label.into(),
            n,
        }
    }

    #[test]
    fn charts_escape_labels_and_carry_no_script_or_style() {
        let b = bars("年龄", &[c("<b>", 3), c("31至35岁", 0)]).into_string();
        assert!(b.contains("&lt;b&gt;"));
        let p = pie("性别", &[c("男", 3), c("女", 1)]).into_string();
        assert!(p.contains("75.0%"));
        for s in [b, p] {
            assert!(!s.contains("<script") && !s.contains("style="));
        }
    }
}
