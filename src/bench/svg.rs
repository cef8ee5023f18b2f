//! A hand-written SVG bar chart: per vecbox scenario, delivered Mpps (left panel) and
//! Gbit/s (right panel), each with its ceiling, kernel and UML baselines alongside.

use std::fmt::Write as _;

use super::report::{Results, Row, Status};

const LABEL_W: f64 = 300.0;
const PANEL_W: f64 = 300.0;
const BAR_H: f64 = 6.0;
const GROUP_H: f64 = 4.0 * BAR_H + 8.0;
const TOP: f64 = 50.0;
const COLORS: [(&str, &str); 4] = [
    ("vecbox", "#1f77b4"),
    ("ceiling", "#2ca02c"),
    ("kernel", "#7f7f7f"),
    ("UML", "#ff7f0e"),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn find<'a>(rows: &'a [Row], name: Option<&String>) -> Option<&'a Row> {
    let name = name?;
    rows.iter()
        .find(|r| &r.name == name && r.status == Status::Ok)
}

/// The chart of `res` (vecbox rows that ran).
pub fn render(res: &Results) -> String {
    let groups: Vec<[Option<&Row>; 4]> = res
        .rows
        .iter()
        .filter(|r| r.status == Status::Ok && r.name.starts_with("vecbox/"))
        .map(|r| {
            [
                Some(r),
                find(&res.rows, r.ceiling.as_ref()),
                find(&res.rows, r.kernel_baseline.as_ref()),
                find(&res.rows, r.uml_baseline.as_ref()),
            ]
        })
        .collect();
    let max = |f: fn(&Row) -> f64| {
        groups
            .iter()
            .flat_map(|g| g.iter().flatten().map(|r| f(r)))
            .fold(0.0f64, f64::max)
            .max(1e-9)
    };
    let pps = |r: &Row| {
        if r.is_pps() {
            r.delivered_pps.median / 1e6
        } else {
            0.0
        }
    };
    let gbps = |r: &Row| r.delivered_gbps.median;
    let (max_pps, max_gbps) = (max(pps), max(gbps));
    let width = LABEL_W + 2.0 * PANEL_W + 60.0;
    let height = TOP + GROUP_H * groups.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="4" y="14" font-size="12">vecbox bench — {} — {} reps × {} s, medians</text>"#,
        esc(&res.date),
        res.reps,
        res.window_secs
    );
    for (i, (name, color)) in COLORS.iter().enumerate() {
        let x = 4.0 + i as f64 * 80.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="22" width="10" height="8" fill="{color}"/><text x="{}" y="30">{name}</text>"#,
            x + 14.0
        );
    }
    for (p, title, max) in [(0, "delivered Mpps", max_pps), (1, "Gbit/s", max_gbps)] {
        let x0 = LABEL_W + p as f64 * (PANEL_W + 30.0);
        let _ = writeln!(
            s,
            r#"<text x="{x0}" y="{}">{title} (max {max:.3})</text><line x1="{x0}" y1="{}" x2="{x0}" y2="{}" stroke="black"/>"#,
            TOP - 6.0,
            TOP - 2.0,
            height - 26.0
        );
    }
    for (i, g) in groups.iter().enumerate() {
        let y = TOP + i as f64 * GROUP_H;
        if let Some(r) = g[0] {
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                LABEL_W - 6.0,
                y + 2.0 * BAR_H + 3.0,
                esc(&r.name)
            );
        }
        for (k, r) in g.iter().enumerate() {
            let Some(r) = r else { continue };
            for (p, v, max) in [(0, pps(r), max_pps), (1, gbps(r), max_gbps)] {
                let x0 = LABEL_W + p as f64 * (PANEL_W + 30.0);
                let w = (v / max * PANEL_W).max(0.0);
                let _ = writeln!(
                    s,
                    r#"<rect x="{x0}" y="{}" width="{w:.1}" height="{BAR_H}" fill="{}"><title>{} {v:.3}</title></rect>"#,
                    y + k as f64 * BAR_H,
                    COLORS[k].1,
                    esc(&r.name)
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
