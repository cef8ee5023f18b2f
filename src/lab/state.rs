//! The live state of a running lab, written by its supervisor about once a second to
//! `/run/vecbox/LAB/state.json` and read by `vecbox status`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::netlink::{self, LinkCounters, NetNs};

/// State of one node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeState {
    pub name: String,
    pub kind: String,
    /// `up` (hosts), `starting`, `running`, `restarting`, `stopped`, `failed`.
    pub state: String,
    pub pid: Option<i32>,
    pub restarts: u32,
    /// How the last run ended, if it did.
    pub last_exit: Option<String>,
    /// Control socket (`vecbox console UMID`), for guests and UML.
    pub console: Option<String>,
    /// Log file.
    pub log: Option<String>,
}

/// Counters and rates of one link, measured on one of its kernel devices.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkState {
    /// `node:iface – node:iface` as written.
    pub name: String,
    pub kind: String,
    /// Where it is measured: `namespace/device`, if the link has a device.
    pub device: Option<String>,
    pub counters: LinkCounters,
    /// Packets and bits per second, A→B and B→A (in JSON: `{"a_to_b": .., "b_to_a": ..}`).
    #[serde(with = "directions")]
    pub pps: [f64; 2],
    #[serde(with = "directions")]
    pub bps: [f64; 2],
}

/// `[A→B, B→A]` as `{"a_to_b": .., "b_to_a": ..}`, so that readers of `status --json`
/// see which direction a rate is.
mod directions {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Directions {
        a_to_b: f64,
        b_to_a: f64,
    }

    pub fn serialize<S: Serializer>(v: &[f64; 2], s: S) -> Result<S::Ok, S::Error> {
        Directions {
            a_to_b: v[0],
            b_to_a: v[1],
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; 2], D::Error> {
        let v = Directions::deserialize(d)?;
        Ok([v.a_to_b, v.b_to_a])
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LabState {
    pub lab: String,
    pub supervisor: i32,
    pub nodes: Vec<NodeState>,
    pub links: Vec<LinkState>,
    /// Unix time of the last update.
    pub updated: u64,
}

/// Write `s` atomically into `dir/state.json`.
pub fn write(dir: &Path, s: &LabState) -> std::io::Result<()> {
    let tmp = dir.join("state.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, dir.join("state.json"))
}

/// Read `dir/state.json`.
pub fn read(dir: &Path) -> Option<LabState> {
    serde_json::from_slice(&std::fs::read(dir.join("state.json")).ok()?).ok()
}

/// Sample the counters of every link's device; `prev` (with the time since) turns them
/// into rates.
pub fn sample_links(plan: &Plan, prev: &[LinkState], dt: Duration) -> Vec<LinkState> {
    let mut by_ns: BTreeMap<String, Vec<(String, String, LinkCounters)>> = BTreeMap::new();
    let devices: Vec<Option<(String, String)>> =
        (0..plan.links.len()).map(|i| plan.link_device(i)).collect();
    for (ns, _) in devices.iter().flatten() {
        if by_ns.contains_key(ns) {
            continue;
        }
        let got = NetNs::existing(ns)
            .rtnl(|h| async move { netlink::dump_links(&h).await })
            .unwrap_or_default();
        by_ns.insert(ns.clone(), got);
    }
    let secs = dt.as_secs_f64().max(1e-3);
    plan.links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut s = LinkState {
                name: format!("{} – {}", l.names[0], l.names[1]),
                kind: l.kind.to_string(),
                ..LinkState::default()
            };
            let Some((ns, dev)) = &devices[i] else {
                return s;
            };
            s.device = Some(format!("{ns}/{dev}"));
            let Some(c) = by_ns
                .get(ns)
                .and_then(|v| v.iter().find(|(n, _, _)| n == dev))
                .map(|(_, _, c)| *c)
            else {
                return s;
            };
            s.counters = c;
            // Measured at end A when A has the device: its tx is A→B; else at end B.
            let at_a = {
                let (n, f) = l.ends[0];
                plan.nodes[n].ifaces[f].kernel.as_deref() == Some(dev.as_str())
            };
            if let Some(p) = prev.get(i).filter(|p| p.device == s.device) {
                let d = |now: u64, was: u64| now.saturating_sub(was) as f64 / secs;
                let (tx_p, rx_p) = (
                    d(c.tx_packets, p.counters.tx_packets),
                    d(c.rx_packets, p.counters.rx_packets),
                );
                let (tx_b, rx_b) = (
                    d(c.tx_bytes, p.counters.tx_bytes) * 8.0,
                    d(c.rx_bytes, p.counters.rx_bytes) * 8.0,
                );
                if at_a {
                    s.pps = [tx_p, rx_p];
                    s.bps = [tx_b, rx_b];
                } else {
                    s.pps = [rx_p, tx_p];
                    s.bps = [rx_b, tx_b];
                }
            }
            s
        })
        .collect()
}

/// `12.3k` style numbers.
pub fn human(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}
