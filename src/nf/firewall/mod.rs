//! `firewall`: a stateful filter between ports that forwards like `xconnect` (two
//! ports) or `bridge` (MAC learning), deciding per IP packet with a rule file
//! (`rules=FILE`, language in [`rules`] and docs/firewall.md) and connection tracking
//! ([`conntrack`]). Rules are looked up through decision trees ([`classify`]) whose cost
//! does not grow with the rules that share a field, and a tracked connection remembers
//! its verdict ([`verdict`]), so its later packets skip the lookup. Every rule and the
//! default policy count packets and bytes; dropped frames are counted as `filtered` on
//! their input port.
//!
//! Non-IP frames (ARP, LLDP, ...) and IPv6 neighbour discovery pass unfiltered: they are
//! what makes the link work. Later IP fragments carry no ports: they match rules
//! without port conditions only.

pub mod classify;
pub mod conntrack;
mod cuts;
mod fields;
mod index;
mod ops;
pub mod reject;
pub mod rules;
mod tree;
mod verdict;

use super::bridge::Fdb;
use super::ip::{self, IpInfo};
use super::{Function, NfError, Output};
use crate::buf::Frame;
use crate::metrics::DropReason;
use crate::nf::router::build;
use crate::transport::Spec;
use classify::Classifier;
use conntrack::{Conntrack, Key, Seen, inner_key};
use rules::{Action, Packet, RuleSet, ct};

/// Connections tracked by default: room for 100 000 concurrent flows and more.
pub const CONNTRACK_MAX: usize = 131_072;
const OPTIONS: &str =
    "rules=FILE, mode=xconnect|bridge, conntrack_max=N (131072), aging=SECONDS (bridge, 300)";
/// Log lines per second at most (the rest are counted as suppressed).
const LOG_RATE: u32 = 20;

enum Mode {
    Xconnect,
    Bridge(Fdb),
}

/// Firewall counters besides the per-rule ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct FwStats {
    pub accepted: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub rst_sent: u64,
    pub unreachable_sent: u64,
    pub non_ip: u64,
    pub neighbor_discovery: u64,
    pub bad_header: u64,
    pub invalid: u64,
    pub logged: u64,
    pub log_suppressed: u64,
    /// Packets whose rule came from their connection's remembered verdict.
    pub cached: u64,
}

/// The firewall.
pub struct Firewall {
    mode: Mode,
    ports: usize,
    cls: Classifier,
    policy: Action,
    ct: Conntrack,
    /// Changes whenever the classifier is replaced: verdicts remembered by connections
    /// under another generation are stale.
    generation: u32,
    /// The trees for the current rules, being built by a background thread while the
    /// classifier scans (after the rules were re-read).
    pending: Option<std::sync::mpsc::Receiver<Classifier>>,
    /// (packets, bytes) per rule, then the policy's.
    hits: Vec<(u64, u64)>,
    /// Tests: classify every packet by the linear scan, remembering nothing.
    #[cfg(test)]
    uncached: bool,
    pub stats: FwStats,
    log_tokens: u32,
    ticks: u32,
    scratch: Box<[u8]>,
    /// Port names (`vecN`) and `rules=FILE` (absolute), re-read when they change.
    names: Vec<String>,
    rules_path: Option<std::path::PathBuf>,
}

fn opt_num(k: &str, v: &str, expected: &'static str) -> Result<usize, NfError> {
    v.parse().map_err(|_| NfError::BadOption {
        function: "firewall",
        key: k.to_string(),
        value: v.to_string(),
        expected,
    })
}

