//! Results: rows, their ceilings and baselines, rate and cost ratios, where the work
//! ran, and the whole run. Renderings are in [`super::render`] and [`super::svg`];
//! targets and verdicts in [`super::verdict`].

use serde::Serialize;

use super::cpu::Usage;
use super::measure::{Sample, Stat};
use super::scenario::{Dut, Kind, Scenario, Transport};
use super::traffic::Generator;
use super::verdict::Target;

/// A row within this fraction of its ceiling measures the generator.
pub const GENERATOR_BOUND: f64 = 0.95;

/// Outcome of one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Failed,
}

/// CPU time per unit of work, all CPUs and the DUT's own processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Busy time of all CPUs per delivered frame, as measured (ns).
    pub ns_per_pkt: Option<f64>,
    /// The same less the ceiling's cost (generator and sink) of the offered frames.
    pub net_ns_per_pkt: Option<f64>,
    /// The DUT's processes per delivered frame (ns).
    pub dut_ns_per_pkt: Option<f64>,
    /// TCP: busy CPU milliseconds per Gbit delivered, as measured and less the
    /// ceiling's (the iperf3 endpoints'); the DUT's processes per Gbit.
    pub ms_per_gbit: Option<f64>,
    pub net_ms_per_gbit: Option<f64>,
    pub dut_ms_per_gbit: Option<f64>,
}

impl Cost {
    /// The figure cost ratios are taken on: net ns/frame, or net ms/Gbit for TCP.
    pub fn metric(&self) -> Option<f64> {
        self.net_ns_per_pkt.or(self.net_ms_per_gbit)
    }
}

/// Which CPU runs what in a row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Placement {
    pub generator: String,
    pub dut: String,
    /// Where the kernel's packet work (veth delivery, forwarding) runs.
    pub softirq: String,
    /// Measured busy share of each CPU (user/system/softirq), in percent.
    pub measured: String,
}

impl Placement {
    pub fn of(s: &Scenario) -> Placement {
        let tcp = matches!(s.kind, Kind::Tcp { .. });
        let generator = if tcp {
            "iperf3 client on CPU 0, server unpinned".to_string()
        } else {
            "CPU 0".to_string()
        };
        let bess = matches!(
            s.kind,
            Kind::Pps {
                transport: Transport::Bess,
                ..
            }
        );
        let (dut, softirq) = match s.dut {
            Dut::Ceiling => (
                "none (no hop)",
                "the sink's receive runs on the sending CPU",
            ),
            Dut::Kernel => (
                "the kernel, in softirq",
                "all on the sending CPU: forwarding and the sink's receive run in the generator's softirq (CPU 0)",
            ),
            Dut::Uml if bess => (
                "UML on CPU 1, BESS peer on CPU 0",
                "ingress delivery on CPU 0 (the generator's), egress on the sending side",
            ),
            Dut::Uml => (
                "UML on CPU 1",
                "ingress delivery on CPU 0 (the generator's), egress delivery on CPU 1",
            ),
            Dut::Vecbox if bess => (
                "vecbox on CPU 1, BESS peer on CPU 0",
                "ingress delivery on CPU 0 (the generator's), egress on the sending side",
            ),
            Dut::Vecbox => (
                "vecbox on CPU 1",
                "ingress delivery on CPU 0 (the generator's), egress delivery on CPU 1",
            ),
        };
        Placement {
            generator,
            dut: dut.into(),
            softirq: softirq.into(),
            measured: String::new(),
        }
    }
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
    /// The row with the same traffic and no hop.
    pub ceiling: Option<String>,
    pub kernel_baseline: Option<String>,
    pub uml_baseline: Option<String>,
    /// This row's median over its ceiling's.
    pub ceiling_share: Option<f64>,
    /// Within [`GENERATOR_BOUND`] of the ceiling: the generator set the rate.
    pub generator_bound: bool,
    /// Median of this row's main metric over the baseline's (pps; Gbit/s for TCP).
    pub ratio_kernel: Option<f64>,
    pub ratio_uml: Option<f64>,
    /// CPU time and work over the measurement.
    pub usage: Option<Usage>,
    pub cost: Cost,
    /// This row's net cost over the baseline's (below 1: cheaper per frame or Gbit).
    pub cost_ratio_kernel: Option<f64>,
    pub cost_ratio_uml: Option<f64>,
    pub placement: Placement,
    pub ndr_pps: Option<f64>,
}

