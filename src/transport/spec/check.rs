//! Rules on a whole [`Spec`]: value ranges, mandatory and paired keys, warnings.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::Path;

use super::error::{SpecError, SpecWarning};
use super::keys::form_of;
use super::value::MacAddr;
use super::{
    Common, DEPTH_RANGE, HEADROOM_RANGE, Kind, MAX_UNIX_PATH, MTU_RANGE, RING_KIB_RANGE, Spec,
};

/// Builds errors for one spec.
#[derive(Clone, Copy)]
pub(super) struct Ctx {
    pub unit: u32,
    pub transport: &'static str,
}

impl Ctx {
    /// A [`SpecError::BadValue`] for canonical key `key`, written as `written`.
    pub fn bad_value(
        &self,
        written: &str,
        key: &str,
        value: &str,
        problem: &'static str,
    ) -> SpecError {
        let form = form_of(self.transport, key);
        SpecError::BadValue {
            unit: self.unit,
            key: written.to_owned(),
            value: value.to_owned(),
            problem,
            expected: form.expected,
            example: form.example,
        }
    }

    /// A [`SpecError::OutOfRange`] for canonical key `key`, written as `written`.
    pub fn out_of_range(&self, written: &str, key: &str, value: &str) -> SpecError {
        let form = form_of(self.transport, key);
        SpecError::OutOfRange {
            unit: self.unit,
            key: written.to_owned(),
            value: value.to_owned(),
            expected: form.expected,
            example: form.example,
        }
    }

    fn range(&self, key: &str, v: u64, range: RangeInclusive<u64>) -> Result<(), SpecError> {
        if range.contains(&v) {
            Ok(())
        } else {
            Err(self.out_of_range(key, key, &v.to_string()))
        }
    }

    /// A free-form value: non-empty, no NUL, and (so that it prints back) no `,` or `=`.
    pub fn text(&self, written: &str, key: &str, value: &str) -> Result<(), SpecError> {
        let problem = if value.is_empty() {
            "is empty"
        } else if value.contains('\0') {
            "contains a NUL byte"
        } else if value.contains([',', '=']) {
            "contains ',' or '=' (there is no quoting)"
        } else {
            return Ok(());
        };
        Err(self.bad_value(written, key, value, problem))
    }

    fn path(&self, key: &str, p: &Path) -> Result<(), SpecError> {
        let Some(s) = p.to_str() else {
            let lossy = p.to_string_lossy();
            return Err(self.bad_value(key, key, &lossy, "is not valid UTF-8"));
        };
        self.text(key, key, s)
    }

    /// A bess AF_UNIX path: at most [`MAX_UNIX_PATH`] bytes.
    pub fn unix_path(&self, written: &str, key: &str, value: &str) -> Result<(), SpecError> {
        if value.len() > MAX_UNIX_PATH {
            return Err(self.bad_value(written, key, value, "is longer than 107 bytes"));
        }
        Ok(())
    }

    /// A unicast, non-zero MAC.
    pub fn mac(&self, written: &str, mac: MacAddr, value: &str) -> Result<(), SpecError> {
        if mac.is_multicast() {
            Err(self.bad_value(written, "mac", value, "is a multicast address"))
        } else if mac.is_zero() {
            Err(self.bad_value(written, "mac", value, "is all zeros"))
        } else {
            Ok(())
        }
    }

    /// The value of a key that is mandatory for the transport, or [`SpecError::MissingKey`].
    pub fn need<T>(&self, key: &'static str, v: Option<T>) -> Result<T, SpecError> {
        v.ok_or_else(|| self.missing(key))
    }

    fn missing(&self, key: &'static str) -> SpecError {
        SpecError::MissingKey {
            unit: self.unit,
            transport: self.transport,
            key,
            example: form_of(self.transport, key).example,
        }
    }

    /// `key` (when set) needs `needs` to be set too.
    fn requires(
        &self,
        key: &'static str,
        set: bool,
        needs: &'static str,
        needs_set: bool,
        why: &'static str,
        example: &'static str,
    ) -> Result<(), SpecError> {
        if !set || needs_set {
            return Ok(());
        }
        Err(SpecError::Requires {
            unit: self.unit,
            key: key.to_owned(),
            needs,
            why,
            example,
        })
    }

