//! What a guest prints when it ends: per-port counters, drops by reason, batch sizes,
//! offload use, and the function's own state. Also written as JSON with `stats=FILE`;
//! its JSON Schema ([`schema`], docs/guest-report.schema.json) is generated from these
//! types, their doc comments becoming its descriptions.

use std::fmt;

use schemars::JsonSchema;
use serde::{Serialize, Serializer};

use super::Guest;
use crate::metrics::json::DropCounts;
use crate::metrics::{DropReason, PortStats};

/// One port of the guest.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PortReport {
    /// Interface name in the guest (`vec0`, ...).
    pub name: String,
    /// `raw`, `tap`, `hybrid`, `fd`, `gre`, `l2tpv3`, `bess`.
    pub transport: &'static str,
    /// Host interface the port is attached to, if any.
    pub host_if: Option<String>,
    /// Frames carry virtio-net headers.
    pub vnet: bool,
    /// GSO super-frames may leave the port whole (`gro=1`, or `gro=` not given and the
    /// port and its interface can carry them).
    pub tx_gso: bool,
    /// Receives through a memory-mapped ring (`ring=`, raw/hybrid) rather than
    /// `recvmmsg`.
    pub rx_ring: bool,
    /// Which ring: `frames` (TPACKET_V2, `ring=1`) or `blocks` (TPACKET_V3, `ring=2`);
    /// null without one.
    pub rx_ring_layout: Option<&'static str>,
    /// Packet, byte, batch and offload counters.
    pub stats: PortStats,
    /// Dropped frames by reason.
    pub drops: DropCounts,
    /// Each impairment direction configured on the port (docs/impairments.md); empty
    /// without impairments.
    pub impair: Vec<super::impair::ImpairReport>,
}

/// The exit report of a vecbox guest (`vecbox guest ... stats=FILE`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Report {
    /// Instance name (`umid=`).
    pub umid: String,
    /// Network function: `xconnect`, `bridge`, `router`, `firewall`.
    pub function: &'static str,
    /// Seconds from start to the report.
    pub uptime_secs: f64,
    /// One entry per port, in port order.
    pub ports: Vec<PortReport>,
    /// The network function's own counters and table sizes by name (docs/router.md,
    /// docs/firewall.md; the bridge has `fdb_entries`, `fdb_evictions`, `fdb_moves`).
    /// Whole numbers are JSON integers, anything else a string.
    pub function_state: FunctionState,
}

/// Named values reported by a network function, in its order.
#[derive(Clone, Debug, Default)]
pub struct FunctionState(pub Vec<(&'static str, String)>);

impl Serialize for FunctionState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| {
            let value = match v.parse::<u64>() {
                Ok(n) => serde_json::Value::from(n),
                Err(_) => serde_json::Value::from(v.as_str()),
            };
            (k, value)
        }))
    }
}

impl JsonSchema for FunctionState {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FunctionState".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "additionalProperties": {"type": ["integer", "string"]},
        })
    }
}

/// The report's JSON Schema, as published in docs/guest-report.schema.json.
pub fn schema() -> String {
    let s = schemars::schema_for!(Report);
    serde_json::to_string_pretty(&s).unwrap_or_default()
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
                    rx_ring_layout: p.ring_kind(),
                    stats: p.stats,
                    drops: DropCounts(p.stats.drops),
                    impair: super::impair::reports(p),
                })
                .collect(),
            function_state: FunctionState(g.nf.summary()),
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
                p.rx_ring_layout.unwrap_or("off"),
                s.rx_gso_frames,
                s.tx_gso_frames,
                s.tx_gso_segmented,
                s.tx_gso_segments,
                s.tx_csum_completed,
                s.fallbacks
            )?;
            let d: Vec<String> = DropReason::ALL
                .iter()
                .filter(|r| s.dropped(**r) > 0)
                .map(|r| format!("{r}={}", s.dropped(*r)))
                .collect();
            if !d.is_empty() {
                write!(f, "; drops {}", d.join(" "))?;
            }
            writeln!(f)?;
            for im in &p.impair {
                writeln!(f, "{} impair {im}", p.name)?;
            }
        }
        if !self.function_state.0.is_empty() {
            let s: Vec<String> = self
                .function_state
                .0
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(f, "{}: {}", self.function, s.join(" "))?;
        }
        Ok(())
    }
}
