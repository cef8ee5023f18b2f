//! `router`: IPv4 and IPv6 forwarding between N ports.
//!
//! Each port has a MAC (`mac=` or a random locally administered one) and the addresses
//! of its `interfaces:` entry in the YAML configuration (`config=FILE`, see
//! [`config`]). Connected routes come from those addresses; static routes from
//! `routes:`, matched by longest prefix. The router answers ARP and neighbour
//! solicitations for its own addresses, resolves next hops (holding up to
//! [`neigh::HOLD`] frames per unresolved neighbour), ages neighbours, decrements the
//! TTL / hop limit (IPv4 header checksum updated incrementally, RFC 1624), sends
//! rate-limited ICMP/ICMPv6 time-exceeded and destination-unreachable errors, and
//! answers pings to its own addresses. Every frame it does not forward is counted under
//! a reason, on the port ([`DropReason`]) and in the router's own counters.

pub mod build;
pub mod config;
mod icmp;
mod local;
pub mod neigh;
mod ops;
pub mod table;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::ip::{self, IpInfo};
use super::{Function, NfError, Output};
use crate::buf::Frame;
use crate::metrics::DropReason;
use crate::transport::Spec;
use crate::wire::Mac;
pub use build::link_local;
use config::RouterConfig;
use icmp::forwardable;
use neigh::{Event, Hold, Neighbors};
use table::{NextHop, Routes};

const OPTIONS: &str = "config=FILE (YAML: interfaces, routes; see docs/router.md)";
const TICKS_PER_SEC: u32 = 4;

/// One port's identity.
#[derive(Clone, Debug)]
pub struct PortAddrs {
    pub mac: Mac,
    pub v4: Vec<(Ipv4Addr, u8)>,
    pub v6: Vec<(Ipv6Addr, u8)>,
    pub link_local: Ipv6Addr,
}

/// The router's own counters (besides the ports' drop counters).
#[derive(Clone, Copy, Debug, Default)]
pub struct RouterStats {
    pub forwarded: u64,
    pub echo_replies: u64,
    pub arp_requests: u64,
    pub arp_replies: u64,
    pub nd_solicits: u64,
    pub nd_adverts: u64,
    pub icmp_errors: u64,
    pub icmp_rate_limited: u64,
    pub ttl_exceeded: u64,
    pub no_route: u64,
    pub neighbor_failed: u64,
    pub hold_full: u64,
    pub bad_header: u64,
    pub not_for_us: u64,
    pub not_ip: u64,
    pub not_forwarded: u64,
    pub no_buffer: u64,
}

/// The router.
pub struct Router {
    ports: Vec<PortAddrs>,
    /// Port names (`vecN`), for console files.
    names: Vec<String>,
    routes: Routes,
    neigh: Neighbors,
    now: u32,
    neighbor_timeout: u32,
    icmp_rate: u32,
    icmp_tokens: u32,
    scratch: Box<[u8]>,
    pub stats: RouterStats,
    /// `config=FILE` (absolute), re-read when the interfaces change.
    config_path: Option<std::path::PathBuf>,
}

impl Router {
    /// Build from the guest's specs and `config=FILE`.
    pub fn new(specs: &[Spec], options: &[(String, String)]) -> Result<Router, NfError> {
        let bad = |msg: String| NfError::Config {
            function: "router",
            msg,
        };
        let mut path = None;
        for (k, v) in options {
            match k.as_str() {
                "config" => path = Some(v.clone()),
                _ => {
                    return Err(NfError::UnknownOption {
                        function: "router",
                        key: k.clone(),
                        accepted: OPTIONS,
                    });
                }
            }
        }
        let path = path.ok_or_else(|| {
            bad("needs config=FILE (YAML with interfaces and routes; see docs/router.md)".into())
        })?;
        let names = super::port_names(specs);
        let cfg = RouterConfig::load(Path::new(&path), &names).map_err(|e| bad(e.to_string()))?;
        let macs: Vec<Mac> = specs.iter().map(super::port_mac).collect();
        let mut r = Self::with_config(&cfg, &names, &macs);
        r.config_path = std::path::absolute(&path).ok();
        Ok(r)
    }

