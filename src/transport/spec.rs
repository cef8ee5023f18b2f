//! The `vecN:transport=NAME,key=value,...` device spec of User Mode Linux's vector network
//! transports: parsing ([`Spec::from_str`]), validation ([`Spec::validate`]) and a canonical
//! printer ([`Spec`]'s `Display`, which parses back to an equal value).
//!
//! # Design
//! Parsing runs in stages, each reporting the first problem it finds as a [`SpecError`]:
//! 1. `vec`, the device number (base 0, like UML's `kstrtouint`) and the `:`;
//! 2. the pair tokenizer (`,` between pairs, one `=` per pair, at most [`MAX_PAIRS`]);
//! 3. `transport=`, matched exactly against [`TRANSPORTS`];
//! 4. each key in spec order: known to the transport ([`keys_for`]), not repeated, value
//!    well-formed and in range;
//! 5. mandatory keys, then the cross-key rules of [`Spec::validate`].
//!
//! Every error names the key, shows the bad value and gives an accepted example.
//!
//! # Differences from UML
//! UML (≈6.17, `vector_kern.c`/`vector_user.c`) ignores or silently replaces much of what it
//! cannot use. vecbox rejects it instead:
//! - Unknown keys are an error (UML ignores them); the message lists the transport's keys,
//!   says which transport a foreign key belongs to, and suggests the closest key for typos.
//! - A repeated key is an error (UML keeps the first); `srcport` and `src_port` count as one.
//! - A bare word without `=`, an empty item and an empty value are errors (UML drops bare
//!   words and takes empty values as empty strings).
//! - More than 64 pairs is an error (UML has room for 20 and does not check).
//! - `transport=` must be an exact name (UML matches by prefix: `tapXYZ` is `tap`).
//! - `mtu` outside 576..=65534, `depth` outside 1..=4096, `headroom` outside 0..=256 and
//!   unparseable numbers are errors (UML falls back to the default or takes any value).
//! - `vec=` must be a non-negative integer (UML leaves vector IO on for garbage).
//! - `mac=` must be exactly `xx:xx:xx:xx:xx:xx`, unicast and non-zero (UML silently uses a
//!   random MAC instead); a vendor (not locally administered) MAC gives a warning, as in UML.
//! - 32-bit keys and sessions accept 0..=0xffffffff in any base (UML's signed parser rejects
//!   values of 2^31 and above, so the HOWTO's `rx_session=0xffffffff` fails there); negative
//!   decimals down to -2147483648 are still taken as their two's-complement value, as UML
//!   effectively does (`-1` = `0xffffffff`).
//! - `rx_key` without `tx_key` and the reverse are errors (UML fails `rx_key` alone at open
//!   and ignores `tx_key` alone); likewise `rx_cookie`/`tx_cookie`.
//! - A cookie above 32 bits without `cookie64=1` is an error (UML truncates it).
//! - `pin_sequence` without `sequence`, `pin_counter` without `counter`, and
//!   `srcport`/`dstport` without `udp=1` are errors (UML ignores them).
//! - `srcport`/`dstport` take port numbers 1..=65535 only (UML passes a service name to
//!   `getaddrinfo`); the HOWTO's `src_port`/`dst_port` spellings are accepted as aliases
//!   (UML reads only `srcport`/`dstport`).
//! - Flag keys (`v6`, `udp`, `sequence`, ...) must be non-negative decimal integers (UML's
//!   `strtol` reads garbage as 0).
//! - `fd=` and the mandatory keys (`ifname` for raw/hybrid, `src`+`dst` for gre/l2tpv3,
//!   both sessions for l2tpv3, `dst` for bess) are checked when parsing, not when the
//!   interface is brought up.
//! - bess paths longer than 107 bytes are errors (UML ignores a long `src`).
//! - bess also accepts `listen=PATH` (vecbox extension): vecbox listens there instead of
//!   connecting to `dst`; exactly one of `dst` and `listen` is required.
//! - `ifname` must be a valid Linux interface name (1..=15 bytes, no `/`, `:`, whitespace).
//! - vde is parsed for completeness only; vecbox cannot run `vde_plug`.
//! - `tx_KEY=`/`rx_KEY=` (vecbox) impair the frames leaving onto the link and arriving
//!   from it, with the keys of docs/impairments.md (`tx_delay=20ms,rx_loss=1%`); UML's
//!   own `tx_`/`rx_` keys (`tx_key`, `rx_session`, ...) keep their meaning.
//! - The device number needs the `vec` prefix; digits only (no `+`, no trailing newline).
//!
//! # Limitations
//! There is no quoting (as in UML), so no value can contain `,` or `=`. A `Spec` built by
//! hand prints a parseable spec only if [`Spec::validate`] accepts it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

