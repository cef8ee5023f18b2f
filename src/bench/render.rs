//! Renderings of a run: the live table, CSV, and the Markdown block of
//! docs/performance.md (the JSON is the serialized [`Results`]).

use std::fmt::Write as _;

use super::report::{Results, Row, Status};

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

pub const TABLE_HEADER: &str = "scenario                                          offered Mpps  delivered Mpps (min-max)   Gbit/s   loss  of ceiling  CPU/frame  x kernel rate/cost  x UML rate/cost";

fn status_word(r: &Row) -> &'static str {
    match r.status {
        Status::Skipped => "skipped",
        _ => "FAILED",
    }
}

/// `97 %`, with ` GB` when generator-bound.
fn share(r: &Row) -> String {
    opt(r.ceiling_share, |s| {
        format!(
            "{:.0} %{}",
            s * 100.0,
            if r.generator_bound { " GB" } else { "" }
        )
    })
}

/// Net CPU cost: `812 ns` per frame, or `95 ms/Gb` for TCP.
fn net_cost(r: &Row) -> String {
    match (r.cost.net_ns_per_pkt, r.cost.net_ms_per_gbit) {
        (Some(ns), _) => format!("{ns:.0} ns"),
        (None, Some(ms)) => format!("{ms:.0} ms/Gb"),
        _ => match (r.cost.ns_per_pkt, r.cost.ms_per_gbit) {
            (Some(ns), _) => format!("({ns:.0} ns)"),
            (None, Some(ms)) => format!("({ms:.0} ms/Gb)"),
            _ => "-".into(),
        },
    }
}

fn rate_cost(rate: Option<f64>, cost: Option<f64>) -> String {
    format!(
        "{}/{}",
        opt(rate, |x| format!("{x:.2}x")),
        opt(cost, |x| format!("{x:.2}x"))
    )
}

/// Offered Mpps and `delivered (min-max)` Mpps of a packet row (`-` for TCP), the
/// range joined by `dash`.
fn pps_cells(r: &Row, dash: &str) -> (String, String) {
    let m = |v: f64| format!("{:.3}", v / 1e6);
    if !r.is_pps() {
        return ("-".into(), "-".into());
    }
    (
        m(r.offered_pps.median),
        format!(
            "{} ({}{dash}{})",
            m(r.delivered_pps.median),
            m(r.delivered_pps.min),
            m(r.delivered_pps.max)
        ),
    )
}

/// One line of the live table.
pub fn table_line(r: &Row) -> String {
    if r.status != Status::Ok && r.reps == 0 {
        return format!(
            "{:<49} {}: {}",
            r.name,
            status_word(r),
            r.reason.as_deref().unwrap_or("")
        );
    }
    let (off, del) = pps_cells(r, "-");
    let mut s = format!(
        "{:<49} {:>12}  {:<25} {:>7.2}  {:>5}  {:>10}  {:>9}  {:>18}  {:>15}",
        r.name,
        off,
        del,
        r.delivered_gbps.median,
        opt(r.loss, |l| format!("{:.1}%", l * 100.0)),
        share(r),
        net_cost(r),
        rate_cost(r.ratio_kernel, r.cost_ratio_kernel),
        rate_cost(r.ratio_uml, r.cost_ratio_uml),
    );
    if let Some(n) = r.ndr_pps {
        let _ = write!(s, "  NDR {:.3} Mpps", n / 1e6);
    }
    if r.status != Status::Ok {
        let _ = write!(
            s,
            "  {}: {}",
            status_word(r),
            r.reason.as_deref().unwrap_or("")
        );
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV, one row per scenario.
pub fn csv(res: &Results) -> String {
    let mut out = String::from(
        "scenario,status,reason,generator,reps,offered_pps,delivered_pps,delivered_pps_min,delivered_pps_max,gbps,gbps_min,gbps_max,loss,ceiling,ceiling_share,generator_bound,ns_per_pkt,net_ns_per_pkt,dut_ns_per_pkt,ms_per_gbit,net_ms_per_gbit,dut_ms_per_gbit,ratio_kernel,cost_ratio_kernel,ratio_uml,cost_ratio_uml,kernel_baseline,uml_baseline,ndr_pps,placement\n",
    );
    let o = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    for r in &res.rows {
        let status = serde_json::to_value(r.status).ok();
        let generator = r.generator.and_then(|g| serde_json::to_value(g).ok());
        let c = &r.cost;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.0},{:.0},{:.0},{:.0},{:.4},{:.4},{:.4},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.name),
            status.as_ref().and_then(|v| v.as_str()).unwrap_or(""),
            csv_field(r.reason.as_deref().unwrap_or("")),
            generator.as_ref().and_then(|v| v.as_str()).unwrap_or(""),
            r.reps,
            r.offered_pps.median,
            r.delivered_pps.median,
            r.delivered_pps.min,
            r.delivered_pps.max,
            r.delivered_gbps.median,
            r.delivered_gbps.min,
            r.delivered_gbps.max,
            o(r.loss),
            r.ceiling.as_deref().unwrap_or(""),
            o(r.ceiling_share),
            r.generator_bound,
            o(c.ns_per_pkt),
            o(c.net_ns_per_pkt),
            o(c.dut_ns_per_pkt),
            o(c.ms_per_gbit),
            o(c.net_ms_per_gbit),
            o(c.dut_ms_per_gbit),
            o(r.ratio_kernel),
            o(r.cost_ratio_kernel),
            o(r.ratio_uml),
            o(r.cost_ratio_uml),
            r.kernel_baseline.as_deref().unwrap_or(""),
            r.uml_baseline.as_deref().unwrap_or(""),
            o(r.ndr_pps),
            csv_field(&format!(
                "generator {}; DUT {}; {}",
                r.placement.generator, r.placement.dut, r.placement.measured
            )),
        );
    }
    out
}