    /// Build from a checked configuration; `names[i]`/`macs[i]` describe port i.
    pub fn with_config(cfg: &RouterConfig, names: &[String], macs: &[Mac]) -> Router {
        let mut ports: Vec<PortAddrs> = macs
            .iter()
            .map(|&mac| PortAddrs {
                mac,
                v4: Vec::new(),
                v6: Vec::new(),
                link_local: link_local(mac),
            })
            .collect();
        let mut routes = Routes::default();
        let index = |name: &str| names.iter().position(|n| n == name);
        for i in &cfg.interfaces {
            let Some(p) = index(&i.port) else { continue };
            for a in &i.addresses {
                match a.addr {
                    IpAddr::V4(v) => ports[p].v4.push((v, a.len)),
                    IpAddr::V6(v) => ports[p].v6.push((v, a.len)),
                }
                routes.add(
                    a.network(),
                    NextHop {
                        port: p,
                        gateway: None,
                    },
                );
            }
        }
        for r in &cfg.routes {
            let port = match (&r.port, r.via) {
                (Some(name), _) => index(name),
                (None, Some(gw)) => routes.lookup(gw).map(|nh| nh.port),
                _ => None,
            };
            if let Some(port) = port {
                routes.add(
                    r.to.network(),
                    NextHop {
                        port,
                        gateway: r.via,
                    },
                );
            }
        }
        let rate = cfg.icmp_errors_per_second;
        let mut neigh = Neighbors::new(cfg.max_neighbors + cfg.neighbors.len());
        for s in &cfg.neighbors {
            if let Some(p) = index(&s.port) {
                neigh.add_permanent(p, s.address, s.mac.0);
            }
        }
        Router {
            ports,
            names: names.to_vec(),
            routes,
            neigh,
            now: 1,
            neighbor_timeout: cfg.neighbor_timeout.saturating_mul(TICKS_PER_SEC),
            icmp_rate: rate,
            icmp_tokens: rate,
            scratch: vec![0u8; build::QUOTE_V6].into_boxed_slice(),
            stats: RouterStats::default(),
            config_path: None,
        }
    }

    /// The port's MAC.
    pub fn mac(&self, port: usize) -> Mac {
        self.ports[port].mac
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        self.ports.iter().any(|p| match ip {
            IpAddr::V4(a) => p.v4.iter().any(|(x, _)| *x == a),
            IpAddr::V6(a) => a == p.link_local || p.v6.iter().any(|(x, _)| *x == a),
        })
    }

    /// Our IPv4 source address on `port` for talking to `peer`.
    fn v4_source(&self, port: usize, peer: Ipv4Addr) -> Option<Ipv4Addr> {
        let p = self.ports.get(port)?;
        p.v4.iter()
            .find(|(a, l)| config::mask((*a).into(), *l) == config::mask(peer.into(), *l))
            .or(p.v4.first())
            .map(|(a, _)| *a)
    }

    /// Our IPv6 source address on `port` for talking to `peer`.
    fn v6_source(&self, port: usize, peer: Ipv6Addr) -> Option<Ipv6Addr> {
        let p = self.ports.get(port)?;
        if peer.segments()[0] & 0xffc0 == 0xfe80 {
            return Some(p.link_local);
        }
        p.v6.iter()
            .find(|(a, l)| config::mask((*a).into(), *l) == config::mask(peer.into(), *l))
            .or(p.v6.first())
            .map(|(a, _)| *a)
            .or(Some(p.link_local))
    }

    fn drop(&mut self, out: &mut dyn Output, f: Frame, reason: DropReason) {
        out.discard(f, reason);
    }

    /// Send a request for `ip` out of `port`.
    fn solicit(&mut self, out: &mut dyn Output, port: usize, ip: IpAddr) {
        let mac = self.ports[port].mac;
        let (len, src) = match ip {
            IpAddr::V4(t) => match self.v4_source(port, t) {
                Some(s) => (60, IpAddr::V4(s)),
                None => return,
            },
            IpAddr::V6(t) => match self.v6_source(port, t) {
                Some(s) => (86, IpAddr::V6(s)),
                None => return,
            },
        };
        let Some(f) = out.alloc(len) else {
            self.stats.no_buffer += 1;
            return;
        };
        let b = out.frame_mut(&f);
        match (ip, src) {
            (IpAddr::V4(t), IpAddr::V4(s)) => {
                build::arp_request(b, mac, s, t);
                self.stats.arp_requests += 1;
            }
            (IpAddr::V6(t), IpAddr::V6(s)) => {
                build::neighbor_solicit(b, mac, s, t);
                self.stats.nd_solicits += 1;
            }
            _ => {}
        }
        out.forward(port, f);
    }

