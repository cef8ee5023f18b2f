use super::*;
use crate::bench::cpu::{CpuTime, Usage};
use crate::bench::measure::Sample;
use crate::bench::render::{BEGIN, END, csv, markdown, splice, table_line};
use crate::bench::scenario::Scenario;
use crate::bench::select::Selection;
use crate::bench::verdict::{Verdict, targets};

fn sample(off: f64, del: f64) -> Sample {
    Sample {
        offered_pps: off,
        delivered_pps: del,
        delivered_bps: del * 60.0 * 8.0,
    }
}

/// 10 s on 2 CPUs with `busy` CPU seconds, `offered` and `delivered` frames.
fn usage(busy: f64, dut: f64, offered: f64, delivered: f64) -> Usage {
    Usage {
        secs: 10.0,
        per_cpu: vec![
            CpuTime {
                cpu: 0,
                user_s: busy / 2.0,
                softirq_s: busy / 2.0,
                idle_s: 10.0 - busy,
                ..CpuTime::default()
            },
            CpuTime {
                cpu: 1,
                idle_s: 10.0,
                ..CpuTime::default()
            },
        ],
        dut_s: dut,
        offered_pkts: offered,
        delivered_pkts: delivered,
        delivered_bits: delivered * 480.0,
    }
}

/// The `--quick`-like slice with made-up figures: ceilings 2 Mpps, vecbox and kernel
/// 1–1.2 Mpps, UML 0.1–0.12 Mpps, three windows each.
fn results() -> Results {
    let all = Selection {
        patterns: vec!["raw/64/d64/vec/off1".into(), "tcp/1s/off1".into()],
        ..Selection::default()
    }
    .with_baselines();
    let mut rows: Vec<Row> = all
        .iter()
        .map(|s: &Scenario| {
            let n = s.name();
            let m = if n.starts_with("uml") {
                0.1e6
            } else if n.starts_with("ceiling") {
                2e6
            } else {
                1e6
            };
            let busy = if n.starts_with("ceiling") { 2.0 } else { 4.0 };
            Row::new(s)
                .measured(&[sample(2e6, m), sample(2e6, m * 1.1), sample(2e6, m * 1.2)])
                .with_usage(usage(busy, 1.0, 2e7, m * 11.0))
        })
        .collect();
    rows.push(Row::skipped(
        &all[0],
        "skipped: needs iperf3".into(),
        Status::Skipped,
    ));
    rows.last_mut().unwrap().name = "vecbox/some, \"odd\" name".into();
    link_all(&mut rows);
    Results {
        command: "vecbox bench".into(),
        date: "2026-11-27 01:00 UTC".into(),
        machine: Machine::detect(),
        reps: 3,
        window_secs: 1.0,
        generator: Some(Generator::Vecbox),
        generator_rates: vec![(Generator::Vecbox, 1e6)],
        targets: targets(&rows),
        rows,
    }
}

fn get<'a>(res: &'a Results, name: &str) -> &'a Row {
    res.rows.iter().find(|r| r.name == name).unwrap()
}

#[test]
fn rows_carry_stats_loss_ceiling_and_ratios() {
    let res = results();
    let r = get(&res, "vecbox/router/raw/64/d64/vec/off1");
    assert_eq!(r.status, Status::Ok);
    assert!((r.delivered_pps.median - 1.1e6).abs() < 1.0);
    assert!((r.loss.unwrap() - 0.45).abs() < 1e-9);
    assert!((r.ratio_kernel.unwrap() - 1.0).abs() < 1e-9);
    assert!((r.ratio_uml.unwrap() - 10.0).abs() < 1e-9);
    assert_eq!(r.kernel_baseline.as_deref(), Some("kernel/forward/64/off1"));
    assert_eq!(r.ceiling.as_deref(), Some("ceiling/64/off1"));
    assert!((r.ceiling_share.unwrap() - 0.5).abs() < 1e-9);
    assert!(!r.generator_bound);
    assert!(r.placement.dut.contains("CPU 1"), "{:?}", r.placement);
    assert!(
        r.placement.measured.starts_with("cpu0"),
        "{:?}",
        r.placement
    );
    let k = get(&res, "kernel/forward/64/off1");
    assert!(
        k.placement.softirq.contains("generator"),
        "{:?}",
        k.placement
    );
    let t = res
        .targets
        .iter()
        .find(|t| t.what.contains("router vs UML"))
        .unwrap();
    // 1.0–1.2 over 0.10–0.12 Mpps: 8.3–12×, all above 5×.
    assert_eq!(t.verdict, Verdict::Met, "{t:?}");
    let t = res
        .targets
        .iter()
        .find(|t| t.what.contains("router vs kernel"))
        .unwrap();
    // The same spread on both sides: 0.83–1.2×, around the 1.2× target.
    assert_eq!(t.verdict, Verdict::Inconclusive, "{t:?}");
    assert!(
        t.text().starts_with("inconclusive (0.83–1.20×"),
        "{}",
        t.text()
    );
    let t = res.targets.iter().find(|t| t.what.contains("GRE")).unwrap();
    assert_eq!((t.value, t.verdict), (None, Verdict::NotMeasured));
}