pub const BEGIN: &str = "<!-- bench:begin -->";
pub const END: &str = "<!-- bench:end -->";

fn md(s: &str) -> String {
    s.replace('\n', " ").replace('|', "/")
}

/// `a/b` of two ratios with × signs.
fn md_pair(a: Option<f64>, b: Option<f64>) -> String {
    format!(
        "{} / {}",
        opt(a, |x| format!("{x:.2}×")),
        opt(b, |x| format!("{x:.2}×"))
    )
}

fn header(s: &mut String, res: &Results) {
    let _ = writeln!(s, "- command: `{}`", res.command);
    let _ = writeln!(s, "- date: {}", res.date);
    let _ = writeln!(
        s,
        "- machine: {} ({} cores), {}, netdev_max_backlog {}",
        res.machine.cpu,
        res.machine.cores,
        res.machine.kernel,
        opt(
            res.machine.netdev_max_backlog.map(|v| v as f64),
            |v| format!("{v:.0}")
        )
    );
    let rates: Vec<String> = res
        .generator_rates
        .iter()
        .map(|(g, r)| format!("{g:?} {:.3} Mpps", r / 1e6))
        .collect();
    let _ = writeln!(
        s,
        "- generator: {} (start-up comparison, 64 B unlimited: {})",
        res.generator
            .map(|g| format!("{g:?}"))
            .unwrap_or("-".into()),
        if rates.is_empty() {
            "not run".into()
        } else {
            rates.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "- {} repetitions of {} s per scenario; median (min–max)\n",
        res.reps, res.window_secs
    );
}

fn targets(s: &mut String, res: &Results) {
    let _ = writeln!(
        s,
        "### Targets\n\n| ratio | target | median | range | verdict |\n|---|---:|---:|---:|---|"
    );
    for t in &res.targets {
        let _ = writeln!(
            s,
            "| {} | ≥ {}× | {} | {} | {} |",
            t.what,
            t.target,
            opt(t.value, |v| format!("{v:.2}×")),
            t.range
                .map_or("-".into(), |(a, b)| format!("{a:.2}–{b:.2}×")),
            t.text()
        );
    }
}

fn scenarios(s: &mut String, res: &Results) {
    let _ = writeln!(
        s,
        "\n### Scenarios\n\nCPU/frame: busy time of all CPUs per delivered frame, less the ceiling's cost \
         (generator and sink) of the frames offered; in parentheses as measured. DUT/frame: the \
         device's own processes. TCP rows give milliseconds of CPU per Gbit instead. Ratios: rate \
         / cost against the baseline (cost below 1× = cheaper). GB: generator-bound.\n\n\
         | scenario | offered Mpps | delivered Mpps (min–max) | Gbit/s (min–max) | loss | of ceiling | CPU/frame net (gross) | DUT/frame | × kernel rate / cost | × UML rate / cost | NDR Mpps |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &res.rows {
        if r.status != Status::Ok && r.reps == 0 {
            let _ = writeln!(
                s,
                "| {} | {} | {} | | | | | | | | |",
                r.name,
                if r.status == Status::Skipped {
                    "skipped"
                } else {
                    "failed"
                },
                md(r.reason.as_deref().unwrap_or(""))
            );
            continue;
        }
        let m = |v: f64| format!("{:.3}", v / 1e6);
        let pps = r.is_pps();
        let c = &r.cost;
        let (cost, dut) = if pps {
            (
                format!(
                    "{} ({})",
                    opt(c.net_ns_per_pkt, |v| format!("{v:.0} ns")),
                    opt(c.ns_per_pkt, |v| format!("{v:.0}"))
                ),
                opt(c.dut_ns_per_pkt, |v| format!("{v:.0} ns")),
            )
        } else {
            (
                format!(
                    "{} ({})",
                    opt(c.net_ms_per_gbit, |v| format!("{v:.0} ms/Gbit")),
                    opt(c.ms_per_gbit, |v| format!("{v:.0}"))
                ),
                opt(c.dut_ms_per_gbit, |v| format!("{v:.0} ms/Gbit")),
            )
        };
        let (off, del) = pps_cells(r, "–");
        let mut name = r.name.clone();
        if r.status != Status::Ok {
            name += &format!(" (failed: {})", md(r.reason.as_deref().unwrap_or("")));
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} ({:.2}–{:.2}) | {} | {} | {} | {} | {} | {} | {} |",
            name,
            off,
            del,
            r.delivered_gbps.median,
            r.delivered_gbps.min,
            r.delivered_gbps.max,
            opt(r.loss, |l| format!("{:.1} %", l * 100.0)),
            share(r),
            cost,
            dut,
            md_pair(r.ratio_kernel, r.cost_ratio_kernel),
            md_pair(r.ratio_uml, r.cost_ratio_uml),
            opt(r.ndr_pps, m),
        );
    }
}

