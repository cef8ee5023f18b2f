//! Results: rows, ratios against the baselines, targets, and the table / CSV / JSON /
//! Markdown renderings (the SVG is in [`super::svg`]).

use std::fmt::Write as _;

use serde::Serialize;

use super::measure::{Sample, Stat};
use super::scenario::{Kind, Scenario};
use super::traffic::Generator;

/// Outcome of one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Failed,
}

/// One scenario's result.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub scenario: Scenario,
    pub status: Status,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    pub generator: Option<Generator>,
    pub reps: usize,
    pub offered_pps: Stat,
    pub delivered_pps: Stat,
    pub delivered_gbps: Stat,
    /// 1 − delivered/offered of the medians (packet scenarios).
    pub loss: Option<f64>,
    pub kernel_baseline: Option<String>,
    pub uml_baseline: Option<String>,
    /// Median of this row's main metric over the baseline's (pps; Gbit/s for TCP).
    pub ratio_kernel: Option<f64>,
    pub ratio_uml: Option<f64>,
    pub ndr_pps: Option<f64>,
}

impl Row {
    pub fn new(s: &Scenario) -> Row {
        let (k, u) = s
            .baselines()
            .map(|(k, u)| (Some(k.name()), Some(u.name())))
            .unwrap_or((None, None));
        Row {
            name: s.name(),
            scenario: s.clone(),
            status: Status::Skipped,
            reason: None,
            generator: None,
            reps: 0,
            offered_pps: Stat::default(),
            delivered_pps: Stat::default(),
            delivered_gbps: Stat::default(),
            loss: None,
            kernel_baseline: k,
            uml_baseline: u,
            ratio_kernel: None,
            ratio_uml: None,
            ndr_pps: None,
        }
    }

    pub fn skipped(s: &Scenario, reason: String, status: Status) -> Row {
        Row {
            status,
            reason: Some(reason),
            ..Row::new(s)
        }
    }

    /// Fill in the statistics of `samples`.
    pub fn measured(mut self, samples: &[Sample]) -> Row {
        let f = |g: fn(&Sample) -> f64| Stat::of(&samples.iter().map(g).collect::<Vec<_>>());
        self.status = Status::Ok;
        self.reps = samples.len();
        self.offered_pps = f(|s| s.offered_pps);
        self.delivered_pps = f(|s| s.delivered_pps);
        self.delivered_gbps = f(|s| s.delivered_bps / 1e9);
        if self.is_pps() && self.offered_pps.median > 0.0 {
            self.loss = Some((1.0 - self.delivered_pps.median / self.offered_pps.median).max(0.0));
        }
        self
    }

    pub fn is_pps(&self) -> bool {
        matches!(self.scenario.kind, Kind::Pps { .. })
    }

    /// The metric ratios are taken on.
    pub fn metric(&self) -> Option<f64> {
        (self.status == Status::Ok).then(|| {
            if self.is_pps() {
                self.delivered_pps.median
            } else {
                self.delivered_gbps.median
            }
        })
    }
}

/// Ratio of two rows' metrics, when both were measured and the base is non-zero.
pub fn ratio(rows: &[Row], num: &str, den: &str) -> Option<f64> {
    let get = |n: &str| rows.iter().find(|r| r.name == n).and_then(Row::metric);
    match (get(num), get(den)) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Fill every vecbox row's ratios to its baselines.
pub fn fill_ratios(rows: &mut [Row]) {
    let snapshot = rows.to_vec();
    for r in rows.iter_mut() {
        if let Some(k) = &r.kernel_baseline {
            r.ratio_kernel = ratio(&snapshot, &r.name, k);
        }
        if let Some(u) = &r.uml_baseline {
            r.ratio_uml = ratio(&snapshot, &r.name, u);
        }
    }
}

/// A target of the issue, checked against this run.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub what: &'static str,
    pub numerator: &'static str,
    pub denominator: &'static str,
    pub target: f64,
    pub value: Option<f64>,
    /// `None` when one side was not measured in this run.
    pub met: Option<bool>,
}