mod check;
mod error;
mod keys;
mod parse;
mod value;

pub use error::{KeyHint, SpecError, SpecWarning};
pub use keys::{COMMON_KEYS, TRANSPORTS, keys_for};
pub use value::{IfName, InvalidValue, MacAddr};

/// Default MTU (UML's `ETH_MAX_PACKET`).
pub const DEFAULT_MTU: u16 = 1500;
/// Accepted `mtu=` values.
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 576..=65534;
/// Default queue depth (UML's `DEFAULT_VECTOR_SIZE`).
pub const DEFAULT_DEPTH: u16 = 64;
/// Accepted `depth=` values.
pub const DEPTH_RANGE: std::ops::RangeInclusive<u16> = 1..=4096;
/// Default headroom (UML's `DEFAULT_HEADROOM`; the HOWTO's 32 is wrong).
pub const DEFAULT_HEADROOM: u16 = 2;
/// Accepted `headroom=` values.
pub const HEADROOM_RANGE: std::ops::RangeInclusive<u16> = 0..=256;
/// Most `key=value` pairs (including `transport=`) one spec may hold.
pub const MAX_PAIRS: usize = 64;
/// Longest AF_UNIX path of a bess `src`/`dst`/`listen` (UML's `MAX_UN_LEN`).
pub const MAX_UNIX_PATH: usize = 107;

/// One parsed `vecN:` device spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The device number N of `vecN`.
    pub unit: u32,
    /// Keys every transport accepts.
    pub common: Common,
    /// The transport and its own keys.
    pub kind: Kind,
}

/// Keys every transport accepts, with UML's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// `mac=`; `None` means a random locally administered MAC.
    pub mac: Option<MacAddr>,
    /// `mtu=`, [`MTU_RANGE`], default [`DEFAULT_MTU`].
    pub mtu: u16,
    /// `depth=`, the mmsg vector length, [`DEPTH_RANGE`], default [`DEFAULT_DEPTH`].
    pub depth: u16,
    /// `headroom=`, [`HEADROOM_RANGE`], default [`DEFAULT_HEADROOM`].
    pub headroom: u16,
    /// `gro=`: 64 KiB GSO frames pass whole (`Some(true)`), are segmented in software
    /// as UML's `gro=0` needs (`Some(false)`), or, not given (`None`), pass whole wherever
    /// the port and its interface can carry them (see [`Common::gro`]).
    pub gro: Option<bool>,
    /// `vec=`: multi-packet IO; `vec=0` falls back to one packet per call.
    pub vector: bool,
    /// `bpffile=`: classic BPF program attached to the rx socket.
    pub bpffile: Option<PathBuf>,
    /// `bpfflash=`: let the guest load BPF with `ethtool -f`.
    pub bpfflash: bool,
    /// `ring=` (raw and hybrid only): how the receive socket delivers frames; `None`
    /// takes [`DEFAULT_RING`].
    pub ring: Option<RingMode>,
    /// `ring_kib=` (raw and hybrid, with a ring): the receive ring's size in KiB, in
    /// [`RING_KIB_RANGE`]; `None` shares a per-guest budget between the guest's ring
    /// ports (see `transport::port::ring::default_bytes`).
    pub ring_kib: Option<u32>,
    /// `fd=` (gre and l2tpv3 only): the tunnel's socket is this inherited descriptor,
    /// already bound to `src` (and `srcport`) by the parent — how a lab hands a guest in
    /// its own namespace a socket on the machine's underlay address.
    pub sock_fd: Option<i32>,
    /// `tx_*`/`rx_*` impairment keys (vecbox; docs/impairments.md): what frames
    /// leaving onto the link (`tx_delay=20ms`) and arriving from it (`rx_loss=1%`) go
    /// through.
    pub impair: crate::impair::PortParams,
}

/// How raw and hybrid ports receive (`ring=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RingMode {
    /// `ring=0`: `recvmmsg` into the port's buffers, as UML.
    Off = 0,
    /// `ring=1`: a TPACKET_V2 frame ring, one slot per frame, each handed over as soon as
    /// it is written (no added latency); frames larger than a slot (GSO) come through
    /// the socket.
    Frames = 1,
    /// `ring=2`: a TPACKET_V3 block ring, frames packed into blocks handed over when full
    /// or after a 1 ms retire timeout.
    Blocks = 2,
}

impl RingMode {
    /// From the `ring=` value.
    pub fn from_value(v: u64) -> Option<RingMode> {
        match v {
            0 => Some(RingMode::Off),
            1 => Some(RingMode::Frames),
            2 => Some(RingMode::Blocks),
            _ => None,
        }
    }
}

/// `ring_kib=`: from four 64 KiB blocks to 256 MiB.
pub const RING_KIB_RANGE: std::ops::RangeInclusive<u32> = 256..=262_144;