fn placement(s: &mut String, res: &Results) {
    let _ = writeln!(
        s,
        "\n### Where the work ran\n\nPinned: the generator (or iperf3 client) to CPU 0, the DUT's \
         processes to CPU 1. The kernel's packet work runs in softirq on the CPU that sends into a \
         veth (a veth delivers to its peer on the sender's CPU). Measured: busy share of each CPU \
         over the row's windows (user / system / softirq with hard interrupts, percent).\n\n\
         | scenario | DUT | kernel packet work | measured |\n|---|---|---|---|"
    );
    for r in res.rows.iter().filter(|r| r.usage.is_some()) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.name, r.placement.dut, r.placement.softirq, r.placement.measured
        );
    }
}

/// The generated block of docs/performance.md (between [`BEGIN`] and [`END`]).
pub fn markdown(res: &Results, svg_name: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "<!-- generated by `vecbox bench --report`; edit outside the markers -->\n"
    );
    header(&mut s, res);
    let failures = res.failures();
    if !failures.is_empty() {
        let _ = writeln!(
            s,
            "**Incomplete run**: {} rows produced no result: {}\n",
            failures.len(),
            md(&failures.join("; "))
        );
    }
    targets(&mut s, res);
    scenarios(&mut s, res);
    placement(&mut s, res);
    let _ = writeln!(
        s,
        "\n![vecbox bench: pps and Gbit/s per scenario with the ceiling, kernel and UML baselines]({svg_name})\n"
    );
    let _ = write!(s, "{END}");
    s
}

/// Replace the marked block of `doc` with `block` (appended when there is none).
pub fn splice(doc: &str, block: &str) -> String {
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{block}{}", &doc[..a], &doc[b + END.len()..])
        }
        _ => format!(
            "{}\n\n## `vecbox bench` results\n\n{block}\n",
            doc.trim_end()
        ),
    }
}
