//! Traffic generators: trafgen (Debian `netsniff-ng`) and vecbox's own `sendmmsg`
//! generator (`vecbox gen`), with the frames both send.
//!
//! The own generator builds its frames once (one, or the 12 of an IMIX cycle), opens a
//! transmit-only AF_PACKET socket with qdisc bypass, and hands the kernel `depth`
//! frames per `sendmmsg` through the transport layer's [`SendRing`] — nothing is
//! allocated per packet. `--rate` paces it with a token bucket checked once per batch.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::BenchError;
use super::scenario::Size;
use super::topo::{Proc, Topo};
use crate::sys::mmsg::SendRing;

/// Which generator drives the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generator {
    Trafgen,
    Vecbox,
}

impl std::str::FromStr for Generator {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Generator, BenchError> {
        match s {
            "trafgen" => Ok(Generator::Trafgen),
            "vecbox" => Ok(Generator::Vecbox),
            _ => Err(BenchError::Usage(format!(
                "generator {s:?}: expected trafgen, vecbox or auto"
            ))),
        }
    }
}

/// The benchmark traffic: UDP to 10.80.2.99:4001 from 10.80.1.1:4000 (one flow) or
/// from `flows` distinct source address and port pairs (see [`flow_source`]).
#[derive(Clone, Debug)]
pub struct Flow {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub size: Size,
    pub flows: u32,
}

pub const SRC_IP: [u8; 4] = [10, 80, 1, 1];
pub const DST_IP: [u8; 4] = [10, 80, 2, 99];
pub const SPORT: u16 = 4000;
pub const DPORT: u16 = 4001;
/// First source address of many-flow traffic; sources stay inside 10.96.0.0/12.
pub const MANY_SRC: u32 = 0x0a60_0000;
/// Prefix length holding every many-flow source.
pub const MANY_SRC_LEN: u8 = 12;
/// First source port of many-flow traffic; ports stay below `MANY_SPORT + 32`.
pub const MANY_SPORT: u16 = 1024;

/// How `flows` flows are spread: (source addresses, source ports), coprime, with a
/// product of `flows`. Flow `i` uses address `i mod A` and port `i mod P`: by the
/// Chinese remainder theorem the first `flows` packets are `flows` distinct pairs, and
/// two per-packet counters (as trafgen's `dinc` runs them) produce exactly that cycle.
pub fn flow_split(flows: u32) -> (u32, u32) {
    let ports = 1u32 << flows.max(1).trailing_zeros().min(5);
    let addrs = flows.max(1) / ports;
    if addrs.is_multiple_of(2) && ports > 1 {
        (flows, 1)
    } else {
        (addrs, ports)
    }
}