    fn conflict(&self, key: &'static str, other: &'static str, why: &'static str) -> SpecError {
        SpecError::Conflict {
            unit: self.unit,
            key,
            other,
            why,
            example: form_of("bess", "listen").example,
        }
    }

    fn cookie(&self, key: &'static str, cookie: Option<u64>, wide: bool) -> Result<(), SpecError> {
        match cookie {
            Some(value) if !wide && value > u64::from(u32::MAX) => Err(SpecError::CookieTooWide {
                unit: self.unit,
                key: key.to_owned(),
                value,
            }),
            _ => Ok(()),
        }
    }
}

pub(super) fn validate(spec: &Spec) -> Result<(), SpecError> {
    let cx = Ctx {
        unit: spec.unit,
        transport: spec.transport_name(),
    };
    common(cx, &spec.common)?;
    for dir in crate::impair::Direction::BOTH {
        spec.common
            .impair
            .get(dir)
            .validate()
            .map_err(|e| super::parse::impair_error(cx.unit, dir, e))?;
    }
    kind(cx, &spec.kind)
}

fn common(cx: Ctx, c: &Common) -> Result<(), SpecError> {
    if let Some(mac) = c.mac {
        cx.mac("mac", mac, &mac.to_string())?;
    }
    let widen = |r: &RangeInclusive<u16>| u64::from(*r.start())..=u64::from(*r.end());
    cx.range("mtu", c.mtu.into(), widen(&MTU_RANGE))?;
    cx.range("depth", c.depth.into(), widen(&DEPTH_RANGE))?;
    cx.range("headroom", c.headroom.into(), widen(&HEADROOM_RANGE))?;
    if let Some(p) = &c.bpffile {
        cx.path("bpffile", p)?;
    }
    if c.ring.is_some_and(|m| m != super::RingMode::Off) && !c.vector {
        return Err(SpecError::Conflict {
            unit: cx.unit,
            key: "ring",
            other: "vec",
            why: "the ring replaces batched receive, and vec=0 asks for one recvmsg per frame",
            example: "ring=1 without vec=0, or vec=0 without ring=1",
        });
    }
    if let Some(kib) = c.ring_kib {
        cx.range(
            "ring_kib",
            kib.into(),
            (*RING_KIB_RANGE.start()).into()..=(*RING_KIB_RANGE.end()).into(),
        )?;
        if c.rx_ring() == super::RingMode::Off {
            return Err(SpecError::Conflict {
                unit: cx.unit,
                key: "ring_kib",
                other: if c.vector { "ring" } else { "vec" },
                why: "ring_kib sizes the receive ring, and ring=0 or vec=0 receive without one",
                example: "ring_kib=1024 alone (the default frame ring) or with ring=1 or ring=2",
            });
        }
    }
    Ok(())
}

const PAIRED_KEYS: &str = "keys are set in pairs (UML fails rx_key alone and ignores tx_key \
     alone)";
const PAIRED_COOKIES: &str = "cookies are set in pairs (UML fails rx_cookie alone and ignores \
     tx_cookie alone)";
const PORTS_NEED_UDP: &str = "ports only apply to L2TPv3 over UDP";