    /// Send `f` to `target` out of `port`, resolving its MAC first if needed.
    fn deliver(
        &mut self,
        out: &mut dyn Output,
        f: Frame,
        in_port: usize,
        port: usize,
        target: IpAddr,
    ) {
        match self.neigh.lookup(port, target) {
            Some(dmac) => {
                let smac = self.ports[port].mac;
                let b = out.frame_mut(&f);
                b[0..6].copy_from_slice(&dmac);
                b[6..12].copy_from_slice(&smac);
                self.stats.forwarded += 1;
                out.forward(port, f);
            }
            None => match self.neigh.hold(port, target, f, in_port, self.now) {
                Hold::Queued(new) => {
                    if new {
                        self.solicit(out, port, target);
                    }
                }
                Hold::Full(f) => {
                    self.stats.hold_full += 1;
                    self.drop(out, f, DropReason::NoNeighbor);
                }
            },
        }
    }

    /// Frames that were waiting for a neighbour that just resolved.
    fn release(
        &mut self,
        out: &mut dyn Output,
        port: usize,
        held: [neigh::Held; neigh::HOLD],
        mac: Mac,
    ) {
        let smac = self.ports[port].mac;
        for (f, _) in held.into_iter().flatten() {
            let b = out.frame_mut(&f);
            b[0..6].copy_from_slice(&mac);
            b[6..12].copy_from_slice(&smac);
            self.stats.forwarded += 1;
            out.forward(port, f);
        }
    }

    fn route_ip(&mut self, out: &mut dyn Output, f: Frame, in_port: usize, info: IpInfo) {
        if self.is_local(info.dst) {
            return self.local(out, f, in_port, info);
        }
        if !forwardable(info.dst) || !forwardable(info.src) {
            self.stats.not_forwarded += 1;
            return self.drop(out, f, DropReason::NoRoute);
        }
        if info.ttl <= 1 {
            self.stats.ttl_exceeded += 1;
            let (kind, code) = if info.v6 { (3, 0) } else { (11, 0) };
            self.icmp_error(out, &f, &info, in_port, kind, code);
            return self.drop(out, f, DropReason::TtlExceeded);
        }
        let Some(nh) = self.routes.lookup(info.dst) else {
            self.stats.no_route += 1;
            let (kind, code) = if info.v6 { (1, 0) } else { (3, 0) };
            self.icmp_error(out, &f, &info, in_port, kind, code);
            return self.drop(out, f, DropReason::NoRoute);
        };
        let b = out.frame_mut(&f);
        if info.v6 {
            b[info.off + 7] -= 1;
        } else {
            let o = info.off;
            let old = u16::from_be_bytes([b[o + 8], b[o + 9]]);
            b[o + 8] -= 1;
            let new = u16::from_be_bytes([b[o + 8], b[o + 9]]);
            let c = crate::wire::checksum::update16(
                u16::from_be_bytes([b[o + 10], b[o + 11]]),
                old,
                new,
            );
            b[o + 10..o + 12].copy_from_slice(&c.to_be_bytes());
        }
        let target = nh.gateway.unwrap_or(info.dst);
        self.deliver(out, f, in_port, nh.port, target);
    }

    /// Counters as (name, value).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = &self.stats;
        vec![
            ("forwarded", s.forwarded),
            ("echo_replies", s.echo_replies),
            ("arp_requests", s.arp_requests),
            ("arp_replies", s.arp_replies),
            ("nd_solicits", s.nd_solicits),
            ("nd_adverts", s.nd_adverts),
            ("icmp_errors", s.icmp_errors),
            ("icmp_rate_limited", s.icmp_rate_limited),
            ("ttl_exceeded", s.ttl_exceeded),
            ("no_route", s.no_route),
            ("neighbor_failed", s.neighbor_failed),
            ("hold_full", s.hold_full),
            ("bad_header", s.bad_header),
            ("not_for_us", s.not_for_us),
            ("not_ip", s.not_ip),
            ("not_forwarded", s.not_forwarded),
            ("no_buffer", s.no_buffer),
        ]
    }
}

