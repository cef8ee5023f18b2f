use super::*;
use crate::bench::measure::Sample;
use crate::bench::scenario::{Scenario, Selection};

fn sample(off: f64, del: f64) -> Sample {
    Sample {
        offered_pps: off,
        delivered_pps: del,
        delivered_bps: del * 60.0 * 8.0,
    }
}

fn results() -> Results {
    let all = Selection {
        patterns: vec!["raw/64/d64/vec/off1".into(), "tcp/1s/off1".into()],
        ..Selection::default()
    }
    .with_baselines();
    let mut rows: Vec<Row> = all
        .iter()
        .map(|s: &Scenario| {
            let m = if s.name().starts_with("uml") {
                0.1e6
            } else {
                1e6
            };
            Row::new(s).measured(&[sample(2e6, m), sample(2e6, m * 1.2)])
        })
        .collect();
    rows.push(Row::skipped(
        &all[0],
        "skipped: needs iperf3".into(),
        Status::Skipped,
    ));
    rows.last_mut().unwrap().name = "vecbox/some, \"odd\" name".into();
    fill_ratios(&mut rows);
    Results {
        command: "vecbox bench".into(),
        date: "2026-11-27 01:00 UTC".into(),
        machine: Machine::detect(),
        reps: 2,
        window_secs: 1.0,
        generator: Some(Generator::Vecbox),
        generator_rates: vec![(Generator::Vecbox, 1e6)],
        targets: targets(&rows),
        rows,
    }
}

#[test]
fn rows_carry_stats_loss_and_ratios() {
    let res = results();
    let r = res
        .rows
        .iter()
        .find(|r| r.name == "vecbox/router/raw/64/d64/vec/off1")
        .unwrap();
    assert_eq!(r.status, Status::Ok);
    assert!((r.delivered_pps.median - 1.1e6).abs() < 1.0);
    assert!((r.loss.unwrap() - 0.45).abs() < 1e-9);
    assert!((r.ratio_kernel.unwrap() - 1.0).abs() < 1e-9);
    assert!((r.ratio_uml.unwrap() - 10.0).abs() < 1e-9);
    assert_eq!(r.kernel_baseline.as_deref(), Some("kernel/forward/64/off1"));
    let t = res
        .targets
        .iter()
        .find(|t| t.what.contains("router vs UML"))
        .unwrap();
    assert_eq!(t.met, Some(true));
    let t = res.targets.iter().find(|t| t.what.contains("GRE")).unwrap();
    assert_eq!((t.value, t.met), (None, None));
}

#[test]
fn renderings_hold_every_row() {
    let res = results();
    let csv = csv(&res);
    assert_eq!(csv.lines().count(), res.rows.len() + 1);
    assert!(csv.contains("\"vecbox/some, \"\"odd\"\" name\",skipped,skipped: needs iperf3"));
    let md = markdown(&res, "bench.svg");
    assert!(md.starts_with(BEGIN) && md.ends_with(END));
    for r in &res.rows {
        assert!(md.contains(&format!("| {} |", r.name)), "{}", r.name);
    }
    assert!(md.contains("MISSED") || md.contains("met"));
    let svg = crate::bench::svg::render(&res);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("vecbox/xconnect/raw/64/d64/vec/off1"));
    assert!(!svg.contains("\"odd\""), "names are escaped");
    let line = table_line(&res.rows[2]);
    assert!(
        line.contains("x") && line.contains(&res.rows[2].name),
        "{line}"
    );
    let j = serde_json::to_value(&res).unwrap();
    assert!(j["rows"][0]["scenario"]["kind"].is_string());
    assert_eq!(
        j["generator_rates"]["vecbox"], 1e6,
        "rates named by generator"
    );
}

#[test]
fn splice_keeps_hand_written_text() {
    let doc = format!("# Perf\n\nwhy it is slow\n\n{BEGIN}\nold\n{END}\n\nmore analysis\n");
    let out = splice(&doc, &format!("{BEGIN}\nnew\n{END}"));
    assert!(out.contains("why it is slow") && out.contains("more analysis"));
    assert!(out.contains("new") && !out.contains("old"));
    let appended = splice("# Perf\n", &format!("{BEGIN}\nx\n{END}"));
    assert!(appended.starts_with("# Perf") && appended.contains(BEGIN));
}