fn kind(cx: Ctx, kind: &Kind) -> Result<(), SpecError> {
    match kind {
        Kind::Tap { ifup, .. } | Kind::Hybrid { ifup, .. } | Kind::Raw { ifup, .. } => {
            if let Some(p) = ifup {
                cx.path("ifup", p)?;
            }
        }
        Kind::Gre {
            src,
            dst,
            rx_key,
            tx_key,
            sequence,
            pin_sequence,
            ..
        } => {
            cx.text("src", "src", src)?;
            cx.text("dst", "dst", dst)?;
            let example = "rx_key=1,tx_key=1";
            cx.requires(
                "rx_key",
                rx_key.is_some(),
                "tx_key",
                tx_key.is_some(),
                PAIRED_KEYS,
                example,
            )?;
            cx.requires(
                "tx_key",
                tx_key.is_some(),
                "rx_key",
                rx_key.is_some(),
                PAIRED_KEYS,
                example,
            )?;
            cx.requires(
                "pin_sequence",
                *pin_sequence,
                "sequence=1",
                *sequence,
                "pinning only applies to the sequence field",
                "sequence=1,pin_sequence=1",
            )?;
        }
        Kind::L2tpv3 {
            src,
            dst,
            udp,
            srcport,
            dstport,
            cookie64,
            rx_cookie,
            tx_cookie,
            counter,
            pin_counter,
            ..
        } => {
            cx.text("src", "src", src)?;
            cx.text("dst", "dst", dst)?;
            for (key, port) in [("srcport", srcport), ("dstport", dstport)] {
                if let Some(p) = port {
                    cx.range(key, u64::from(*p), 1..=65535)?;
                }
            }
            cx.requires(
                "srcport",
                srcport.is_some(),
                "udp=1",
                *udp,
                PORTS_NEED_UDP,
                "udp=1,srcport=1706",
            )?;
            cx.requires(
                "dstport",
                dstport.is_some(),
                "udp=1",
                *udp,
                PORTS_NEED_UDP,
                "udp=1,dstport=1707",
            )?;
            let example = "rx_cookie=0x1234,tx_cookie=0x1234";
            let (rx, tx) = (rx_cookie.is_some(), tx_cookie.is_some());
            cx.requires("rx_cookie", rx, "tx_cookie", tx, PAIRED_COOKIES, example)?;
            cx.requires("tx_cookie", tx, "rx_cookie", rx, PAIRED_COOKIES, example)?;
            cx.cookie("rx_cookie", *rx_cookie, *cookie64)?;
            cx.cookie("tx_cookie", *tx_cookie, *cookie64)?;
            cx.requires(
                "pin_counter",
                *pin_counter,
                "counter=1",
                *counter,
                "pinning only applies to the counter field",
                "counter=1,pin_counter=1",
            )?;
        }
        Kind::Bess { dst, src, listen } => {
            for (key, p) in [("dst", dst), ("src", src), ("listen", listen)] {
                if let Some(p) = p {
                    cx.path(key, p)?;
                    cx.unix_path(key, key, &p.to_string_lossy())?;
                }
            }
            match (dst, listen) {
                (None, None) => return Err(cx.missing("dst")),
                (Some(_), Some(_)) => {
                    return Err(cx.conflict(
                        "dst",
                        "listen",
                        "vecbox either connects to dst or listens on listen",
                    ));
                }
                _ => {}
            }
            if src.is_some() && listen.is_some() {
                return Err(cx.conflict(
                    "src",
                    "listen",
                    "src is the local address when connecting to dst; with listen, the \
                     listening path is the local address",
                ));
            }
        }
        Kind::Fd { fd } => {
            if *fd < 0 {
                return Err(cx.out_of_range("fd", "fd", &fd.to_string()));
            }
        }
        Kind::Vde {
            vnl,
            descr,
            port,
            mode,
            group,
        } => {
            let fields = [
                ("vnl", vnl),
                ("descr", descr),
                ("port", port),
                ("mode", mode),
                ("group", group),
            ];
            for (key, v) in fields {
                if let Some(v) = v {
                    cx.text(key, key, v)?;
                }
            }
        }
    }
    Ok(())
}

pub(super) fn warnings(spec: &Spec) -> Vec<SpecWarning> {
    let unit = spec.unit;
    let mut out = Vec::new();
    if let Some(mac) = spec.common.mac
        && !mac.is_locally_administered()
    {
        out.push(SpecWarning::MacNotLocal { unit, mac });
    }
    if spec.common.bpfflash {
        out.push(SpecWarning::BpfFlash { unit });
    }
    if let Kind::Gre { src, dst, v6, .. } | Kind::L2tpv3 { src, dst, v6, .. } = &spec.kind {
        for (key, value) in [("src", src), ("dst", dst)] {
            if let Ok(ip) = value.parse::<IpAddr>()
                && ip.is_ipv6() != *v6
            {
                out.push(SpecWarning::AddressFamily {
                    unit,
                    key,
                    value: value.clone(),
                    v6: *v6,
                });
            }
        }
    }
    out
}