impl Function for Router {
    fn name(&self) -> &'static str {
        "router"
    }

    fn process(&mut self, port: usize, frames: &[Frame], out: &mut dyn Output) {
        for &f in frames {
            let fr = out.frame(&f);
            if fr.len() < 14 {
                self.drop(out, f, DropReason::Runt);
                continue;
            }
            let Some(me) = self.ports.get(port) else {
                self.drop(out, f, DropReason::NoRoute);
                continue;
            };
            if fr[0] & 1 == 0 && fr[0..6] != me.mac {
                self.stats.not_for_us += 1;
                self.drop(out, f, DropReason::Filtered);
                continue;
            }
            match ip::ethertype(fr) {
                Some(ip::ETHERTYPE_ARP) => self.arp(out, f, port),
                Some(ip::ETHERTYPE_IPV4 | ip::ETHERTYPE_IPV6) => match ip::parse(fr) {
                    Some(Ok(info)) => {
                        if info.v6
                            && info.proto == ip::PROTO_ICMPV6
                            && self.neighbor_discovery(out, &f, port, &info)
                        {
                            continue;
                        }
                        self.route_ip(out, f, port, info)
                    }
                    _ => {
                        self.stats.bad_header += 1;
                        self.drop(out, f, DropReason::BadHeader);
                    }
                },
                _ => {
                    self.stats.not_ip += 1;
                    self.drop(out, f, DropReason::Filtered);
                }
            }
        }
    }

    fn timer(&mut self, _now: std::time::Instant, out: &mut dyn Output) {
        self.now = self.now.wrapping_add(1);
        self.icmp_tokens =
            (self.icmp_tokens + self.icmp_rate.div_ceil(TICKS_PER_SEC)).min(self.icmp_rate);
        let mut probes: [(usize, Option<IpAddr>); 8] = [(0, None); 8];
        let mut failed: [Option<(Frame, usize)>; 16] = [None; 16];
        let (mut np, mut nf) = (0, 0);
        // Collected first (bounded), acted on after: the table is borrowed while aging.
        let mut overflow = false;
        self.neigh
            .age(self.now, self.neighbor_timeout, |e| match e {
                Event::Probe { port, ip } if np < probes.len() => {
                    probes[np] = (port, Some(ip));
                    np += 1;
                }
                Event::Failed { frame, in_port } if nf < failed.len() => {
                    failed[nf] = Some((frame, in_port));
                    nf += 1;
                }
                Event::Failed { frame, .. } => {
                    overflow = true;
                    out.discard(frame, DropReason::NoNeighbor);
                }
                Event::Probe { .. } => {}
            });
        for (port, ip) in probes.into_iter().take(np) {
            if let Some(ip) = ip {
                self.solicit(out, port, ip);
            }
        }
        for (f, in_port) in failed.into_iter().flatten() {
            self.stats.neighbor_failed += 1;
            if let Some(Ok(info)) = ip::parse(out.frame(&f)) {
                let (kind, code) = if info.v6 { (1, 3) } else { (3, 1) };
                self.icmp_error(out, &f, &info, in_port, kind, code);
            }
            out.discard(f, DropReason::NoNeighbor);
        }
        if overflow {
            self.stats.neighbor_failed += 1;
        }
    }

    fn buffers_needed(&self) -> usize {
        neigh::MAX_HELD + 32
    }

    fn summary(&self) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = self
            .counters()
            .into_iter()
            .map(|(k, n)| (k, n.to_string()))
            .collect();
        v.push(("routes", self.routes.len().to_string()));
        v.push(("neighbors", self.neigh.len().to_string()));
        v.push(("neighbor_evictions", self.neigh.evictions.to_string()));
        v
    }

    fn metrics(&self, out: &mut dyn crate::metrics::MetricSink) {
        self.export(out)
    }

    fn set_ports(&mut self, ports: &[Spec], out: &mut dyn Output) -> Result<(), NfError> {
        self.reconfigure(ports, out)
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