impl Firewall {
    /// Build from the guest's specs and options (`rules=FILE` required).
    pub fn new(specs: &[Spec], options: &[(String, String)]) -> Result<Firewall, NfError> {
        let mut path = None;
        let mut mode = None;
        let mut max = CONNTRACK_MAX;
        let mut aging = 300;
        for (k, v) in options {
            match k.as_str() {
                "rules" => path = Some(v.clone()),
                "mode" => match v.as_str() {
                    "xconnect" | "bridge" => mode = Some(v.clone()),
                    _ => {
                        return Err(NfError::BadOption {
                            function: "firewall",
                            key: k.clone(),
                            value: v.clone(),
                            expected: "xconnect or bridge",
                        });
                    }
                },
                "conntrack_max" => {
                    max = opt_num(k, v, "a number of connections from 1 to 2^31, e.g. 131072")?;
                    if !(1..=1 << 31).contains(&max) {
                        return Err(NfError::BadOption {
                            function: "firewall",
                            key: k.clone(),
                            value: v.clone(),
                            expected: "a number of connections from 1 to 2^31, e.g. 131072",
                        });
                    }
                }
                "aging" => aging = opt_num(k, v, "seconds, e.g. 300")?,
                _ => {
                    return Err(NfError::UnknownOption {
                        function: "firewall",
                        key: k.clone(),
                        accepted: OPTIONS,
                    });
                }
            }
        }
        let path = path.ok_or_else(|| NfError::Config {
            function: "firewall",
            msg: "needs rules=FILE (see docs/firewall.md)".into(),
        })?;
        let names = super::port_names(specs);
        let text = std::fs::read_to_string(&path).map_err(|e| NfError::Config {
            function: "firewall",
            msg: format!("{path}: {e}"),
        })?;
        let set = rules::parse(&path, &text, &names).map_err(|e| NfError::Config {
            function: "firewall",
            msg: e.to_string(),
        })?;
        let bridge = match mode.as_deref() {
            Some("bridge") => true,
            Some(_) => false,
            None => specs.len() != 2,
        };
        if !bridge && specs.len() != 2 {
            return Err(NfError::PortCount {
                function: "firewall (mode=xconnect)",
                want: 2,
                got: specs.len(),
            });
        }
        if specs.len() < 2 {
            return Err(NfError::TooFewPorts {
                function: "firewall",
                min: 2,
                got: specs.len(),
            });
        }
        let mut fw = Self::with_rules(set, specs.len(), bridge, max, aging as u32);
        fw.names = names;
        fw.rules_path = std::path::absolute(&path).ok();
        Ok(fw)
    }

    /// Build from parsed rules.
    pub fn with_rules(
        set: RuleSet,
        ports: usize,
        bridge: bool,
        conntrack_max: usize,
        aging: u32,
    ) -> Firewall {
        let n = set.rules.len();
        Firewall {
            mode: if bridge {
                Mode::Bridge(Fdb::new(4096, aging))
            } else {
                Mode::Xconnect
            },
            ports,
            cls: Classifier::new(set.rules),
            policy: set.policy,
            ct: Conntrack::new(conntrack_max),
            generation: 1,
            pending: None,
            hits: vec![(0, 0); n + 1],
            #[cfg(test)]
            uncached: false,
            stats: FwStats::default(),
            log_tokens: LOG_RATE,
            ticks: 0,
            scratch: vec![0u8; build::QUOTE_V6].into_boxed_slice(),
            names: (0..ports).map(|i| format!("vec{i}")).collect(),
            rules_path: None,
        }
    }

    /// (rule line, packets, bytes) per rule, then (0, ...) for the policy.
    pub fn rule_counters(&self) -> Vec<(usize, u64, u64)> {
        self.cls
            .rules()
            .iter()
            .map(|r| r.line)
            .chain([0])
            .zip(&self.hits)
            .map(|(l, (p, b))| (l, *p, *b))
            .collect()
    }

    /// Tracked connections.
    pub fn connections(&self) -> usize {
        self.ct.len()
    }

    /// Where the frame would go: `Some(port)` or `None` (flood).
    fn out_port(&mut self, port: usize, fr: &[u8]) -> Option<usize> {
        match &mut self.mode {
            Mode::Xconnect => Some(port ^ 1),
            Mode::Bridge(fdb) => {
                let mut src = [0u8; 6];
                src.copy_from_slice(&fr[6..12]);
                if src[0] & 1 == 0 {
                    fdb.learn(&src, port);
                }
                let mut dst = [0u8; 6];
                dst.copy_from_slice(&fr[0..6]);
                if dst[0] & 1 != 0 {
                    None
                } else {
                    fdb.lookup(&dst)
                }
            }
        }
    }

