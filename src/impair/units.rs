//! Values of impairment keys: durations (`20ms`, `150us`, `1.5s`), rates (`10mbit`,
//! `1gbit`), probabilities (`5%` or the fraction `0.05`), byte counts and queue limits
//! (`1000pkt`, `64kb`, `50ms`). Parsing is exact decimal arithmetic (no floating point),
//! so `1.1ms` is 1 100 000 ns and prints back as `1.1ms`.
//!
//! Each parser returns a [`Bad`]: the problem in words, for the caller to put next to
//! the key and its accepted form.

use std::fmt;

/// Why a value was refused (the caller adds the key and the accepted form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bad(pub String);

fn bad(s: impl Into<String>) -> Bad {
    Bad(s.into())
}

/// Probability in parts per billion (`1_000_000_000` = 100 %): exact for every value
/// written with up to seven decimals of a percent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prob(pub u32);

impl Prob {
    /// 100 %.
    pub const ONE: Prob = Prob(1_000_000_000);
    /// 0 %.
    pub const ZERO: Prob = Prob(0);

    /// As a fraction 0..=1.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 1e9
    }

    /// `true` for 0 %.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The complement (1 − p).
    pub fn complement(self) -> Prob {
        Prob(Self::ONE.0 - self.0.min(Self::ONE.0))
    }

    /// `true` with this probability for a uniform 64-bit draw `x` (exact: no
    /// floating point, 100 % always true, 0 % never).
    #[inline]
    pub fn hit(self, x: u64) -> bool {
        (u128::from(x) * 1_000_000_000) < (u128::from(self.0) << 64)
    }
}

/// Prints as a percentage with as many decimals as needed (`5%`, `0.25%`).
impl fmt::Display for Prob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ppb / 1e7 = percent.
        let whole = self.0 / 10_000_000;
        let frac = self.0 % 10_000_000;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let digits = format!("{frac:07}");
            write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}

/// A decimal number split as `mantissa / 10^scale` (at most 18 fractional digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    mantissa: u128,
    scale: u32,
}

impl Decimal {
    /// `self × mul / div`, rounded to nearest; `None` on overflow.
    fn scaled(&self, mul: u128, div: u128) -> Option<u128> {
        let den = 10u128.checked_pow(self.scale)?.checked_mul(div)?;
        let num = self.mantissa.checked_mul(mul)?;
        Some((num + den / 2) / den)
    }

    fn is_zero(&self) -> bool {
        self.mantissa == 0
    }
}

/// Splits `s` into a decimal number and the unit after it (one optional space between).
fn split_number(s: &str) -> Result<(Decimal, &str), Bad> {
    let s = s.trim();
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(bad("is not a number"));
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.len() > 18 || int.len() > 20 {
        return Err(bad("has too many digits"));
    }
    let mut mantissa: u128 = 0;
    for c in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa * 10 + u128::from(c - b'0');
    }
    Ok((
        Decimal {
            negative,
            mantissa,
            scale: frac.len() as u32,
        },
        unit.trim_start(),
    ))
}

/// Nanoseconds per duration unit.
fn time_unit(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "usec" => 1_000,
        "ms" | "msec" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        _ => return None,
    })
}

/// Longest duration any key accepts (one minute).
pub const MAX_DURATION_NS: u64 = 60_000_000_000;

/// A duration ≥ 0 in nanoseconds: a number and one of `ns`, `us` (`µs`), `ms`, `s`.
pub fn duration(s: &str) -> Result<u64, Bad> {
    let (d, unit) = split_number(s)?;
    if d.negative && !d.is_zero() {
        return Err(bad("is negative"));
    }
    if unit.is_empty() {
        return Err(bad("has no unit"));
    }
    let per = time_unit(&unit.to_ascii_lowercase())
        .or_else(|| time_unit(unit))
        .ok_or_else(|| bad(format!("has an unknown unit {unit:?}")))?;
    match d.scaled(per, 1) {
        Some(ns) if ns <= u128::from(MAX_DURATION_NS) => Ok(ns as u64),
        _ => Err(bad("is longer than 60s")),
    }
}

