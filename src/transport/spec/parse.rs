//! The parser: device number, tokenizer, transport, then each key into a [`Builder`].

use std::path::PathBuf;

use super::check::Ctx;
use super::error::{KeyHint, SpecError};
use super::keys::{
    TRANSPORTS, canonical, closest, closest_transport, form_any, form_of, keys_for, owners,
};
use super::value::{self, IfName, MacAddr, NumError};
use super::{
    Common, DEPTH_RANGE, HEADROOM_RANGE, Kind, MAX_PAIRS, MTU_RANGE, RING_KIB_RANGE, RingMode, Spec,
};

/// Parses a whole spec; see the module doc of `spec` for the stages.
pub(super) fn parse(s: &str) -> Result<Spec, SpecError> {
    if s.is_empty() {
        return Err(SpecError::Empty);
    }
    let Some(rest) = s.strip_prefix("vec") else {
        return Err(SpecError::MissingVecPrefix {
            input: s.to_owned(),
        });
    };
    let Some((number, body)) = rest.split_once(':') else {
        return Err(SpecError::MissingColon {
            input: s.to_owned(),
        });
    };
    let unit = match value::base0(number).map(u32::try_from) {
        Ok(Ok(unit)) => unit,
        _ => {
            return Err(SpecError::BadUnit {
                text: number.to_owned(),
            });
        }
    };
    let pairs = tokenize(unit, body)?;
    let transport = transport(unit, &pairs)?;
    let mut b = Builder::new(Ctx { unit, transport });
    let mut seen: Vec<(&'static str, &str)> = Vec::with_capacity(pairs.len());
    let mut impair = [
        crate::impair::Change::default(),
        crate::impair::Change::default(),
    ];
    for &(key, value) in &pairs {
        if key == "transport" {
            continue;
        }
        let Some(canon) = canonical(transport, key) else {
            if let Some((dir, name)) = impair_key(key) {
                impair[dir.index()]
                    .set(name, value)
                    .map_err(|e| impair_error(unit, dir, e))?;
                continue;
            }
            return Err(unknown_key(unit, transport, key));
        };
        if let Some(&(_, first)) = seen.iter().find(|(c, _)| *c == canon) {
            return Err(SpecError::DuplicateKey {
                unit,
                key: key.to_owned(),
                first: first.to_owned(),
                example: form_of(transport, canon).example,
            });
        }
        seen.push((canon, key));
        b.set(canon, key, value)?;
    }
    for dir in crate::impair::Direction::BOTH {
        *b.common.impair.get_mut(dir) = crate::impair::Params::default()
            .apply(&impair[dir.index()])
            .map_err(|e| impair_error(unit, dir, e))?;
    }
    b.finish()
}

/// `tx_delay` → (tx, `delay`), for the impairment keys (docs/impairments.md).
fn impair_key(key: &str) -> Option<(crate::impair::Direction, &str)> {
    use crate::impair::Direction;
    let (dir, name) = if let Some(n) = key.strip_prefix("tx_") {
        (Direction::Tx, n)
    } else {
        (Direction::Rx, key.strip_prefix("rx_")?)
    };
    crate::impair::params::is_key(name).then_some((dir, name))
}

/// An impairment error with the keys named as written in the spec.
pub(super) fn impair_error(
    unit: u32,
    dir: crate::impair::Direction,
    e: crate::impair::ImpairError,
) -> SpecError {
    let prefix = match dir {
        crate::impair::Direction::Tx => "tx_",
        crate::impair::Direction::Rx => "rx_",
    };
    SpecError::Impair {
        unit,
        source: e.prefixed(prefix),
    }
}

/// Splits `key=value,...` into pairs; structural errors only.
fn tokenize(unit: u32, body: &str) -> Result<Vec<(&str, &str)>, SpecError> {
    if body.is_empty() {
        return Err(SpecError::MissingTransport { unit });
    }
    if body.split(',').nth(MAX_PAIRS).is_some() {
        return Err(SpecError::TooManyPairs {
            unit,
            max: MAX_PAIRS,
        });
    }
    let mut pairs = Vec::new();
    for item in body.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            return Err(SpecError::BareToken {
                unit,
                token: item.to_owned(),
                example: form_any(item).example,
            });
        };
        if key.is_empty() {
            return Err(SpecError::EmptyKey {
                unit,
                item: item.to_owned(),
            });
        }
        if value.contains('=') {
            return Err(SpecError::ExtraEquals {
                unit,
                key: key.to_owned(),
                value: value.to_owned(),
                example: form_any(key).example,
            });
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Finds the one `transport=` pair and matches it exactly.
fn transport(unit: u32, pairs: &[(&str, &str)]) -> Result<&'static str, SpecError> {
    let mut found = pairs.iter().filter(|(k, _)| *k == "transport");
    let Some(&(_, value)) = found.next() else {
        return Err(SpecError::MissingTransport { unit });
    };
    if found.next().is_some() {
        return Err(SpecError::DuplicateKey {
            unit,
            key: "transport".to_owned(),
            first: "transport".to_owned(),
            example: "transport=tap",
        });
    }
    TRANSPORTS
        .iter()
        .copied()
        .find(|t| *t == value)
        .ok_or_else(|| SpecError::UnknownTransport {
            unit,
            value: value.to_owned(),
            suggestion: closest_transport(value),
        })
}

fn unknown_key(unit: u32, transport: &'static str, key: &str) -> SpecError {
    // A misspelt impairment key (`tx_dealy`): say so with the impairment keys, unless a
    // key of the transport (`tx_kye` → `tx_key`) is closer.
    for (prefix, dir) in [
        ("tx_", crate::impair::Direction::Tx),
        ("rx_", crate::impair::Direction::Rx),
    ] {
        if let Some(name) = key.strip_prefix(prefix)
            && closest(key, keys_for(transport)).is_none()
            && let Err(
                e @ crate::impair::ImpairError::UnknownKey {
                    suggestion: Some(_),
                    ..
                },
            ) = crate::impair::Change::default().set(name, "0")
        {
            return impair_error(unit, dir, e);
        }
    }
    let others = owners(key);
    let hint = if !others.is_empty() {
        KeyHint::OtherTransport(others)
    } else if let Some(k) = closest(key, keys_for(transport)) {
        KeyHint::DidYouMean(k)
    } else {
        KeyHint::None
    };
    SpecError::UnknownKey {
        unit,
        transport,
        key: key.to_owned(),
        hint,
    }
}

/// Every key any transport accepts, typed, until the transport's [`Kind`] is built.
struct Builder<'a> {
    cx: Ctx,
    common: Common,
    ifname: Option<IfName>,
    ifup: Option<PathBuf>,
    src: Option<&'a str>,
    dst: Option<&'a str>,
    listen: Option<&'a str>,
    v6: bool,
    udp: bool,
    srcport: Option<u16>,
    dstport: Option<u16>,
    rx_key: Option<u32>,
    tx_key: Option<u32>,
    sequence: bool,
    pin_sequence: bool,
    rx_session: Option<u32>,
    tx_session: Option<u32>,
    cookie64: bool,
    rx_cookie: Option<u64>,
    tx_cookie: Option<u64>,
    counter: bool,
    pin_counter: bool,
    fd: Option<i32>,
    vde: [Option<&'a str>; 5],
}

/// Order of [`Builder::vde`].
const VDE_KEYS: [&str; 5] = ["vnl", "descr", "port", "mode", "group"];

impl<'a> Builder<'a> {
    fn new(cx: Ctx) -> Self {
        Builder {
            cx,
            common: Common::default(),
            ifname: None,
            ifup: None,
            src: None,
            dst: None,
            listen: None,
            v6: false,
            udp: false,
            srcport: None,
            dstport: None,
            rx_key: None,
            tx_key: None,
            sequence: false,
            pin_sequence: false,
            rx_session: None,
            tx_session: None,
            cookie64: false,
            rx_cookie: None,
            tx_cookie: None,
            counter: false,
            pin_counter: false,
            fd: None,
            vde: [None; 5],
        }
    }

    /// Maps a number parse to an error for `key` or checks it against `range`.
    fn number(
        &self,
        key: &str,
        canon: &str,
        value: &str,
        parsed: Result<u64, NumError>,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, SpecError> {
        match parsed {
            Ok(v) if range.contains(&v) => Ok(v),
            Ok(_) | Err(NumError::OutOfRange) => Err(self.cx.out_of_range(key, canon, value)),
            Err(NumError::NotNumber) => {
                let form = form_of(self.cx.transport, canon);
                Err(SpecError::BadNumber {
                    unit: self.cx.unit,
                    key: key.to_owned(),
                    value: value.to_owned(),
                    expected: form.expected,
                    example: form.example,
                })
            }
        }
    }

    /// A decimal `u16` in `range`.
    fn dec16(
        &self,
        key: &str,
        canon: &str,
        value: &str,
        range: &std::ops::RangeInclusive<u16>,
    ) -> Result<u16, SpecError> {
        let wide = u64::from(*range.start())..=u64::from(*range.end());
        let v = self.number(key, canon, value, value::decimal(value), wide)?;
        u16::try_from(v).map_err(|_| self.cx.out_of_range(key, canon, value))
    }

    fn word32(&self, key: &str, canon: &str, value: &str) -> Result<u32, SpecError> {
        let parsed = value::u32_or_negative(value).map(u64::from);
        let v = self.number(key, canon, value, parsed, 0..=u64::from(u32::MAX))?;
        u32::try_from(v).map_err(|_| self.cx.out_of_range(key, canon, value))
    }

    fn flag(&self, key: &str, canon: &str, value: &str) -> Result<bool, SpecError> {
        value::flag(value).ok_or_else(|| SpecError::BadFlag {
            unit: self.cx.unit,
            key: key.to_owned(),
            value: value.to_owned(),
            example: form_of(self.cx.transport, canon).example,
        })
    }

    /// Parses one value of canonical key `canon`, written as `key`, into its field.
    fn set(&mut self, canon: &'static str, key: &str, value: &'a str) -> Result<(), SpecError> {
        let cx = self.cx;
        if value.is_empty() {
            return Err(cx.bad_value(key, canon, value, "is empty"));
        }
        if value.contains('\0') {
            return Err(cx.bad_value(key, canon, value, "contains a NUL byte"));
        }
        match canon {
            "mac" => {
                let mac: MacAddr = value
                    .parse()
                    .map_err(|e: value::InvalidValue| cx.bad_value(key, canon, value, e.0))?;
                cx.mac(key, mac, value)?;
                self.common.mac = Some(mac);
            }
            "mtu" => self.common.mtu = self.dec16(key, canon, value, &MTU_RANGE)?,
            "depth" => self.common.depth = self.dec16(key, canon, value, &DEPTH_RANGE)?,
            "headroom" => self.common.headroom = self.dec16(key, canon, value, &HEADROOM_RANGE)?,
            "gro" => self.common.gro = Some(self.flag(key, canon, value)?),
            "vec" => self.common.vector = self.flag(key, canon, value)?,
            "ring" => {
                let mode = value::decimal(value)
                    .ok()
                    .and_then(RingMode::from_value)
                    .ok_or_else(|| cx.bad_value(key, canon, value, "is not a ring mode"))?;
                self.common.ring = Some(mode);
            }
            "ring_kib" => {
                let range = u64::from(*RING_KIB_RANGE.start())..=u64::from(*RING_KIB_RANGE.end());
                let v = self.number(key, canon, value, value::decimal(value), range)?;
                let kib = u32::try_from(v).map_err(|_| cx.out_of_range(key, canon, value))?;
                self.common.ring_kib = Some(kib);
            }
            "bpfflash" => self.common.bpfflash = self.flag(key, canon, value)?,
            "bpffile" => self.common.bpffile = Some(PathBuf::from(value)),
            "ifname" => {
                let name = IfName::new(value).map_err(|e| cx.bad_value(key, canon, value, e.0))?;
                self.ifname = Some(name);
            }
            "ifup" => self.ifup = Some(PathBuf::from(value)),
            "src" | "dst" | "listen" => {
                if cx.transport == "bess" {
                    cx.unix_path(key, canon, value)?;
                }
                match canon {
                    "src" => self.src = Some(value),
                    "dst" => self.dst = Some(value),
                    _ => self.listen = Some(value),
                }
            }
            "v6" => self.v6 = self.flag(key, canon, value)?,
            "udp" => self.udp = self.flag(key, canon, value)?,
            "sequence" => self.sequence = self.flag(key, canon, value)?,
            "pin_sequence" => self.pin_sequence = self.flag(key, canon, value)?,
            "cookie64" => self.cookie64 = self.flag(key, canon, value)?,
            "counter" => self.counter = self.flag(key, canon, value)?,
            "pin_counter" => self.pin_counter = self.flag(key, canon, value)?,
            "srcport" | "dstport" => {
                let v = self.number(key, canon, value, value::decimal(value), 1..=65535)?;
                let port = u16::try_from(v).map_err(|_| cx.out_of_range(key, canon, value))?;
                if canon == "srcport" {
                    self.srcport = Some(port);
                } else {
                    self.dstport = Some(port);
                }
            }
            "rx_key" => self.rx_key = Some(self.word32(key, canon, value)?),
            "tx_key" => self.tx_key = Some(self.word32(key, canon, value)?),
            "rx_session" => self.rx_session = Some(self.word32(key, canon, value)?),
            "tx_session" => self.tx_session = Some(self.word32(key, canon, value)?),
            "rx_cookie" | "tx_cookie" => {
                let v = self.number(key, canon, value, value::base0(value), 0..=u64::MAX)?;
                if canon == "rx_cookie" {
                    self.rx_cookie = Some(v);
                } else {
                    self.tx_cookie = Some(v);
                }
            }
            "fd" => {
                let max = u64::from(i32::MAX.unsigned_abs());
                let v = self.number(key, canon, value, value::decimal(value), 0..=max)?;
                let fd = i32::try_from(v).map_err(|_| cx.out_of_range(key, canon, value))?;
                self.fd = Some(fd);
            }
            _ => {
                // Only the vde strings are left; `canonical` never yields anything else.
                if let Some(i) = VDE_KEYS.iter().position(|k| *k == canon) {
                    self.vde[i] = Some(value);
                }
            }
        }
        Ok(())
    }

    /// Builds the transport's [`Kind`] and checks the whole spec.
    fn finish(self) -> Result<Spec, SpecError> {
        let cx = self.cx;
        let owned = |s: Option<&str>| s.map(str::to_owned);
        let path = |s: Option<&str>| s.map(PathBuf::from);
        let kind = match cx.transport {
            "tap" => Kind::Tap {
                ifname: self.ifname,
                ifup: self.ifup,
            },
            "hybrid" => Kind::Hybrid {
                ifname: cx.need("ifname", self.ifname)?,
                ifup: self.ifup,
            },
            "raw" => Kind::Raw {
                ifname: cx.need("ifname", self.ifname)?,
                ifup: self.ifup,
            },
            "gre" => Kind::Gre {
                src: cx.need("src", self.src)?.to_owned(),
                dst: cx.need("dst", self.dst)?.to_owned(),
                v6: self.v6,
                rx_key: self.rx_key,
                tx_key: self.tx_key,
                sequence: self.sequence,
                pin_sequence: self.pin_sequence,
            },
            "l2tpv3" => Kind::L2tpv3 {
                src: cx.need("src", self.src)?.to_owned(),
                dst: cx.need("dst", self.dst)?.to_owned(),
                v6: self.v6,
                udp: self.udp,
                srcport: self.srcport,
                dstport: self.dstport,
                rx_session: cx.need("rx_session", self.rx_session)?,
                tx_session: cx.need("tx_session", self.tx_session)?,
                cookie64: self.cookie64,
                rx_cookie: self.rx_cookie,
                tx_cookie: self.tx_cookie,
                counter: self.counter,
                pin_counter: self.pin_counter,
            },
            "bess" => Kind::Bess {
                dst: path(self.dst),
                src: path(self.src),
                listen: path(self.listen),
            },
            "fd" => Kind::Fd {
                fd: cx.need("fd", self.fd)?,
            },
            // "vde", the last of `TRANSPORTS` (`transport()` returns only those names).
            _ => {
                let [vnl, descr, port, mode, group] = self.vde;
                Kind::Vde {
                    vnl: owned(vnl),
                    descr: owned(descr),
                    port: owned(port),
                    mode: owned(mode),
                    group: owned(group),
                }
            }
        };
        let mut common = self.common;
        if matches!(kind, Kind::Gre { .. } | Kind::L2tpv3 { .. }) {
            common.sock_fd = self.fd;
        }
        let spec = Spec {
            unit: cx.unit,
            common,
            kind,
        };
        spec.validate()?;
        Ok(spec)
    }
}