/// How raw and hybrid ports receive when `ring=` is not given (and `vec=` is on).
pub const DEFAULT_RING: RingMode = RingMode::Frames;

impl Common {
    /// The receive ring to use (`ring=`, default [`DEFAULT_RING`]); never one with `vec=0`.
    pub fn rx_ring(&self) -> RingMode {
        if self.vector {
            self.ring.unwrap_or(DEFAULT_RING)
        } else {
            RingMode::Off
        }
    }

    /// Whether GSO frames may leave whole: `gro=` as given, else `auto` (what the port
    /// and its interface can carry, decided when it opens).
    pub fn gro(&self, auto: bool) -> bool {
        self.gro.unwrap_or(auto)
    }
}

impl Default for Common {
    fn default() -> Self {
        Common {
            mac: None,
            mtu: DEFAULT_MTU,
            depth: DEFAULT_DEPTH,
            headroom: DEFAULT_HEADROOM,
            gro: None,
            vector: true,
            bpffile: None,
            bpfflash: false,
            ring: None,
            ring_kib: None,
            sock_fd: None,
            impair: crate::impair::PortParams::default(),
        }
    }
}

/// A transport with its typed keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `transport=tap`: a host tap device; a random `tapXXXXXX` name if `ifname` is absent.
    Tap {
        ifname: Option<IfName>,
        ifup: Option<PathBuf>,
    },
    /// `transport=hybrid`: tap for tx, AF_PACKET on the same interface for rx.
    Hybrid {
        ifname: IfName,
        ifup: Option<PathBuf>,
    },
    /// `transport=raw`: AF_PACKET sockets bound to `ifname`.
    Raw {
        ifname: IfName,
        ifup: Option<PathBuf>,
    },
    /// `transport=gre`: Ethernet over GRE (raw IP protocol 47).
    Gre {
        src: String,
        dst: String,
        v6: bool,
        rx_key: Option<u32>,
        tx_key: Option<u32>,
        sequence: bool,
        pin_sequence: bool,
    },
    /// `transport=l2tpv3`: Ethernet over L2TPv3, IP protocol 115 or UDP.
    L2tpv3 {
        src: String,
        dst: String,
        v6: bool,
        udp: bool,
        srcport: Option<u16>,
        dstport: Option<u16>,
        rx_session: u32,
        tx_session: u32,
        cookie64: bool,
        rx_cookie: Option<u64>,
        tx_cookie: Option<u64>,
        counter: bool,
        pin_counter: bool,
    },
    /// `transport=bess`: AF_UNIX SOCK_SEQPACKET; connect to `dst`, or (vecbox) listen on
    /// `listen`.
    Bess {
        dst: Option<PathBuf>,
        src: Option<PathBuf>,
        listen: Option<PathBuf>,
    },
    /// `transport=fd`: an inherited descriptor.
    Fd { fd: i32 },
    /// `transport=vde`: `vde_plug` (not runnable by vecbox).
    Vde {
        vnl: Option<String>,
        descr: Option<String>,
        port: Option<String>,
        mode: Option<String>,
        group: Option<String>,
    },
}

impl Kind {
    /// The `transport=` name.
    pub fn transport_name(&self) -> &'static str {
        match self {
            Kind::Tap { .. } => "tap",
            Kind::Hybrid { .. } => "hybrid",
            Kind::Raw { .. } => "raw",
            Kind::Gre { .. } => "gre",
            Kind::L2tpv3 { .. } => "l2tpv3",
            Kind::Bess { .. } => "bess",
            Kind::Fd { .. } => "fd",
            Kind::Vde { .. } => "vde",
        }
    }
}

impl Spec {
    /// A spec with default common keys.
    pub fn new(unit: u32, kind: Kind) -> Self {
        Spec {
            unit,
            common: Common::default(),
            kind,
        }
    }

    /// The `transport=` name.
    pub fn transport_name(&self) -> &'static str {
        self.kind.transport_name()
    }

    /// The interface name as the guest sees it, `vecN`.
    pub fn device(&self) -> String {
        format!("vec{}", self.unit)
    }

    /// Checks the rules the parser enforces on a `Spec` built by hand: value ranges, MAC,
    /// paths and strings (non-empty, no `,`, `=` or NUL), mandatory and paired keys. A spec
    /// that passes prints (`Display`) as a string that parses back to an equal `Spec`.
    pub fn validate(&self) -> Result<(), SpecError> {
        check::validate(self)
    }

    /// Legal but suspicious settings: a vendor MAC, `bpfflash=1`, an IP literal of the
    /// family `v6=` does not select.
    pub fn warnings(&self) -> Vec<SpecWarning> {
        check::warnings(self)
    }
}