/// Prints nanoseconds with the largest unit that keeps the value exact-ish
/// (`20ms`, `1.5ms`, `150us`, `7ns`).
pub fn fmt_duration(ns: u64) -> String {
    for (unit, per) in [("s", 1_000_000_000u64), ("ms", 1_000_000), ("us", 1_000)] {
        if ns >= per {
            let whole = ns / per;
            let frac = ns % per;
            if frac == 0 {
                return format!("{whole}{unit}");
            }
            let width = per.ilog10() as usize;
            let digits = format!("{frac:0width$}");
            return format!("{whole}.{}{unit}", digits.trim_end_matches('0'));
        }
    }
    format!("{ns}ns")
}

/// Bits per second per rate unit (SI multiples of `bit`, and IEC `kibit`…).
fn rate_unit(unit: &str) -> Option<u128> {
    Some(match unit {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        "tbit" => 1_000_000_000_000,
        "kibit" => 1 << 10,
        "mibit" => 1 << 20,
        "gibit" => 1 << 30,
        _ => return None,
    })
}

/// Highest accepted rate (1 Tbit/s).
pub const MAX_RATE: u64 = 1_000_000_000_000;

/// A rate in bit/s > 0: a number and one of `bit`, `kbit`, `mbit`, `gbit`, `tbit`,
/// `kibit`, `mibit`, `gibit` (any case). `bps`-style units are refused: tc reads
/// `mbps` as megabytes per second, which is rarely what was meant.
pub fn rate(s: &str) -> Result<u64, Bad> {
    let (d, unit) = split_number(s)?;
    if d.negative && !d.is_zero() {
        return Err(bad("is negative"));
    }
    if unit.is_empty() {
        return Err(bad("has no unit"));
    }
    let lower = unit.to_ascii_lowercase();
    if lower.ends_with("bps") {
        return Err(bad(format!(
            "uses {unit:?}, which tc reads as bytes per second; write bits: {}bit",
            lower.trim_end_matches("bps")
        )));
    }
    let per = rate_unit(&lower).ok_or_else(|| bad(format!("has an unknown unit {unit:?}")))?;
    match d.scaled(per, 1) {
        Some(0) => Err(bad("is zero (use rate=default for no limit)")),
        Some(r) if r <= u128::from(MAX_RATE) => Ok(r as u64),
        _ => Err(bad("is above 1tbit")),
    }
}

/// Prints bit/s with the largest exact SI unit (`10mbit`, `1gbit`, `1500kbit`).
pub fn fmt_rate(bps: u64) -> String {
    for (unit, per) in [
        ("tbit", 1_000_000_000_000u64),
        ("gbit", 1_000_000_000),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
    ] {
        if bps >= per && bps.is_multiple_of(per) {
            return format!("{}{unit}", bps / per);
        }
    }
    format!("{bps}bit")
}

/// A probability: `5%`, `0.5%`, or a fraction `0.05` (0..=1).
pub fn prob(s: &str) -> Result<Prob, Bad> {
    let (d, unit) = split_number(s)?;
    if d.negative && !d.is_zero() {
        return Err(bad("is negative"));
    }
    let ppb = match unit {
        "%" => d.scaled(10_000_000, 1),
        "" => d.scaled(1_000_000_000, 1),
        other => return Err(bad(format!("has an unknown unit {other:?}"))),
    };
    match ppb {
        Some(p) if p <= 1_000_000_000 => Ok(Prob(p as u32)),
        _ if unit.is_empty() => Err(bad("is above 1 (write a percentage with %: 5%)")),
        _ => Err(bad("is above 100%")),
    }
}

