//! What the router shows operators: Prometheus series and the console's `proc routes`
//! and `proc neigh` files (docs/metrics.md, docs/console.md).

use std::fmt::Write as _;

use super::config::RouterConfig;
use super::neigh::Neighbors;
use super::{Router, TICKS_PER_SEC};
use crate::metrics::{DropReason, MetricSink};
use crate::nf::{NfError, Output, known_names, port_mac, port_names};
use crate::transport::Spec;
use crate::wire::Mac;

/// Console files of the router.
pub const PROC_FILES: &[&str] = &["routes", "neigh"];

fn mac_text(m: [u8; 6]) -> String {
    let parts: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

impl Router {
    /// The interfaces changed (console `config`/`remove`): re-read `config=FILE` for the
    /// new ports, which may still name a port that was just removed. Ports that stay
    /// keep their MAC and resolved neighbours; held frames are dropped (`no_neighbor`),
    /// counters carry on. A file that no longer loads refuses the change.
    pub(super) fn reconfigure(
        &mut self,
        specs: &[Spec],
        out: &mut dyn Output,
    ) -> Result<(), NfError> {
        let Some(path) = self.config_path.clone() else {
            return Err(NfError::FixedPorts { function: "router" });
        };
        let names = port_names(specs);
        let cfg = RouterConfig::load(&path, &known_names(&names, &self.names)).map_err(|e| {
            NfError::Config {
                function: "router",
                msg: format!("{e} (re-read because the interfaces change)"),
            }
        })?;
        let old = |name: &String| self.names.iter().position(|n| n == name);
        let macs: Vec<Mac> = specs
            .iter()
            .zip(&names)
            .map(|(s, n)| match old(n) {
                Some(i) if s.common.mac.is_none() => self.ports[i].mac,
                _ => port_mac(s),
            })
            .collect();
        let mut next = Router::with_config(&cfg, &names, &macs);
        let table = std::mem::replace(&mut self.neigh, Neighbors::new(0));
        for ((port, ip), n) in table.entries() {
            for (f, _) in n.held.iter().flatten() {
                out.discard(*f, DropReason::NoNeighbor);
            }
            let to = names.iter().position(|x| Some(x) == self.names.get(port));
            if let (Some(mac), Some(to), false) = (n.mac, to, n.permanent) {
                next.neigh.touch(to, ip, n.updated);
                next.neigh.learn(to, ip, mac, n.updated, false);
            }
        }
        next.neigh.evictions = table.evictions;
        next.stats = self.stats;
        next.now = self.now;
        next.config_path = Some(path);
        tracing::info!(ports = ?names, "router: interfaces changed, configuration re-read");
        *self = next;
        Ok(())
    }

    fn port_name(&self, port: usize) -> &str {
        self.names.get(port).map_or("?", String::as_str)
    }

    /// Export table sizes and the router's own counters.
    pub(super) fn export(&self, out: &mut dyn MetricSink) {
        out.gauge(
            "vecbox_router_routes",
            "Routes in the table (connected and static, both IP versions).",
            &[],
            self.routes.len() as f64,
        );
        out.gauge(
            "vecbox_router_neighbours",
            "Neighbour entries (ARP and IPv6 ND), resolved or being resolved.",
            &[],
            self.neigh.len() as f64,
        );
        out.gauge(
            "vecbox_router_held_frames",
            "Frames waiting for a neighbour to be resolved.",
            &[],
            self.neigh.held() as f64,
        );
        out.counter(
            "vecbox_router_neighbour_evictions_total",
            "Neighbour entries evicted to make room in a full table.",
            &[],
            self.neigh.evictions,
        );
        for (event, n) in self.counters() {
            out.counter(
                "vecbox_router_events_total",
                "Router events by kind (forwarded, echo_replies, arp_requests, no_route, ...).",
                &[("event", event)],
                n,
            );
        }
    }

    /// `routes`: `PREFIX dev vecN [via GATEWAY]`, most specific first, as `ip route`.
    /// `neigh`: `ADDRESS dev vecN lladdr MAC STATE AGE`, as `ip neigh` (age in seconds).
    pub(super) fn proc(&self, name: &str) -> Option<String> {
        let mut s = String::new();
        match name {
            "routes" => {
                for (p, nh) in self.routes.entries() {
                    let _ = write!(s, "{}/{} dev {}", p.addr, p.len, self.port_name(nh.port));
                    if let Some(gw) = nh.gateway {
                        let _ = write!(s, " via {gw}");
                    }
                    s.push('\n');
                }
            }
            "neigh" => {
                for ((port, ip), n) in self.neigh.entries() {
                    let (mac, state) = match (n.mac, n.permanent) {
                        (Some(m), true) => (mac_text(m), "PERMANENT"),
                        (Some(m), false) => (mac_text(m), "REACHABLE"),
                        (None, _) => ("-".to_string(), "INCOMPLETE"),
                    };
                    let age = if n.permanent {
                        0
                    } else {
                        self.now.wrapping_sub(n.updated) / TICKS_PER_SEC
                    };
                    let _ = writeln!(
                        s,
                        "{ip} dev {} lladdr {mac} {state} {age}",
                        self.port_name(port)
                    );
                }
            }
            _ => return None,
        }
        Some(s)
    }
}
