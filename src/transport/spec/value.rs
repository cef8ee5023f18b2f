//! Small value types of a spec (`MacAddr`, `IfName`) and the number parsers.
//!
//! The number parsers mirror the kernel helpers UML uses (`kstrtoul` base 10 and base 0),
//! minus the quirks: no leading `+`, no trailing newline, nothing but digits.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid [`MacAddr`] or [`IfName`]: a short phrase that reads after
/// the value, e.g. `"contains '/'"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value {0}")]
pub struct InvalidValue(pub &'static str);

/// An Ethernet MAC address as written in a spec: `xx:xx:xx:xx:xx:xx`.
///
/// Parsing checks the syntax only (six pairs of hex digits, `:` between them, any case);
/// the spec parser additionally rejects multicast and all-zero addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The I/G bit (lowest bit of the first octet) is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// The U/L bit (second-lowest bit of the first octet) is set.
    pub fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// All six octets are zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const SYNTAX: InvalidValue = InvalidValue("is not six hex pairs separated by ':'");
        let b = s.as_bytes();
        if b.len() != 17 {
            return Err(SYNTAX);
        }
        let mut out = [0u8; 6];
        for (i, octet) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i < 5 && b[at + 2] != b':' {
                return Err(SYNTAX);
            }
            let hi = hex_digit(b[at]).ok_or(SYNTAX)?;
            let lo = hex_digit(b[at + 1]).ok_or(SYNTAX)?;
            *octet = hi << 4 | lo;
        }
        Ok(MacAddr(out))
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    // `to_digit(16)` yields at most 15, so the narrowing cannot lose bits.
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A Linux network interface name: 1..=15 bytes, no `/`, `:` or whitespace, not `.`/`..`
/// (the kernel's `dev_valid_name` rules, plus no NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    /// Longest name the kernel accepts (`IFNAMSIZ - 1`).
    pub const MAX_LEN: usize = 15;

    /// Checks `name` against the kernel's rules.
    pub fn new(name: &str) -> Result<Self, InvalidValue> {
        if name.is_empty() {
            return Err(InvalidValue("is empty"));
        }
        if name.len() > Self::MAX_LEN {
            return Err(InvalidValue("is longer than 15 bytes"));
        }
        if name == "." || name == ".." {
            return Err(InvalidValue("is \".\" or \"..\""));
        }
        for c in name.chars() {
            let problem = match c {
                '/' => "contains '/'",
                ':' => "contains ':' (alias names are not interfaces)",
                '\0' => "contains a NUL byte",
                c if c.is_whitespace() => "contains whitespace",
                _ => continue,
            };
            return Err(InvalidValue(problem));
        }
        Ok(IfName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfName {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IfName::new(s)
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a number did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    /// Not written in an accepted form.
    NotNumber,
    /// A well-formed number outside the accepted range.
    OutOfRange,
}

fn all_digits(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_digit(radix))
}

fn radix(s: &str, radix: u32) -> Result<u64, NumError> {
    if !all_digits(s, radix) {
        return Err(NumError::NotNumber);
    }
    // Only digits remain, so the one possible failure is overflow.
    u64::from_str_radix(s, radix).map_err(|_| NumError::OutOfRange)
}

/// Decimal digits only (`kstrtoul(.., 10)` without sign or newline).
pub(crate) fn decimal(s: &str) -> Result<u64, NumError> {
    radix(s, 10)
}

/// Base 0 like `kstrtoul(.., 0)`: `0x`/`0X` hex, leading-`0` octal, else decimal.
pub(crate) fn base0(s: &str) -> Result<u64, NumError> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        radix(hex, 16)
    } else if let Some(oct) = s.strip_prefix('0').filter(|rest| !rest.is_empty()) {
        radix(oct, 8)
    } else {
        decimal(s)
    }
}

/// A 32-bit key or session: [`base0`] up to `u32::MAX`, or a negative decimal down to
/// `-2147483648` taken as its two's-complement bit pattern (`-1` is `0xffffffff`), which is
/// how specs written for UML's signed `kstrtoint` spell values of 2^31 and above.
pub(crate) fn u32_or_negative(s: &str) -> Result<u32, NumError> {
    if let Some(magnitude) = s.strip_prefix('-') {
        let m = decimal(magnitude)?;
        return match u32::try_from(m) {
            Ok(m) if m <= 1 << 31 => Ok(m.wrapping_neg()),
            _ => Err(NumError::OutOfRange),
        };
    }
    let v = base0(s)?;
    u32::try_from(v).map_err(|_| NumError::OutOfRange)
}

/// A flag: a non-negative decimal integer, on when greater than zero (as UML).
pub(crate) fn flag(s: &str) -> Option<bool> {
    decimal(s).ok().map(|v| v > 0)
}