#[test]
fn costs_subtract_the_ceiling_and_compare() {
    let res = results();
    let c = get(&res, "ceiling/64/off1");
    // 2 CPU s over 22 M frames; a ceiling has no net cost of its own.
    assert!((c.cost.ns_per_pkt.unwrap() - 2e9 / 22e6).abs() < 1e-6);
    assert_eq!(c.cost.net_ns_per_pkt, None);
    let r = get(&res, "vecbox/xconnect/raw/64/d64/vec/off1");
    // 4 CPU s for 11 M frames delivered of 20 M offered; the ceiling's generator and
    // sink cost 2 s / 20 M offered = 100 ns a frame offered: (4 − 2) s / 11 M.
    assert!((r.cost.ns_per_pkt.unwrap() - 4e9 / 11e6).abs() < 1e-6);
    assert!((r.cost.net_ns_per_pkt.unwrap() - 2e9 / 11e6).abs() < 1e-6);
    assert!((r.cost.dut_ns_per_pkt.unwrap() - 1e9 / 11e6).abs() < 1e-6);
    assert!((r.cost_ratio_kernel.unwrap() - 1.0).abs() < 1e-9);
    // TCP rows cost per Gbit.
    let t = get(&res, "vecbox/tcp/1s/off1");
    assert!(t.cost.ms_per_gbit.is_some() && t.cost.ns_per_pkt.is_none());
}

#[test]
fn generator_bound_rows_are_marked_and_bound_their_targets() {
    let mut res = results();
    // The xconnect row at its ceiling's rate.
    let i = res
        .rows
        .iter()
        .position(|r| r.name == "vecbox/xconnect/raw/64/d64/vec/off1")
        .unwrap();
    res.rows[i] = Row::new(&res.rows[i].scenario.clone()).measured(&[
        sample(2.2e6, 2.1e6),
        sample(2.2e6, 2.15e6),
        sample(2.2e6, 2.2e6),
    ]);
    link_all(&mut res.rows);
    let r = &res.rows[i];
    assert!(r.generator_bound, "{:?}", r.ceiling_share);
    let ts = targets(&res.rows);
    let t = ts
        .iter()
        .find(|t| t.what.contains("xconnect vs kernel"))
        .unwrap();
    assert_eq!(t.verdict, Verdict::AtLeast);
    assert!(t.text().starts_with("≥ 1.95×"), "{}", t.text());
    assert!(table_line(r).contains("GB"), "{}", table_line(r));
}

#[test]
fn failures_name_every_row_without_a_result() {
    let res = results();
    let f = res.failures();
    assert_eq!(f.len(), 1);
    assert!(
        f[0].contains("odd") && f[0].contains("needs iperf3"),
        "{f:?}"
    );
}

#[test]
fn renderings_hold_every_row() {
    let res = results();
    let csv = csv(&res);
    assert_eq!(csv.lines().count(), res.rows.len() + 1);
    let cols = csv.lines().next().unwrap().split(',').count();
    assert!(csv.contains("\"vecbox/some, \"\"odd\"\" name\",skipped,skipped: needs iperf3"));
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("ceiling/64/off1,ok")
    );
    assert!(cols > 25, "{cols}");
    let md = markdown(&res, "bench.svg");
    assert!(md.starts_with(BEGIN) && md.ends_with(END));
    for r in &res.rows {
        assert!(md.contains(&format!("| {} |", r.name)), "{}", r.name);
    }
    for want in [
        "Incomplete run",
        "of ceiling",
        "CPU/frame",
        "Where the work ran",
        "inconclusive",
        "met",
    ] {
        assert!(md.contains(want), "{want} missing:\n{md}");
    }
    let svg = crate::bench::svg::render(&res);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("vecbox/xconnect/raw/64/d64/vec/off1"));
    assert!(!svg.contains("\"odd\""), "names are escaped");
    let line = table_line(get(&res, "vecbox/xconnect/raw/64/d64/vec/off1"));
    assert!(line.contains(" ns") && line.contains("x/"), "{line}");
    let j = serde_json::to_value(&res).unwrap();
    assert!(j["rows"][0]["scenario"]["kind"].is_string());
    assert_eq!(j["targets"][0]["verdict"], "inconclusive");
    assert!(j["rows"][1]["usage"]["per_cpu"].is_array());
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
