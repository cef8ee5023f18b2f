//! What a guest prints when it ends: per-port counters, drops by reason, batch sizes,
//! offload use, and the function's own state. Also written as JSON with `stats=FILE`.

use std::fmt;

use serde::Serialize;

use super::Guest;
use crate::metrics::{DropReason, PortStats};

/// One port's line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct PortReport {
    pub name: String,
    pub transport: &'static str,
    pub host_if: Option<String>,
    pub vnet: bool,
    pub tx_gso: bool,
    /// Receives through a TPACKET_V3 memory-mapped ring (`ring=`, raw/hybrid).
    pub rx_ring: bool,
    pub stats: PortStats,
    /// Non-zero drop counters by reason name.
    pub drops: Vec<(&'static str, u64)>,
    /// Impairment of each direction that has (or had) one.
    pub impair: Vec<ImpairReport>,
}

/// One impairment direction of a port.
#[derive(Clone, Debug, Serialize)]
pub struct ImpairReport {
    /// `tx` or `rx`.
    pub direction: &'static str,
    /// Settings at the end, as `key=value` words (`none` if cleared).
    pub settings: String,
    pub counters: crate::impair::Counters,
    /// Impairment drops by reason name.
    pub dropped: Vec<(&'static str, u64)>,
    /// Frames still held when the report was made.
    pub in_flight: usize,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub umid: String,
    pub function: &'static str,
    pub uptime_secs: f64,
    pub ports: Vec<PortReport>,
    pub function_state: Vec<(&'static str, String)>,
}

impl Report {
    pub(super) fn new(g: &Guest) -> Report {
        Report {
            umid: g.args.umid.clone(),
            function: g.nf.name(),
            uptime_secs: g.uptime().as_secs_f64(),
            ports: g
                .ports
                .iter()
                .map(|p| PortReport {
                    name: p.name.clone(),
                    transport: p.spec.transport_name(),
                    host_if: p.host_if.clone(),
                    vnet: p.caps.vnet,
                    tx_gso: p.caps.tx_gso,
                    rx_ring: p.uses_ring(),
                    stats: p.stats,
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| (r.name(), p.stats.dropped(*r)))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                    impair: crate::impair::Direction::BOTH
                        .iter()
                        .filter_map(|d| {
                            let st = p.impairment(*d)?;
                            Some(ImpairReport {
                                direction: d.name(),
                                settings: st.params().to_string(),
                                counters: st.counters,
                                dropped: crate::impair::Dropped::ALL
                                    .iter()
                                    .map(|r| (r.name(), st.counters.dropped(*r)))
                                    .collect(),
                                in_flight: st.in_flight(),
                            })
                        })
                        .collect(),
                })
                .collect(),
            function_state: g.nf.summary(),
        }
    }

    /// JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "vecbox guest {} ({}) ran {:.1} s",
            self.umid, self.function, self.uptime_secs
        )?;
        writeln!(
            f,
            "{:<6} {:<9} {:<15} {:>12} {:>14} {:>12} {:>14} {:>9}",
            "port",
            "transport",
            "host-if",
            "rx_packets",
            "rx_bytes",
            "tx_packets",
            "tx_bytes",
            "dropped"
        )?;
        for p in &self.ports {
            let s = &p.stats;
            writeln!(
                f,
                "{:<6} {:<9} {:<15} {:>12} {:>14} {:>12} {:>14} {:>9}",
                p.name,
                p.transport,
                p.host_if.as_deref().unwrap_or("-"),
                s.rx_packets,
                s.rx_bytes,
                s.tx_packets,
                s.tx_bytes,
                s.dropped_total()
            )?;
        }
        for p in &self.ports {
            let s = &p.stats;
            write!(
                f,
                "{}: batches rx max {} avg {} / tx max {} avg {}; restarts {}",
                p.name,
                s.rx_batch.max,
                s.rx_batch.running_average,
                s.tx_batch.max,
                s.tx_batch.running_average,
                s.tx_restart_queue
            )?;
            write!(
                f,
                "; vnet {} gso-out {} rx-ring {}; gso rx {} tx {} segmented {} ({} segments); csum completed {}; fallbacks {}",
                if p.vnet { "on" } else { "off" },
                if p.tx_gso { "on" } else { "off" },
                if p.rx_ring { "on" } else { "off" },
                s.rx_gso_frames,
                s.tx_gso_frames,
                s.tx_gso_segmented,
                s.tx_gso_segments,
                s.tx_csum_completed,
                s.fallbacks
            )?;
            if !p.drops.is_empty() {
                let d: Vec<String> = p.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
                write!(f, "; drops {}", d.join(" "))?;
            }
            writeln!(f)?;
            for im in &p.impair {
                let c = &im.counters;
                let d: Vec<String> = im.dropped.iter().map(|(r, n)| format!("{r}={n}")).collect();
                writeln!(
                    f,
                    "{} impair {} ({}): in {} out {} delayed {} dropped {} duplicated {} corrupted {} reordered {} in-flight {}",
                    p.name,
                    im.direction,
                    im.settings,
                    c.frames_in,
                    c.frames_out,
                    c.delayed,
                    d.join(" "),
                    c.duplicated,
                    c.corrupted,
                    c.reordered,
                    im.in_flight
                )?;
            }
        }
        if !self.function_state.is_empty() {
            let s: Vec<String> = self
                .function_state
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(f, "{}: {}", self.function, s.join(" "))?;
        }
        Ok(())
    }
}
