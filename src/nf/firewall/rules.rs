//! The firewall's rule language (see docs/firewall.md): one rule per line,
//! `ACTION MATCH... [log]`, first match wins, plus a `policy` line.
//!
//! ```text
//! policy drop
//! accept ct established,related
//! accept in vec0 proto tcp dst 10.0.2.0/24 dport 22,80,8000-8080 ct new log
//! reject in vec1 proto udp
//! accept proto icmp icmp-type echo-request
//! ```

use std::net::IpAddr;

use crate::filter::text::nearest;
use crate::nf::ip;
use crate::nf::router::config::Cidr;

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    /// Drop and tell the sender: TCP RST, or ICMP/ICMPv6 port unreachable.
    Reject,
}

/// Connection-tracking states, as bits.
pub mod ct {
    pub const NEW: u8 = 1;
    pub const ESTABLISHED: u8 = 2;
    pub const RELATED: u8 = 4;
    pub const INVALID: u8 = 8;
}

/// A prefix as (is IPv6, masked address, mask), IPv4 in the low 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub v6: bool,
    pub addr: u128,
    pub mask: u128,
    pub len: u8,
}

/// An address as (is IPv6, value) in the same encoding as [`Prefix`].
pub fn key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

impl Prefix {
    fn from_cidr(c: Cidr) -> Prefix {
        let (v6, a) = key(c.addr);
        let bits = if v6 { 128 } else { 32 };
        let mask = if c.len == 0 {
            0
        } else {
            (u128::MAX >> (128 - bits)) & !((1u128 << (bits - u32::from(c.len))) - 1)
        };
        Prefix {
            v6,
            addr: a & mask,
            mask,
            len: c.len,
        }
    }

    /// `true` if `(v6, a)` lies inside.
    #[inline]
    pub fn contains(&self, v6: bool, a: u128) -> bool {
        self.v6 == v6 && a & self.mask == self.addr
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Line in the rule file (1-based).
    pub line: usize,
    /// The rule as written (for logs and counters).
    pub text: String,
    pub action: Action,
    pub in_port: Option<usize>,
    pub out_port: Option<usize>,
    /// `Some(true)` for IPv6 only, `Some(false)` for IPv4 only.
    pub v6: Option<bool>,
    pub src: Vec<Prefix>,
    pub dst: Vec<Prefix>,
    pub proto: Option<u8>,
    pub sport: Vec<(u16, u16)>,
    pub dport: Vec<(u16, u16)>,
    pub icmp_type: Option<u8>,
    /// Bitmask of [`ct`] states; 0 = any.
    pub ct: u8,
    pub log: bool,
}

/// What a rule is matched against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    pub in_port: usize,
    pub out_port: Option<usize>,
    pub v6: bool,
    pub src: u128,
    pub dst: u128,
    pub proto: u8,
    /// Ports for TCP/UDP (absent for fragments and other protocols).
    pub ports: Option<(u16, u16)>,
    pub icmp_type: Option<u8>,
    /// One [`ct`] bit.
    pub ct: u8,
}

fn in_ranges(r: &[(u16, u16)], p: u16) -> bool {
    r.iter().any(|(a, b)| (*a..=*b).contains(&p))
}

impl Rule {
    /// Full match of every condition.
    #[inline]
    pub fn matches(&self, p: &Packet) -> bool {
        (self.in_port.is_none() || self.in_port == Some(p.in_port))
            && (self.out_port.is_none() || self.out_port == p.out_port)
            && self.v6.is_none_or(|v| v == p.v6)
            && self.proto.is_none_or(|x| x == p.proto)
            && (self.ct == 0 || self.ct & p.ct != 0)
            && (self.src.is_empty() || self.src.iter().any(|x| x.contains(p.v6, p.src)))
            && (self.dst.is_empty() || self.dst.iter().any(|x| x.contains(p.v6, p.dst)))
            && (self.sport.is_empty() || p.ports.is_some_and(|(s, _)| in_ranges(&self.sport, s)))
            && (self.dport.is_empty() || p.ports.is_some_and(|(_, d)| in_ranges(&self.dport, d)))
            && self.icmp_type.is_none_or(|t| p.icmp_type == Some(t))
    }
}

/// A parsed rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// What happens when no rule matches (`policy`, default drop).
    pub policy: Action,
}