/// A byte count, optionally signed: digits with an optional `b` suffix.
pub fn bytes_signed(s: &str, min: i64, max: i64) -> Result<i64, Bad> {
    let (d, unit) = split_number(s)?;
    if d.scale > 0 {
        return Err(bad("is not a whole number of bytes"));
    }
    if !(unit.is_empty() || unit.eq_ignore_ascii_case("b")) {
        return Err(bad(format!("has an unknown unit {unit:?}")));
    }
    let v = i64::try_from(d.mantissa).map_err(|_| bad("is out of range"))?;
    let v = if d.negative { -v } else { v };
    if v < min || v > max {
        return Err(bad(format!("is outside {min}..={max}")));
    }
    Ok(v)
}

/// Limit of the bottleneck queue that feeds `rate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueLimit {
    /// At most this many frames waiting.
    Packets(u32),
    /// At most this many bytes waiting.
    Bytes(u64),
    /// A frame that would wait longer than this (ns) before it starts is dropped.
    Time(u64),
}

impl Default for QueueLimit {
    /// 1000 frames, as netem's default `limit` (but counting only the queue in front of
    /// `rate`, not frames in the delay line).
    fn default() -> Self {
        QueueLimit::Packets(1000)
    }
}

impl fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            QueueLimit::Packets(n) => write!(f, "{n}pkt"),
            QueueLimit::Bytes(b) if b % (1 << 20) == 0 => write!(f, "{}mb", b >> 20),
            QueueLimit::Bytes(b) if b % (1 << 10) == 0 => write!(f, "{}kb", b >> 10),
            QueueLimit::Bytes(b) => write!(f, "{b}b"),
            QueueLimit::Time(ns) => f.write_str(&fmt_duration(ns)),
        }
    }
}

/// Most frames or bytes a queue limit may name.
pub const MAX_QUEUE_PACKETS: u64 = 10_000_000;
/// Largest byte limit (1 GiB).
pub const MAX_QUEUE_BYTES: u64 = 1 << 30;

/// A queue limit: `1000pkt` (also `p`, `packets`), `64kb` (`b`, `kb`/`kib` = 1024,
/// `mb`/`mib` = 1048576, as tc counts bytes), or a time `50ms`.
pub fn queue(s: &str) -> Result<QueueLimit, Bad> {
    let (d, unit) = split_number(s)?;
    if d.negative && !d.is_zero() {
        return Err(bad("is negative"));
    }
    let lower = unit.to_ascii_lowercase();
    if time_unit(&lower).is_some() || time_unit(unit).is_some() {
        let ns = duration(s)?;
        return if ns == 0 {
            Err(bad("is zero"))
        } else {
            Ok(QueueLimit::Time(ns))
        };
    }
    let whole = |per: u128, max: u64| -> Result<u64, Bad> {
        if d.scale > 0 && per == 1 {
            return Err(bad("is not a whole number"));
        }
        match d.scaled(per, 1) {
            Some(0) => Err(bad("is zero")),
            Some(v) if v <= u128::from(max) => Ok(v as u64),
            _ => Err(bad(format!("is above {max}"))),
        }
    };
    match lower.as_str() {
        "p" | "pkt" | "pkts" | "packets" => {
            Ok(QueueLimit::Packets(whole(1, MAX_QUEUE_PACKETS)? as u32))
        }
        "b" => Ok(QueueLimit::Bytes(whole(1, MAX_QUEUE_BYTES)?)),
        "k" | "kb" | "kib" => Ok(QueueLimit::Bytes(whole(1 << 10, MAX_QUEUE_BYTES)?)),
        "m" | "mb" | "mib" => Ok(QueueLimit::Bytes(whole(1 << 20, MAX_QUEUE_BYTES)?)),
        "" => Err(bad("has no unit")),
        other => Err(bad(format!("has an unknown unit {other:?}"))),
    }
}

/// A flag: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
pub fn flag(s: &str) -> Result<bool, Bad> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad("is not a flag")),
    }
}