const TARGETS: [(&str, &str, &str, f64); 9] = [
    (
        "64 B xconnect vs kernel bridge",
        "vecbox/xconnect/raw/64/d64/vec/off1",
        "kernel/bridge/64/off1",
        1.2,
    ),
    (
        "64 B xconnect vs UML",
        "vecbox/xconnect/raw/64/d64/vec/off1",
        "uml/raw/64",
        5.0,
    ),
    (
        "64 B router vs kernel forwarding",
        "vecbox/router/raw/64/d64/vec/off1",
        "kernel/forward/64/off1",
        1.2,
    ),
    (
        "64 B router vs UML",
        "vecbox/router/raw/64/d64/vec/off1",
        "uml/raw/64",
        5.0,
    ),
    (
        "TCP offloads on vs kernel",
        "vecbox/tcp/1s/off1",
        "kernel/tcp/1s/off1",
        1.0,
    ),
    (
        "TCP offloads on vs UML",
        "vecbox/tcp/1s/off1",
        "uml/tcp/1s/off1",
        2.0,
    ),
    (
        "vector vs vec=0 (64 B xconnect)",
        "vecbox/xconnect/raw/64/d64/vec/off1",
        "vecbox/xconnect/raw/64/d64/vec0/off1",
        1.3,
    ),
    (
        "firewall 1000 rules vs router (64 B)",
        "vecbox/firewall/raw/64/d64/vec/off1",
        "vecbox/router/raw/64/d64/vec/off1",
        0.85,
    ),
    (
        "GRE vs UML GRE (64 B)",
        "vecbox/xconnect/gre/64/d64/vec/off1",
        "uml/gre/64",
        3.0,
    ),
];

pub fn targets(rows: &[Row]) -> Vec<Target> {
    TARGETS
        .iter()
        .map(|&(what, numerator, denominator, target)| {
            let value = ratio(rows, numerator, denominator);
            Target {
                what,
                numerator,
                denominator,
                target,
                value,
                met: value.map(|v| v >= target),
            }
        })
        .collect()
}

/// The machine the run was on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let kernel = nix::sys::utsname::uname()
            .map(|u| {
                format!(
                    "{} {}",
                    u.sysname().to_string_lossy(),
                    u.release().to_string_lossy()
                )
            })
            .unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
        }
    }
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub command: String,
    pub date: String,
    pub machine: Machine,
    pub reps: usize,
    pub window_secs: f64,
    /// Generator used, and what each offered in the start-up comparison (pps).
    pub generator: Option<Generator>,
    /// In JSON: generator name → pps.
    #[serde(serialize_with = "by_generator")]
    pub generator_rates: Vec<(Generator, f64)>,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
}