/// A rule-file error, with position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{col}: {msg}")]
pub struct RuleError {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

const KEYWORDS: &[&str] = &[
    "in",
    "out",
    "ip4",
    "ip6",
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "icmp-type",
    "ct",
    "log",
];
const ACTIONS: &[&str] = &["accept", "drop", "reject", "policy"];
const PROTOS: &[(&str, u8)] = &[
    ("tcp", ip::PROTO_TCP),
    ("udp", ip::PROTO_UDP),
    ("icmp", ip::PROTO_ICMP),
    ("icmpv6", ip::PROTO_ICMPV6),
    ("gre", 47),
    ("esp", 50),
    ("sctp", 132),
];
const ICMP_TYPES: &[(&str, u8, u8)] = &[
    // (name, ICMPv4 type, ICMPv6 type)
    ("echo-reply", 0, 129),
    ("echo-request", 8, 128),
    ("destination-unreachable", 3, 1),
    ("time-exceeded", 11, 3),
    ("packet-too-big", 3, 2),
];
const STATES: &[(&str, u8)] = &[
    ("new", ct::NEW),
    ("established", ct::ESTABLISHED),
    ("related", ct::RELATED),
    ("invalid", ct::INVALID),
];

fn hint(word: &str, words: &[&str]) -> String {
    nearest(word, words)
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default()
}

/// Parse a rule file. `ports` are the guest's port names (`vec0`, ...).
pub fn parse(path: &str, text: &str, ports: &[String]) -> Result<RuleSet, RuleError> {
    let mut rules = Vec::new();
    let mut policy: Option<Action> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        // (column, word)
        let words: Vec<(usize, &str)> = line
            .split_whitespace()
            .map(|w| ((w.as_ptr() as usize) - (raw.as_ptr() as usize) + 1, w))
            .collect();
        let Some(&(c0, first)) = words.first() else {
            continue;
        };
        let err = |col: usize, msg: String| RuleError {
            path: path.to_string(),
            line: n + 1,
            col,
            msg,
        };
        let action = |w: &str, col| match w {
            "accept" => Ok(Action::Accept),
            "drop" => Ok(Action::Drop),
            "reject" => Ok(Action::Reject),
            _ => Err(err(
                col,
                format!(
                    "expected accept, drop or reject, found `{w}`{}",
                    hint(w, ACTIONS)
                ),
            )),
        };
        if first == "policy" {
            let (c, w) = *words
                .get(1)
                .ok_or_else(|| err(c0, "`policy` needs accept, drop or reject".into()))?;
            if policy.is_some() {
                return Err(err(c0, "`policy` is given twice".into()));
            }
            policy = Some(action(w, c)?);
            if let Some(&(c, w)) = words.get(2) {
                return Err(err(c, format!("unexpected `{w}` after the policy")));
            }
            continue;
        }
        let mut r = Rule {
            line: n + 1,
            text: line.split_whitespace().collect::<Vec<_>>().join(" "),
            action: action(first, c0)?,
            in_port: None,
            out_port: None,
            v6: None,
            src: Vec::new(),
            dst: Vec::new(),
            proto: None,
            sport: Vec::new(),
            dport: Vec::new(),
            icmp_type: None,
            ct: 0,
            log: false,
        };
        let mut i = 1;
        while i < words.len() {
            let (col, kw) = words[i];
            let takes_value = !matches!(kw, "ip4" | "ip6" | "log");
            let (vcol, val) = if takes_value {
                *words
                    .get(i + 1)
                    .ok_or_else(|| err(col, format!("`{kw}` needs a value")))?
            } else {
                (col, "")
            };
            let bad = |what: &str| err(vcol, format!("`{kw}` {what}, found `{val}`"));
            match kw {
                "in" | "out" => {
                    let p = ports.iter().position(|p| p == val).ok_or_else(|| {
                        let names: Vec<&str> = ports.iter().map(String::as_str).collect();
                        err(
                            vcol,
                            format!(
                                "no port `{val}` (this guest has {}){}",
                                ports.join(", "),
                                hint(val, &names)
                            ),
                        )
                    })?;
                    if kw == "in" {
                        r.in_port = Some(p);
                    } else {
                        r.out_port = Some(p);
                    }
                }
                "ip4" | "ip6" => r.v6 = Some(kw == "ip6"),
                "log" => r.log = true,
                "src" | "dst" => {
                    for part in val.split(',') {
                        let c: Cidr = part
                            .parse()
                            .or_else(|_| {
                                part.parse::<IpAddr>().map(|a| Cidr {
                                    addr: a,
                                    len: if a.is_ipv4() { 32 } else { 128 },
                                })
                            })
                            .map_err(|_| bad("takes ADDRESS[/PREFIX][,...], e.g. 10.0.0.0/8"))?;
                        let p = Prefix::from_cidr(c);
                        if kw == "src" { &mut r.src } else { &mut r.dst }.push(p);
                    }
                }
                "proto" => {
                    r.proto = Some(
                        PROTOS
                            .iter()
                            .find(|(n, _)| *n == val)
                            .map(|(_, v)| *v)
                            .or_else(|| val.parse().ok())
                            .ok_or_else(|| {
                                let names: Vec<&str> = PROTOS.iter().map(|(n, _)| *n).collect();
                                err(
                                    vcol,
                                    format!(
                                        "unknown protocol `{val}`; use tcp, udp, icmp, icmpv6, gre, esp, sctp or a number{}",
                                        hint(val, &names)
                                    ),
                                )
                            })?,
                    );
                }
                "sport" | "dport" => {
                    let mut v = Vec::new();
                    for part in val.split(',') {
                        let (a, b) = part.split_once('-').unwrap_or((part, part));
                        match (a.parse::<u16>(), b.parse::<u16>()) {
                            (Ok(a), Ok(b)) if a <= b => v.push((a, b)),
                            _ => {
                                return Err(bad(
                                    "takes PORT, LOW-HIGH or a list, e.g. 22,80,8000-8080",
                                ));
                            }
                        }
                    }
                    if kw == "sport" {
                        &mut r.sport
                    } else {
                        &mut r.dport
                    }
                    .extend(v);
                }
                "icmp-type" => {
                    r.icmp_type = Some(match ICMP_TYPES.iter().find(|(n, ..)| *n == val) {
                        Some((_, v4, v6)) => {
                            if r.v6 == Some(true) || r.proto == Some(ip::PROTO_ICMPV6) {
                                *v6
                            } else {
                                *v4
                            }
                        }
                        None => val.parse().map_err(|_| {
                            let names: Vec<&str> = ICMP_TYPES.iter().map(|(n, ..)| *n).collect();
                            err(
                                vcol,
                                format!(
                                    "unknown ICMP type `{val}`; use a number or echo-request, echo-reply, destination-unreachable, time-exceeded{}",
                                    hint(val, &names)
                                ),
                            )
                        })?,
                    });
                }
                "ct" => {
                    for s in val.split(',') {
                        let bit = STATES.iter().find(|(n, _)| *n == s).map(|(_, b)| *b).ok_or_else(
                            || {
                                let names: Vec<&str> = STATES.iter().map(|(n, _)| *n).collect();
                                err(
                                    vcol,
                                    format!(
                                        "unknown state `{s}`; use new, established, related, invalid{}",
                                        hint(s, &names)
                                    ),
                                )
                            },
                        )?;
                        r.ct |= bit;
                    }
                }
                other => {
                    return Err(err(
                        col,
                        format!(
                            "unknown word `{other}`; expected one of {}{}",
                            KEYWORDS.join(", "),
                            hint(other, KEYWORDS)
                        ),
                    ));
                }
            }
            i += if takes_value { 2 } else { 1 };
        }
        // Consistency: ports need TCP/UDP, ICMP type needs ICMP, families must agree.
        let fam: Vec<bool> = r.src.iter().chain(&r.dst).map(|p| p.v6).collect();
        if fam.iter().any(|v| Some(*v) != fam.first().copied()) {
            return Err(err(
                c0,
                "mixes IPv4 and IPv6 addresses; write one rule per family".into(),
            ));
        }
        if let Some(&f) = fam.first() {
            if r.v6.is_some_and(|v| v != f) {
                return Err(err(c0, "the addresses do not match ip4/ip6".into()));
            }
            r.v6 = Some(f);
        }
        if (!r.sport.is_empty() || !r.dport.is_empty())
            && !matches!(r.proto, Some(ip::PROTO_TCP | ip::PROTO_UDP | 132))
        {
            return Err(err(
                c0,
                "sport/dport need `proto tcp`, `proto udp` or `proto sctp`".into(),
            ));
        }
        if r.icmp_type.is_some() && !matches!(r.proto, Some(ip::PROTO_ICMP | ip::PROTO_ICMPV6)) {
            return Err(err(
                c0,
                "icmp-type needs `proto icmp` or `proto icmpv6`".into(),
            ));
        }
        match r.proto {
            Some(ip::PROTO_ICMP) if r.v6 == Some(true) => {
                return Err(err(
                    c0,
                    "proto icmp is IPv4; use proto icmpv6 for IPv6".into(),
                ));
            }
            Some(ip::PROTO_ICMP) => r.v6 = Some(false),
            Some(ip::PROTO_ICMPV6) if r.v6 == Some(false) => {
                return Err(err(
                    c0,
                    "proto icmpv6 is IPv6; use proto icmp for IPv4".into(),
                ));
            }
            Some(ip::PROTO_ICMPV6) => r.v6 = Some(true),
            _ => {}
        }
        rules.push(r);
    }
    Ok(RuleSet {
        rules,
        policy: policy.unwrap_or(Action::Drop),
    })
}