/// Source address and port of flow `i` of `flows`.
pub fn flow_source(flows: u32, i: u32) -> ([u8; 4], u16) {
    if flows <= 1 {
        return (SRC_IP, SPORT);
    }
    let (a, p) = flow_split(flows);
    (
        (MANY_SRC + i % a).to_be_bytes(),
        MANY_SPORT + (i % p) as u16,
    )
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], BenchError> {
    let bad = || BenchError::Usage(format!("MAC address {s:?}: expected xx:xx:xx:xx:xx:xx"));
    let mut m = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(m)
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One Ethernet/IPv4/UDP frame (no FCS) of flow 0 whose IP packet is `ip_len` bytes
/// (≥ 28).
pub fn frame(flow: &Flow, ip_len: u16) -> Vec<u8> {
    let ip_len = ip_len.max(28);
    let mut f = Vec::with_capacity(14 + ip_len as usize);
    f.extend_from_slice(&flow.dst_mac);
    f.extend_from_slice(&flow.src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[16..20].copy_from_slice(&DST_IP);
    f.extend_from_slice(&ip);
    let udp_len = ip_len - 20;
    f.extend_from_slice(&SPORT.to_be_bytes());
    f.extend_from_slice(&DPORT.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    f.resize(14 + ip_len as usize, 0);
    set_flow(&mut f, flow.flows, 0);
    f
}

/// Rewrite the source address and port of frame `f` (built by [`frame`]) to flow `i`
/// of `flows`, with its IP header checksum.
pub fn set_flow(f: &mut [u8], flows: u32, i: u32) {
    let (src, sport) = flow_source(flows, i);
    f[26..30].copy_from_slice(&src);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let sum: u32 = f[14..34]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    f[24..26].copy_from_slice(&fold(sum).to_be_bytes());
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// trafgen configuration: one packet block per frame of the size's cycle. Many flows
/// are two per-packet counters (`dinc`) on the source address and port, with the
/// periods of [`flow_split`]; trafgen then recomputes the checksums of each packet.
pub fn trafgen_config(flow: &Flow) -> String {
    let (src, sport) = flow_source(flow.flows, 0);
    let src = std::net::Ipv4Addr::from(src);
    let (addrs, ports) = flow_split(flow.flows);
    let mut saddr = format!("saddr={src}");
    let mut sp = format!("sp={sport}");
    if flow.flows > 1 && addrs > 1 {
        let first = u32::from(src);
        saddr += &format!(", saddr=dinc({first:#010x}, {:#010x})", first + addrs - 1);
    }
    if flow.flows > 1 && ports > 1 {
        sp += &format!(", sp=dinc({sport}, {})", u32::from(sport) + ports - 1);
    }
    flow.size
        .ip_lengths()
        .into_iter()
        .map(|len| {
            format!(
                "{{ eth(da={}, sa={}, type=0x0800), ipv4({saddr}, daddr=10.80.2.99, ttl=64), udp({sp}, dp={DPORT}), fill(0x00, {}) }}\n",
                mac_text(&flow.dst_mac),
                mac_text(&flow.src_mac),
                len.saturating_sub(28)
            )
        })
        .collect()
}

/// Start `generator` in the gen namespace on CPU 0, sending `flow` out of g0 at `rate`
/// pps (unlimited when `None`) until the returned process is dropped.
pub fn start(
    topo: &Topo,
    generator: Generator,
    flow: &Flow,
    rate: Option<u64>,
    exe: &Path,
) -> Result<Proc, BenchError> {
    let mut cmd = match generator {
        Generator::Trafgen => {
            let conf = topo.dir.join("trafgen.cfg");
            std::fs::write(&conf, trafgen_config(flow))
                .map_err(|e| BenchError::Command(format!("writing {}: {e}", conf.display())))?;
            let conf = conf.display().to_string();
            let mut args = vec![
                "taskset", "-c", "0", "trafgen", "--dev", "g0", "--conf", &conf, "--cpus", "1",
                "-q",
            ];
            let r = rate.map(|r| format!("{r}pps"));
            if let Some(r) = &r {
                args.extend(["-b", r]);
            }
            topo.command("gen", &args)?
        }
        Generator::Vecbox => {
            let exe = exe.display().to_string();
            let (dst, size) = (mac_text(&flow.dst_mac), flow.size.to_string());
            let r = rate.unwrap_or(0).to_string();
            let flows = flow.flows.to_string();
            topo.command(
                "gen",
                &[
                    "taskset",
                    "-c",
                    "0",
                    &exe,
                    "gen",
                    "--dev",
                    "g0",
                    "--dst-mac",
                    &dst,
                    "--size",
                    &size,
                    "--rate",
                    &r,
                    "--flows",
                    &flows,
                ],
            )?
        }
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    Proc::spawn(&mut cmd, &topo.tag)
}

/// Settings of `vecbox gen`.
#[derive(Clone, Debug)]
pub struct GenOptions {
    pub dev: String,
    pub dst_mac: [u8; 6],
    pub size: Size,
    /// Packets per second; 0 = as fast as possible.
    pub rate: u64,
    /// Stop after this long; `None` = until killed.
    pub duration: Option<Duration>,
    pub depth: usize,
    /// Concurrent flows (distinct source address and port pairs).
    pub flows: u32,
}

/// What `vecbox gen` sent.
#[derive(Clone, Debug, Serialize)]
pub struct GenReport {
    pub sent: u64,
    pub seconds: f64,
    pub pps: f64,
}

/// Run the own generator in the calling thread.
pub fn run(o: &GenOptions) -> Result<GenReport, BenchError> {
    let io = |what: &str| {
        let dev = o.dev.clone();
        let what = what.to_string();
        move |e: std::io::Error| BenchError::Command(format!("vecbox gen on {dev}: {what}: {e}"))
    };
    let ifindex = crate::sys::sock::ifindex(&o.dev).map_err(io("no such interface"))?;
    let src_mac = crate::sys::sock::hwaddr(&o.dev).map_err(io("reading its MAC"))?;
    let fd = crate::sys::packet::open(ifindex, 0).map_err(io("AF_PACKET socket"))?;
    let _ = crate::sys::packet::set_qdisc_bypass(&fd);
    let _ = crate::sys::packet::set_sndbuf(&fd, 4 << 20);
    let flow = Flow {
        src_mac,
        dst_mac: o.dst_mac,
        size: o.size,
        flows: o.flows.max(1),
    };
    let frames: Vec<Vec<u8>> = o
        .size
        .ip_lengths()
        .into_iter()
        .map(|l| frame(&flow, l))
        .collect();
    let depth = o.depth.clamp(1, 1024);
    let mut ring = SendRing::new(depth, None);
    // Many flows: one buffer per batch slot (allocated here, once), its frame copied
    // in and its source rewritten before each send.
    let longest = frames.iter().map(Vec::len).max().unwrap_or(0);
    let mut slots: Vec<Vec<u8>> = if flow.flows > 1 {
        (0..depth).map(|_| Vec::with_capacity(longest)).collect()
    } else {
        Vec::new()
    };
    let mut flow_i = 0u32;
    let start = Instant::now();
    let (mut sent, mut next) = (0u64, 0usize);
    let empty: &[u8] = &[];
    loop {
        let now = Instant::now();
        let elapsed = now.duration_since(start);
        if o.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        let mut n = depth as u64;
        if o.rate > 0 {
            let allowed = (o.rate as f64 * elapsed.as_secs_f64()) as u64;
            n = n.min(allowed.saturating_sub(sent));
            if n == 0 {
                std::thread::sleep(Duration::from_micros(20));
                continue;
            }
        }
        let base = next;
        let fd_ = std::os::fd::AsFd::as_fd(&fd);
        let took = if flow.flows > 1 {
            let slots = &mut slots[..n as usize];
            for (i, slot) in slots.iter_mut().enumerate() {
                let src = &frames[(base + i) % frames.len()];
                slot.clear();
                slot.extend_from_slice(src);
                set_flow(slot, flow.flows, (flow_i + i as u32) % flow.flows);
            }
            ring.send(fd_, slots.iter().map(|f| (empty, f.as_slice())))
        } else {
            ring.send(
                fd_,
                (0..n as usize).map(|i| (empty, frames[(base + i) % frames.len()].as_slice())),
            )
        }
        .map_err(io("sendmmsg"))?;
        if took == 0 {
            std::thread::yield_now();
        }
        sent += took as u64;
        next = (next + took) % frames.len();
        flow_i = ((u64::from(flow_i) + took as u64) % u64::from(flow.flows)) as u32;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(GenReport {
        sent,
        seconds,
        pps: sent as f64 / seconds.max(1e-9),
    })
}

/// Offer traffic with each generator for `secs` into g0 (the DUT namespace drops it)
/// and return the faster one with both rates.
pub fn pick_fastest(
    topo: &Topo,
    flow: &Flow,
    exe: &Path,
    secs: f64,
    have_trafgen: bool,
) -> Result<(Generator, Vec<(Generator, f64)>), BenchError> {
    let mut rates = Vec::new();
    for g in [Generator::Trafgen, Generator::Vecbox] {
        if g == Generator::Trafgen && !have_trafgen {
            continue;
        }
        let p = start(topo, g, flow, None, exe)?;
        std::thread::sleep(Duration::from_millis(300));
        let (a, t) = (topo.counter("gen", "g0", "tx_packets")?, Instant::now());
        std::thread::sleep(Duration::from_secs_f64(secs));
        let b = topo.counter("gen", "g0", "tx_packets")?;
        drop(p);
        rates.push((g, (b - a) as f64 / t.elapsed().as_secs_f64()));
    }
    let best = rates
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|r| r.0)
        .unwrap_or(Generator::Vecbox);
    Ok((best, rates))
}

/// Whether a command exists (for the own generator: always).
pub fn trafgen_available() -> bool {
    super::topo::have_tool("trafgen")
        && Command::new("trafgen")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(size: Size) -> Flow {
        Flow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 0x99],
            size,
            flows: 1,
        }
    }

    #[test]
    fn frames_are_valid_udp_of_the_right_length() {
        for (size, len) in [
            (Size::Bytes(64), 60),
            (Size::Bytes(512), 508),
            (Size::Bytes(1500), 1514),
        ] {
            let f = frame(&flow(size), size.ip_lengths()[0]);
            assert_eq!(f.len(), len, "{size}");
            let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
                panic!("not IPv4")
            };
            assert_eq!(ip.header().total_len() as usize, len - 14);
            assert_eq!(
                ip.header().header_checksum(),
                ip.header().to_header().calc_header_checksum()
            );
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
                panic!("not UDP")
            };
            assert_eq!(u.destination_port(), DPORT);
            assert_eq!(u.length() as usize, len - 34);
        }
    }

    #[test]
    fn trafgen_config_has_one_block_per_frame() {
        let c = trafgen_config(&flow(Size::Imix));
        assert_eq!(c.lines().count(), 12);
        assert_eq!(c.matches("fill(0x00, 18)").count(), 7);
        assert_eq!(c.matches("fill(0x00, 1472)").count(), 1);
        assert!(c.contains("da=02:00:00:00:00:99"));
    }

    #[test]
    fn many_flows_are_distinct_pairs_in_a_known_prefix() {
        for flows in [1u32, 2, 7, 64, 10_000, 100_000] {
            let (a, p) = flow_split(flows);
            assert_eq!(a * p, flows, "{flows}");
            assert!(p <= 32 && a < (1 << (32 - MANY_SRC_LEN)), "{flows}");
            let set: std::collections::HashSet<([u8; 4], u16)> =
                (0..flows).map(|i| flow_source(flows, i)).collect();
            assert_eq!(set.len() as u32, flows, "{flows} flows");
            if flows > 1 {
                assert!(set.iter().all(|(s, port)| {
                    u32::from_be_bytes(*s) >> (32 - MANY_SRC_LEN) == MANY_SRC >> (32 - MANY_SRC_LEN)
                        && (MANY_SPORT..MANY_SPORT + 32).contains(port)
                }));
            }
        }
        // The frame carries flow i's source, with a valid IP checksum.
        let mut f = frame(
            &Flow {
                flows: 10_000,
                ..flow(Size::Bytes(64))
            },
            46,
        );
        set_flow(&mut f, 10_000, 1234);
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        let (src, sport) = flow_source(10_000, 1234);
        assert_eq!(ip.header().source(), src);
        assert_eq!(
            ip.header().header_checksum(),
            ip.header().to_header().calc_header_checksum()
        );
        let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
            panic!("not UDP")
        };
        assert_eq!(u.source_port(), sport);
        let c = trafgen_config(&Flow {
            flows: 100_000,
            ..flow(Size::Bytes(64))
        });
        assert!(
            c.contains("saddr=dinc(0x0a600000, 0x0a600c34)") && c.contains("sp=dinc(1024, 1055)"),
            "{c}"
        );
    }

    #[test]
    fn macs_parse_or_name_the_problem() {
        assert_eq!(parse_mac("02:00:00:00:00:99").unwrap()[5], 0x99);
        for bad in ["02:00", "zz:00:00:00:00:00", "02:00:00:00:00:00:00"] {
            assert!(parse_mac(bad).unwrap_err().to_string().contains(bad));
        }
    }
}