impl Row {
    pub fn new(s: &Scenario) -> Row {
        let refs = s.refs();
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
            ceiling: refs.ceiling.map(|c| c.name()),
            kernel_baseline: refs.kernel.map(|k| k.name()),
            uml_baseline: refs.uml.map(|u| u.name()),
            ceiling_share: None,
            generator_bound: false,
            ratio_kernel: None,
            ratio_uml: None,
            usage: None,
            cost: Cost::default(),
            cost_ratio_kernel: None,
            cost_ratio_uml: None,
            placement: Placement::of(s),
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

    /// Attach the CPU time of the measurement.
    pub fn with_usage(mut self, u: Usage) -> Row {
        self.placement.measured = u.describe();
        self.usage = Some(u);
        self
    }

    pub fn is_pps(&self) -> bool {
        matches!(self.scenario.kind, Kind::Pps { .. })
    }

    /// Median, min and max of the metric ratios are taken on (pps; Gbit/s for TCP).
    pub fn metric_stat(&self) -> Option<Stat> {
        (self.status == Status::Ok).then(|| {
            if self.is_pps() {
                self.delivered_pps
            } else {
                self.delivered_gbps
            }
        })
    }

    /// The median of [`Row::metric_stat`].
    pub fn metric(&self) -> Option<f64> {
        self.metric_stat().map(|s| s.median)
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

/// The cost of `u` less `ceiling`'s cost for the same work.
pub fn cost(u: &Usage, ceiling: Option<&Usage>, pps: bool) -> Cost {
    let busy = u.busy_s();
    if pps {
        let per = |s: f64| (u.delivered_pkts > 0.0).then(|| s * 1e9 / u.delivered_pkts);
        let net = ceiling
            .filter(|c| c.offered_pkts > 0.0)
            .and_then(|c| per(busy - c.busy_s() / c.offered_pkts * u.offered_pkts));
        Cost {
            ns_per_pkt: per(busy),
            net_ns_per_pkt: net,
            dut_ns_per_pkt: per(u.dut_s),
            ..Cost::default()
        }
    } else {
        let gbit = u.delivered_bits / 1e9;
        let per = |s: f64| (gbit > 0.0).then(|| s * 1e3 / gbit);
        let net = ceiling
            .filter(|c| c.delivered_bits > 0.0)
            .and_then(|c| per(busy - c.busy_s() / (c.delivered_bits / 1e9) * gbit));
        Cost {
            ms_per_gbit: per(busy),
            net_ms_per_gbit: net,
            dut_ms_per_gbit: per(u.dut_s),
            ..Cost::default()
        }
    }
}

/// Fill row `i`'s comparisons with the rows before it: share of its ceiling,
/// generator-bound mark, cost, rate and cost ratios.
pub fn link(rows: &mut [Row], i: usize) {
    let (before, rest) = rows.split_at_mut(i);
    let r = &mut rest[0];
    let find = |n: &Option<String>| {
        n.as_ref().and_then(|n| {
            before
                .iter()
                .find(|b| &b.name == n && b.status == Status::Ok)
        })
    };
    let ceiling = find(&r.ceiling);
    if let (Some(m), Some(c)) = (r.metric(), ceiling.and_then(Row::metric))
        && c > 0.0
    {
        r.ceiling_share = Some(m / c);
        r.generator_bound = m >= GENERATOR_BOUND * c;
    }
    if let Some(u) = &r.usage {
        let ceiling_usage = if r.scenario.dut == Dut::Ceiling {
            None
        } else {
            ceiling.and_then(|c| c.usage.as_ref())
        };
        r.cost = cost(u, ceiling_usage, r.is_pps());
    }
    let metric = r.metric();
    let cost_metric = r.cost.metric();
    let ratios = |b: Option<&Row>| {
        let rate = match (metric, b.and_then(Row::metric)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let cost = match (cost_metric, b.and_then(|b| b.cost.metric())) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        (rate, cost)
    };
    (r.ratio_kernel, r.cost_ratio_kernel) = ratios(find(&r.kernel_baseline));
    (r.ratio_uml, r.cost_ratio_uml) = ratios(find(&r.uml_baseline));
}

/// [`link`] every row in order.
pub fn link_all(rows: &mut [Row]) {
    for i in 0..rows.len() {
        link(rows, i);
    }
}

/// The machine the run was on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    /// `net.core.netdev_max_backlog` (the per-CPU backlog veth delivers into).
    pub netdev_max_backlog: Option<u64>,
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
            netdev_max_backlog: std::fs::read_to_string("/proc/sys/net/core/netdev_max_backlog")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
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

impl Results {
    /// Rows that produced no result (skipped or failed), with the reason: each is a
    /// selected scenario or a ceiling or baseline one needs, so any makes the run fail.
    pub fn failures(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.status != Status::Ok)
            .map(|r| format!("{} ({})", r.name, r.reason.as_deref().unwrap_or("failed")))
            .collect()
    }
}

#[cfg(test)]
mod tests;