    fn pass(&mut self, out: &mut dyn Output, port: usize, to: Option<usize>, f: Frame) {
        match to {
            Some(p) if p == port => out.discard(f, DropReason::NoRoute),
            Some(p) => out.forward(p, f),
            None => out.flood(port, f),
        }
    }

    fn log(&mut self, rule: Option<usize>, action: Action, p: &Packet, info: &IpInfo) {
        if self.log_tokens == 0 {
            self.stats.log_suppressed += 1;
            return;
        }
        self.log_tokens -= 1;
        self.stats.logged += 1;
        let line = rule.map(|r| self.cls.rules()[r].line);
        let (sp, dp) = p.ports.unwrap_or((0, 0));
        tracing::info!(
            target: "vecbox::firewall",
            rule_line = ?line,
            action = ?action,
            in_port = p.in_port,
            proto = p.proto,
            state = p.ct,
            "{}:{sp} -> {}:{dp}",
            info.src,
            info.dst
        );
    }

    fn filter(
        &mut self,
        out: &mut dyn Output,
        port: usize,
        f: Frame,
        info: IpInfo,
        to: Option<usize>,
    ) {
        let fr = out.frame(&f);
        let (v6, src) = rules::key(info.src);
        let (_, dst) = rules::key(info.dst);
        let mut p = Packet {
            in_port: port,
            out_port: to,
            v6,
            src,
            dst,
            proto: info.proto,
            ..Packet::default()
        };
        let mut flags = 0;
        let mut related = false;
        if !info.later_fragment {
            match info.proto {
                ip::PROTO_TCP | ip::PROTO_UDP | 132 => {
                    p.ports = ip::ports(fr, info.l4_off, info.end);
                    if info.proto == ip::PROTO_TCP {
                        flags = ip::tcp_flags(fr, info.l4_off, info.end).unwrap_or(0);
                    }
                }
                ip::PROTO_ICMP | ip::PROTO_ICMPV6 => {
                    if let Some((t, _, id)) = ip::icmp(fr, info.l4_off, info.end) {
                        p.icmp_type = Some(t);
                        let echo = matches!((v6, t), (false, 0 | 8) | (true, 128 | 129));
                        if echo {
                            p.ports = Some((id, id));
                        } else if matches!((v6, t), (false, 3 | 11 | 12) | (true, 1..=4)) {
                            related = inner_key(fr, info.l4_off + 8, info.end, v6)
                                .is_some_and(|k| self.ct.find(&k) != Seen::Unknown);
                            if !related {
                                p.ct = ct::INVALID;
                            }
                        }
                        if v6 && (133..=137).contains(&t) && info.ttl == 255 {
                            self.stats.neighbor_discovery += 1;
                            return self.pass(out, port, to, f);
                        }
                    }
                }
                _ => {}
            }
        }
        let (sport, dport) = p.ports.unwrap_or((0, 0));
        let key = Key {
            v6,
            proto: info.proto,
            src,
            dst,
            sport,
            dport,
        };
        let seen = self.ct.find(&key);
        if related {
            p.ct = ct::RELATED;
        } else if p.ct == 0 {
            p.ct = self.ct.state(seen, info.proto, flags);
        }
        if p.ct == ct::INVALID {
            self.stats.invalid += 1;
        }
        let rule = self.classify(&p, seen);
        let (action, log) = match rule {
            Some(r) => {
                let r = &self.cls.rules()[r];
                (r.action, r.log)
            }
            None => (self.policy, false),
        };
        let slot = rule.unwrap_or(self.hits.len() - 1);
        let h = &mut self.hits[slot];
        h.0 += 1;
        h.1 += u64::from(f.len);
        if log {
            self.log(rule, action, &p, &info);
        }
        match action {
            Action::Accept => {
                self.stats.accepted += 1;
                if p.ct & (ct::NEW | ct::ESTABLISHED) != 0
                    && let Some(slot) = self.ct.update(&key, seen, flags)
                    && seen == Seen::Unknown
                {
                    // The new connection's first verdict, for its next packets.
                    self.remember(slot, &p, rule);
                }
                self.pass(out, port, to, f);
            }
            Action::Drop => {
                self.stats.dropped += 1;
                out.discard(f, DropReason::Filtered);
            }
            Action::Reject => {
                self.stats.rejected += 1;
                self.reject(out, &f, port, &info);
                out.discard(f, DropReason::Filtered);
            }
        }
    }
}

