//! What the firewall shows operators: Prometheus series (per-rule hits, verdicts,
//! connection tracking) and the console's `proc rules` and `proc conntrack` files
//! (docs/metrics.md, docs/console.md).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::conntrack::{Key, TcpState};
use super::rules::{self, Action};
use super::{Firewall, Mode};
use crate::metrics::MetricSink;
use crate::nf::{NfError, known_names, port_names};
use crate::transport::Spec;

/// Console files of the firewall.
pub const PROC_FILES: &[&str] = &["rules", "conntrack"];

/// Connections listed by `proc conntrack` at most (the console reply stays readable).
pub const CONNTRACK_LIST_MAX: usize = 1000;

fn action(a: Action) -> &'static str {
    match a {
        Action::Accept => "accept",
        Action::Drop => "drop",
        Action::Reject => "reject",
    }
}

fn addr(v6: bool, a: u128) -> String {
    if v6 {
        Ipv6Addr::from(a).to_string()
    } else {
        Ipv4Addr::from(a as u32).to_string()
    }
}

fn proto(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

fn conn_line(s: &mut String, k: &Key, tcp: TcpState, replied: bool, left: u32) {
    let state = match (k.proto, tcp) {
        (6, TcpState::SynSent) => "SYN_SENT",
        (6, TcpState::SynRecv) => "SYN_RECV",
        (6, TcpState::Established) => "ESTABLISHED",
        (6, TcpState::FinWait) => "FIN_WAIT",
        (6, TcpState::Closing) => "CLOSING",
        (6, TcpState::Close) => "CLOSE",
        _ if replied => "REPLIED",
        _ => "UNREPLIED",
    };
    let _ = writeln!(
        s,
        "{} {left} {state} src={} dst={} sport={} dport={}",
        proto(k.proto),
        addr(k.v6, k.src),
        addr(k.v6, k.dst),
        k.sport,
        k.dport
    );
}

impl Firewall {
    /// The interfaces changed (console `config`/`remove`): re-read `rules=FILE` for the
    /// new ports (it may still name a port that was just removed). Connections stay
    /// tracked; rule counters carry on when the rules are unchanged (else they restart
    /// from zero, the policy's carry on); the bridge forgets its stations. A rule file
    /// that no longer parses, or a third port in `mode=xconnect`, refuses the change.
    pub(super) fn reconfigure(&mut self, specs: &[Spec]) -> Result<(), NfError> {
        let Some(path) = self.rules_path.clone() else {
            return Err(NfError::FixedPorts {
                function: "firewall",
            });
        };
        if matches!(self.mode, Mode::Xconnect) && specs.len() > 2 {
            return Err(NfError::PortCount {
                function: "firewall (mode=xconnect)",
                want: 2,
                got: specs.len(),
            });
        }
        let bad = |msg: String| NfError::Config {
            function: "firewall",
            msg: format!("{msg} (re-read because the interfaces change)"),
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("{shown}: {e}")))?;
        let names = port_names(specs);
        let set = rules::parse(&shown, &text, &known_names(&names, &self.names))
            .map_err(|e| bad(e.to_string()))?;
        let old = self.cls.rules();
        let same = set.rules.len() == old.len()
            && set
                .rules
                .iter()
                .zip(old)
                .all(|(a, b)| (a.line, &a.text) == (b.line, &b.text));
        if !same {
            let policy = self.hits.last().copied().unwrap_or_default();
            self.hits = vec![(0, 0); set.rules.len()];
            self.hits.push(policy);
        }
        self.set_rules(set.rules);
        self.policy = set.policy;
        self.ports = specs.len();
        if let Mode::Bridge(fdb) = &mut self.mode {
            fdb.clear();
        }
        tracing::info!(ports = ?names, "firewall: interfaces changed, rules re-read");
        self.names = names;
        Ok(())
    }

    /// Export per-rule hits, verdict counters and connection tracking.
    pub(super) fn export(&self, out: &mut dyn MetricSink) {
        for (line, packets, bytes) in self.rule_counters() {
            let rule = if line == 0 {
                "policy".to_string()
            } else {
                format!("L{line}")
            };
            let labels = [("rule", rule.as_str())];
            out.counter(
                "vecbox_firewall_rule_packets_total",
                "Packets decided by this rule (L<line> of the rule file, or the default policy).",
                &labels,
                packets,
            );
            out.counter(
                "vecbox_firewall_rule_bytes_total",
                "Bytes decided by this rule.",
                &labels,
                bytes,
            );
        }
        let s = &self.stats;
        for (verdict, n) in [
            ("accepted", s.accepted),
            ("dropped", s.dropped),
            ("rejected", s.rejected),
            ("invalid", s.invalid),
            ("non_ip", s.non_ip),
            ("bad_header", s.bad_header),
        ] {
            out.counter(
                "vecbox_firewall_packets_total",
                "Packets by verdict (accepted, dropped, rejected; invalid, non_ip, bad_header).",
                &[("verdict", verdict)],
                n,
            );
        }
        out.gauge(
            "vecbox_conntrack_entries",
            "Tracked connections.",
            &[],
            self.ct.len() as f64,
        );
        for (name, help, v) in [
            (
                "vecbox_conntrack_created_total",
                "Connections created.",
                self.ct.created,
            ),
            (
                "vecbox_conntrack_expired_total",
                "Connections that timed out.",
                self.ct.expired,
            ),
            (
                "vecbox_conntrack_evictions_total",
                "Connections evicted because the table (or both of a new connection's index buckets) was full.",
                self.ct.evictions,
            ),
            (
                "vecbox_conntrack_bucket_full_total",
                "Evictions because both index buckets of a new connection were full.",
                self.ct.bucket_full,
            ),
            (
                "vecbox_firewall_verdicts_cached_total",
                "Packets whose rule came from their connection's remembered verdict.",
                self.stats.cached,
            ),
        ] {
            out.counter(name, help, &[], v);
        }
    }

    /// `rules`: `LINE PACKETS BYTES RULE` per rule, then the policy line.
    /// `conntrack`: `PROTO SECONDS_LEFT STATE src= dst= sport= dport=` per connection
    /// (original direction), as `conntrack -L`, at most [`CONNTRACK_LIST_MAX`].
    pub(super) fn proc(&self, name: &str) -> Option<String> {
        let mut s = String::new();
        match name {
            "rules" => {
                s.push_str("line packets bytes rule\n");
                let rules = self.cls.rules();
                for (r, (p, b)) in rules.iter().zip(&self.hits) {
                    let _ = writeln!(s, "{} {p} {b} {}", r.line, r.text.trim());
                }
                if let Some((p, b)) = self.hits.get(rules.len()) {
                    let _ = writeln!(s, "- {p} {b} policy {}", action(self.policy));
                }
            }
            "conntrack" => {
                for (k, tcp, replied, left) in self.ct.entries(CONNTRACK_LIST_MAX) {
                    conn_line(&mut s, &k, tcp, replied, left);
                }
                if self.ct.len() > CONNTRACK_LIST_MAX {
                    let _ = writeln!(s, "... {} more", self.ct.len() - CONNTRACK_LIST_MAX);
                }
            }
            _ => return None,
        }
        Some(s)
    }
}