fn by_generator<S: serde::Serializer>(v: &[(Generator, f64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(g, pps)| (g, pps)))
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

pub const TABLE_HEADER: &str = "scenario                                       offered Mpps  delivered Mpps (min-max)   Gbit/s   loss   x kernel  x UML";

/// One line of the live table.
pub fn table_line(r: &Row) -> String {
    if r.status != Status::Ok {
        return format!(
            "{:<46} {}: {}",
            r.name,
            if r.status == Status::Skipped {
                "skipped"
            } else {
                "FAILED"
            },
            r.reason.as_deref().unwrap_or("")
        );
    }
    let m = |v: f64| format!("{:.3}", v / 1e6);
    let (off, del) = if r.is_pps() {
        (
            m(r.offered_pps.median),
            format!(
                "{} ({}-{})",
                m(r.delivered_pps.median),
                m(r.delivered_pps.min),
                m(r.delivered_pps.max)
            ),
        )
    } else {
        ("-".into(), "-".into())
    };
    let mut s = format!(
        "{:<46} {:>12}  {:<25} {:>7.2}  {:>5}  {:>8}  {:>5}",
        r.name,
        off,
        del,
        r.delivered_gbps.median,
        opt(r.loss, |l| format!("{:.1}%", l * 100.0)),
        opt(r.ratio_kernel, |x| format!("{x:.2}x")),
        opt(r.ratio_uml, |x| format!("{x:.2}x")),
    );
    if let Some(n) = r.ndr_pps {
        let _ = write!(s, "  NDR {:.3} Mpps", n / 1e6);
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
        "scenario,status,reason,generator,reps,offered_pps,delivered_pps,delivered_pps_min,delivered_pps_max,gbps,gbps_min,gbps_max,loss,ratio_kernel,ratio_uml,kernel_baseline,uml_baseline,ndr_pps\n",
    );
    let o = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    for r in &res.rows {
        let status = serde_json::to_value(r.status).ok();
        let generator = r.generator.and_then(|g| serde_json::to_value(g).ok());
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.0},{:.0},{:.0},{:.0},{:.4},{:.4},{:.4},{},{},{},{},{},{}",
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
            o(r.ratio_kernel),
            o(r.ratio_uml),
            r.kernel_baseline.as_deref().unwrap_or(""),
            r.uml_baseline.as_deref().unwrap_or(""),
            o(r.ndr_pps),
        );
    }
    out
}

pub const BEGIN: &str = "<!-- bench:begin -->";
pub const END: &str = "<!-- bench:end -->";

/// The generated block of docs/performance.md (between [`BEGIN`] and [`END`]).
pub fn markdown(res: &Results, svg_name: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "<!-- generated by `vecbox bench --report`; edit outside the markers -->\n"
    );
    let _ = writeln!(s, "- command: `{}`", res.command);
    let _ = writeln!(s, "- date: {}", res.date);
    let _ = writeln!(
        s,
        "- machine: {} ({} cores), {}",
        res.machine.cpu, res.machine.cores, res.machine.kernel
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
    let _ = writeln!(
        s,
        "### Targets\n\n| ratio | target | measured | |\n|---|---:|---:|---|"
    );
    for t in &res.targets {
        let _ = writeln!(
            s,
            "| {} | ≥ {}× | {} | {} |",
            t.what,
            t.target,
            opt(t.value, |v| format!("{v:.2}×")),
            match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            }
        );
    }
    let _ = writeln!(
        s,
        "\n### Scenarios\n\n| scenario | offered Mpps | delivered Mpps (min–max) | Gbit/s | loss | × kernel | × UML | NDR Mpps |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &res.rows {
        if r.status != Status::Ok {
            let _ = writeln!(
                s,
                "| {} | {} | {} | | | | | |",
                r.name,
                if r.status == Status::Skipped {
                    "skipped"
                } else {
                    "failed"
                },
                r.reason
                    .as_deref()
                    .unwrap_or("")
                    .replace('\n', " ")
                    .replace('|', "/")
            );
            continue;
        }
        let m = |v: f64| format!("{:.3}", v / 1e6);
        let pps = r.is_pps();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} ({:.2}–{:.2}) | {} | {} | {} | {} |",
            r.name,
            if pps {
                m(r.offered_pps.median)
            } else {
                "-".into()
            },
            if pps {
                format!(
                    "{} ({}–{})",
                    m(r.delivered_pps.median),
                    m(r.delivered_pps.min),
                    m(r.delivered_pps.max)
                )
            } else {
                "-".into()
            },
            r.delivered_gbps.median,
            r.delivered_gbps.min,
            r.delivered_gbps.max,
            opt(r.loss, |l| format!("{:.1} %", l * 100.0)),
            opt(r.ratio_kernel, |x| format!("{x:.2}×")),
            opt(r.ratio_uml, |x| format!("{x:.2}×")),
            opt(r.ndr_pps, m),
        );
    }
    let _ = writeln!(
        s,
        "\n![vecbox bench: pps and Gbit/s per scenario with the kernel and UML baselines]({svg_name})\n"
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

#[cfg(test)]
mod tests;