impl Function for Firewall {
    fn name(&self) -> &'static str {
        "firewall"
    }

    fn process(&mut self, port: usize, frames: &[Frame], out: &mut dyn Output) {
        for &f in frames {
            let fr = out.frame(&f);
            if fr.len() < 14 || port >= self.ports {
                out.discard(f, DropReason::Runt);
                continue;
            }
            let to = self.out_port(port, out.frame(&f));
            match ip::parse(out.frame(&f)) {
                None => {
                    self.stats.non_ip += 1;
                    self.pass(out, port, to, f);
                }
                Some(Err(_)) => {
                    self.stats.bad_header += 1;
                    out.discard(f, DropReason::BadHeader);
                }
                Some(Ok(info)) => self.filter(out, port, f, info, to),
            }
        }
    }

    fn timer(&mut self, _now: std::time::Instant, _out: &mut dyn Output) {
        self.ticks += 1;
        self.adopt_trees();
        let budget = self.ct.sweep_budget();
        self.ct.tick(budget);
        self.log_tokens = (self.log_tokens + LOG_RATE / 4).min(LOG_RATE);
        if let Mode::Bridge(fdb) = &mut self.mode
            && self.ticks.is_multiple_of(4)
        {
            fdb.advance(self.ticks / 4);
        }
    }

    fn buffers_needed(&self) -> usize {
        32
    }

    fn summary(&self) -> Vec<(&'static str, String)> {
        let s = &self.stats;
        let hits: Vec<String> = self
            .rule_counters()
            .iter()
            .map(|(l, p, b)| {
                if *l == 0 {
                    format!("policy={p}/{b}")
                } else {
                    format!("L{l}={p}/{b}")
                }
            })
            .collect();
        vec![
            ("accepted", s.accepted.to_string()),
            ("dropped", s.dropped.to_string()),
            ("rejected", s.rejected.to_string()),
            ("rst_sent", s.rst_sent.to_string()),
            ("unreachable_sent", s.unreachable_sent.to_string()),
            ("invalid", s.invalid.to_string()),
            ("non_ip", s.non_ip.to_string()),
            ("neighbor_discovery", s.neighbor_discovery.to_string()),
            ("bad_header", s.bad_header.to_string()),
            ("logged", s.logged.to_string()),
            ("log_suppressed", s.log_suppressed.to_string()),
            ("connections", self.ct.len().to_string()),
            ("conntrack_created", self.ct.created.to_string()),
            ("conntrack_expired", self.ct.expired.to_string()),
            ("conntrack_evictions", self.ct.evictions.to_string()),
            ("conntrack_bucket_full", self.ct.bucket_full.to_string()),
            ("verdicts_cached", s.cached.to_string()),
            ("rule_hits", hits.join(" ")),
        ]
    }

    fn metrics(&self, out: &mut dyn crate::metrics::MetricSink) {
        self.export(out)
    }

    fn set_ports(&mut self, ports: &[Spec], _out: &mut dyn Output) -> Result<(), NfError> {
        self.reconfigure(ports)
    }

    fn proc_files(&self) -> &'static [&'static str] {
        ops::PROC_FILES
    }

    fn proc_file(&self, name: &str) -> Option<String> {
        self.proc(name)
    }
}

#[cfg(test)]
mod tests;