/// A whole number in `min..=max` (decimal or 0x hex).
pub fn integer(s: &str, min: u64, max: u64) -> Result<u64, Bad> {
    let t = s.trim();
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        t.parse::<u64>()
    }
    .map_err(|_| bad("is not a whole number"))?;
    if v < min || v > max {
        return Err(bad(format!("is outside {min}..={max}")));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_exact_and_round_trip() {
        assert_eq!(duration("20ms"), Ok(20_000_000));
        assert_eq!(duration("150us"), Ok(150_000));
        assert_eq!(duration("150µs"), Ok(150_000));
        assert_eq!(duration("1.1ms"), Ok(1_100_000));
        assert_eq!(duration("0"), Err(bad("has no unit")));
        assert_eq!(duration("0ms"), Ok(0));
        assert_eq!(duration("-5ms"), Err(bad("is negative")));
        assert_eq!(duration("2 s"), Ok(2_000_000_000));
        assert!(duration("61s").is_err());
        assert!(duration("5 furlongs").unwrap_err().0.contains("furlongs"));
        for ns in [0, 7, 1_000, 150_000, 1_100_000, 20_000_000, 1_500_000_000] {
            assert_eq!(duration(&fmt_duration(ns)), Ok(ns), "{}", fmt_duration(ns));
        }
        assert_eq!(fmt_duration(1_100_000), "1.1ms");
        assert_eq!(fmt_duration(20_000_000), "20ms");
    }

    #[test]
    fn rates() {
        assert_eq!(rate("10mbit"), Ok(10_000_000));
        assert_eq!(rate("1Gbit"), Ok(1_000_000_000));
        assert_eq!(rate("1.5mbit"), Ok(1_500_000));
        assert_eq!(rate("1kibit"), Ok(1024));
        assert!(rate("10mbps").unwrap_err().0.contains("bytes per second"));
        assert!(rate("10").unwrap_err().0.contains("no unit"));
        assert!(rate("10 furlongs").unwrap_err().0.contains("furlongs"));
        assert!(rate("0mbit").is_err());
        for r in [1, 1_500_000, 10_000_000, 1_000_000_000, 123] {
            assert_eq!(rate(&fmt_rate(r)), Ok(r));
        }
    }

    #[test]
    fn probabilities() {
        assert_eq!(prob("5%"), Ok(Prob(50_000_000)));
        assert_eq!(prob("0.05"), Ok(Prob(50_000_000)));
        assert_eq!(prob("100%"), Ok(Prob::ONE));
        assert_eq!(prob("150%"), Err(bad("is above 100%")));
        assert!(prob("5").unwrap_err().0.contains("5%"));
        assert!(prob("-1%").is_err());
        for p in [0, 1, 2_500_000, 50_000_000, 1_000_000_000] {
            let s = Prob(p).to_string();
            assert_eq!(prob(&s), Ok(Prob(p)), "{s}");
        }
        assert_eq!(Prob(2_500_000).to_string(), "0.25%");
        assert!(Prob::ONE.hit(u64::MAX));
        assert!(!Prob::ZERO.hit(0));
        assert!(Prob(500_000_000).hit(u64::MAX / 2 - 1));
        assert!(!Prob(500_000_000).hit(u64::MAX / 2 + 1));
    }

    #[test]
    fn queues_and_bytes() {
        assert_eq!(queue("100pkt"), Ok(QueueLimit::Packets(100)));
        assert_eq!(queue("64kb"), Ok(QueueLimit::Bytes(65536)));
        assert_eq!(queue("50ms"), Ok(QueueLimit::Time(50_000_000)));
        assert!(queue("100").unwrap_err().0.contains("no unit"));
        assert!(queue("0pkt").is_err());
        for q in [
            QueueLimit::Packets(7),
            QueueLimit::Bytes(65536),
            QueueLimit::Bytes(3 << 20),
            QueueLimit::Bytes(1000),
            QueueLimit::Time(1_500_000),
        ] {
            assert_eq!(queue(&q.to_string()), Ok(q));
        }
        assert_eq!(bytes_signed("-4", -100, 100), Ok(-4));
        assert_eq!(bytes_signed("24b", -100, 100), Ok(24));
        assert!(bytes_signed("1.5", -100, 100).is_err());
        assert_eq!(flag("on"), Ok(true));
        assert_eq!(integer("0x10", 0, 100), Ok(16));
    }
}