impl FromStr for Spec {
    type Err = SpecError;

    /// Parses `vecN:transport=NAME,key=value,...`; see the module doc for the rules.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse(s)
    }
}

/// Writes `,key=value`.
fn pair(f: &mut fmt::Formatter<'_>, key: &str, value: impl fmt::Display) -> fmt::Result {
    write!(f, ",{key}={value}")
}

fn opt<T: fmt::Display>(f: &mut fmt::Formatter<'_>, key: &str, v: Option<T>) -> fmt::Result {
    v.map_or(Ok(()), |v| pair(f, key, v))
}

fn opt_path(f: &mut fmt::Formatter<'_>, key: &str, v: &Option<PathBuf>) -> fmt::Result {
    opt(f, key, v.as_ref().map(|p| p.display()))
}

fn flag(f: &mut fmt::Formatter<'_>, key: &str, on: bool) -> fmt::Result {
    if on { pair(f, key, 1) } else { Ok(()) }
}

/// The canonical spec: `vecN:transport=NAME`, the transport's keys in [`keys_for`] order,
/// then the common keys that differ from their defaults. Flags print as `key=1` when on and
/// not at all when off (`vec=0` when vector IO is off); numbers print in decimal.
impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vec{}:transport={}", self.unit, self.transport_name())?;
        match &self.kind {
            Kind::Tap { ifname, ifup } => {
                opt(f, "ifname", ifname.as_ref())?;
                opt_path(f, "ifup", ifup)?;
            }
            Kind::Hybrid { ifname, ifup } | Kind::Raw { ifname, ifup } => {
                pair(f, "ifname", ifname)?;
                opt_path(f, "ifup", ifup)?;
            }
            Kind::Gre {
                src,
                dst,
                v6,
                rx_key,
                tx_key,
                sequence,
                pin_sequence,
            } => {
                pair(f, "src", src)?;
                pair(f, "dst", dst)?;
                flag(f, "v6", *v6)?;
                opt(f, "rx_key", *rx_key)?;
                opt(f, "tx_key", *tx_key)?;
                flag(f, "sequence", *sequence)?;
                flag(f, "pin_sequence", *pin_sequence)?;
            }
            Kind::L2tpv3 {
                src,
                dst,
                v6,
                udp,
                srcport,
                dstport,
                rx_session,
                tx_session,
                cookie64,
                rx_cookie,
                tx_cookie,
                counter,
                pin_counter,
            } => {
                pair(f, "src", src)?;
                pair(f, "dst", dst)?;
                flag(f, "v6", *v6)?;
                flag(f, "udp", *udp)?;
                opt(f, "srcport", *srcport)?;
                opt(f, "dstport", *dstport)?;
                pair(f, "rx_session", rx_session)?;
                pair(f, "tx_session", tx_session)?;
                flag(f, "cookie64", *cookie64)?;
                opt(f, "rx_cookie", *rx_cookie)?;
                opt(f, "tx_cookie", *tx_cookie)?;
                flag(f, "counter", *counter)?;
                flag(f, "pin_counter", *pin_counter)?;
            }
            Kind::Bess { dst, src, listen } => {
                opt_path(f, "dst", dst)?;
                opt_path(f, "src", src)?;
                opt_path(f, "listen", listen)?;
            }
            Kind::Fd { fd } => pair(f, "fd", fd)?,
            Kind::Vde {
                vnl,
                descr,
                port,
                mode,
                group,
            } => {
                opt(f, "vnl", vnl.as_ref())?;
                opt(f, "descr", descr.as_ref())?;
                opt(f, "port", port.as_ref())?;
                opt(f, "mode", mode.as_ref())?;
                opt(f, "group", group.as_ref())?;
            }
        }
        let c = &self.common;
        opt(f, "mac", c.mac)?;
        if c.mtu != DEFAULT_MTU {
            pair(f, "mtu", c.mtu)?;
        }
        if c.depth != DEFAULT_DEPTH {
            pair(f, "depth", c.depth)?;
        }
        if c.headroom != DEFAULT_HEADROOM {
            pair(f, "headroom", c.headroom)?;
        }
        opt(f, "gro", c.gro.map(u8::from))?;
        if !c.vector {
            pair(f, "vec", 0)?;
        }
        opt_path(f, "bpffile", &c.bpffile)?;
        flag(f, "bpfflash", c.bpfflash)?;
        opt(f, "ring", c.ring.map(|m| m as u8))?;
        opt(f, "ring_kib", c.ring_kib)?;
        opt(f, "fd", c.sock_fd)?;
        for dir in crate::impair::Direction::BOTH {
            for (k, v) in c.impair.get(dir).pairs() {
                write!(f, ",{}_{k}={v}", dir.name())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
