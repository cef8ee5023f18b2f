//! [`SpecError`] and [`SpecWarning`]: one line each, starting with the device.

use std::fmt;

use super::keys::{TRANSPORTS, keys_for};
use super::value::MacAddr;

/// Longest part of user text an error message shows before eliding the rest.
const SHOW_MAX: usize = 64;

/// User text inside a message: control characters escaped, long values cut short.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match s.char_indices().nth(SHOW_MAX) {
            None => write!(f, "{}", s.escape_debug()),
            Some((cut, _)) => write!(f, "{}… ({} bytes)", s[..cut].escape_debug(), s.len()),
        }
    }
}

/// `"value"`, quoted and shown with [`Shown`].
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", Shown(self.0))
    }
}

/// The comma-separated key list of a transport.
struct KeyList(&'static str);

impl fmt::Display for KeyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&keys_for(self.0).join(", "))
    }
}

/// What else an unknown key could have been.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHint {
    /// Nothing close.
    None,
    /// The key belongs to these other transports.
    OtherTransport(Vec<&'static str>),
    /// A typo of this key of the same transport.
    DidYouMean(&'static str),
}

/// Why a `vecN:` spec was rejected. `Display` is one line that starts with the device
/// (`vec0: ...`), names the key, shows the bad value and an accepted example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec is the empty string.
    #[error("vec spec: empty; expected vecN:transport=NAME,key=value,..., e.g. vec0:transport=tap")]
    Empty,

    /// The spec does not start with `vec`.
    #[error(
        "{}: a vector device spec starts with \"vec\" and a device number, \
         e.g. vec0:transport=tap",
        Quoted(input)
    )]
    MissingVecPrefix { input: String },

    /// No `:` after the device number.
    #[error(
        "{}: expected ':' after the device number, e.g. vec0:transport=tap",
        Quoted(input)
    )]
    MissingColon { input: String },

    /// The device number is not a number in base 0 or does not fit 32 bits.
    #[error(
        "vec{}: bad device number {}; expected 0..=4294967295 in decimal, 0x hex or \
         0-prefixed octal, e.g. vec0:transport=tap",
        Shown(text),
        Quoted(text)
    )]
    BadUnit { text: String },

    /// More than [`super::MAX_PAIRS`] `key=value` pairs.
    #[error(
        "vec{unit}: more than {max} key=value pairs; a spec holds at most {max}, \
         e.g. vec{unit}:transport=tap,depth=64"
    )]
    TooManyPairs { unit: u32, max: usize },

    /// An item without `=` (or an empty item between commas).
    #[error("vec{unit}: {}", bare(token, example))]
    BareToken {
        unit: u32,
        token: String,
        example: &'static str,
    },

    /// A second `=` inside one pair.
    #[error(
        "vec{unit}: {}: value {} contains '='; values cannot contain '=' or ',' \
         (there is no quoting), e.g. {example}",
        Shown(key),
        Quoted(value)
    )]
    ExtraEquals {
        unit: u32,
        key: String,
        value: String,
        example: &'static str,
    },

    /// `=value` with nothing before the `=`.
    #[error(
        "vec{unit}: item {} has an empty key; expected key=value, e.g. depth=64",
        Quoted(item)
    )]
    EmptyKey { unit: u32, item: String },

    /// The same key (or a key and its alias) twice.
    #[error(
        "vec{unit}: {key} is given twice{}; give each key once (UML silently keeps the \
         first), e.g. {example}",
        if first == key { String::new() } else { format!(" (as {first} and {key})") }
    )]
    DuplicateKey {
        unit: u32,
        key: String,
        first: String,
        example: &'static str,
    },

    /// No `transport=` pair.
    #[error(
        "vec{unit}: transport is missing; expected one of {}, e.g. vec{unit}:transport=tap",
        TRANSPORTS.join(", ")
    )]
    MissingTransport { unit: u32 },

    /// `transport=` names no known transport (exactly).
    #[error(
        "vec{unit}: transport: unknown transport {}{}; expected exactly one of {} \
         (case-sensitive), e.g. transport=tap",
        Quoted(value),
        suggestion.map(|s| format!(" (did you mean {s}?)")).unwrap_or_default(),
        TRANSPORTS.join(", ")
    )]
    UnknownTransport {
        unit: u32,
        value: String,
        suggestion: Option<&'static str>,
    },

    /// A key the transport does not accept.
    #[error("vec{unit}: {}", unknown_key(*unit, key, transport, hint))]
    UnknownKey {
        unit: u32,
        transport: &'static str,
        key: String,
        hint: KeyHint,
    },

    /// A numeric value that is not written as a number.
    #[error(
        "vec{unit}: {key}: {} is not a number; expected {expected} (e.g. {example})",
        Quoted(value)
    )]
    BadNumber {
        unit: u32,
        key: String,
        value: String,
        expected: &'static str,
        example: &'static str,
    },

    /// A number outside the key's range.
    #[error(
        "vec{unit}: {key}: {} is out of range; expected {expected} (e.g. {example})",
        Quoted(value)
    )]
    OutOfRange {
        unit: u32,
        key: String,
        value: String,
        expected: &'static str,
        example: &'static str,
    },

    /// A flag that is not a non-negative decimal integer.
    #[error(
        "vec{unit}: {key}: {} is not a flag; expected 0 or 1 (any positive integer means \
         on), e.g. {example}",
        Quoted(value)
    )]
    BadFlag {
        unit: u32,
        key: String,
        value: String,
        example: &'static str,
    },

    /// Any other malformed value (empty, NUL, bad MAC, bad interface name, path too long).
    #[error(
        "vec{unit}: {key}: {} {problem}; expected {expected} (e.g. {example})",
        Quoted(value)
    )]
    BadValue {
        unit: u32,
        key: String,
        value: String,
        problem: &'static str,
        expected: &'static str,
        example: &'static str,
    },

    /// A mandatory key is absent.
    #[error("vec{unit}: transport={transport} needs {key} (e.g. {example})")]
    MissingKey {
        unit: u32,
        transport: &'static str,
        key: &'static str,
        example: &'static str,
    },

    /// A key given without the key it depends on.
    #[error("vec{unit}: {key} is given without {needs}: {why} (e.g. {example})")]
    Requires {
        unit: u32,
        key: String,
        needs: &'static str,
        why: &'static str,
        example: &'static str,
    },

    /// A cookie above 32 bits without `cookie64=1`.
    #[error(
        "vec{unit}: {key}: {value:#x} does not fit in 32 bits; set cookie64=1 for 64-bit \
         cookies (e.g. cookie64=1,{key}={value:#x})"
    )]
    CookieTooWide { unit: u32, key: String, value: u64 },

    /// An impairment key (`tx_*`/`rx_*`, see docs/impairments.md) that is unknown, has
    /// a bad value, or lacks the key it needs.
    #[error("vec{unit}: {source}")]
    Impair {
        unit: u32,
        source: crate::impair::ImpairError,
    },

    /// Two keys that exclude each other.
    #[error("vec{unit}: {key} and {other} cannot both be given: {why} (e.g. {example})")]
    Conflict {
        unit: u32,
        key: &'static str,
        other: &'static str,
        why: &'static str,
        example: &'static str,
    },
}

fn bare(token: &str, example: &str) -> String {
    if token.is_empty() {
        format!(
            "empty item (two commas in a row, or a trailing comma); every item is key=value, \
             e.g. {example}"
        )
    } else {
        format!(
            "{} has no '='; every item is key=value (UML silently drops bare words), e.g. \
             {example}",
            Quoted(token)
        )
    }
}

fn unknown_key(unit: u32, key: &str, transport: &'static str, hint: &KeyHint) -> String {
    let accepts = format!("transport={transport} accepts {}", KeyList(transport));
    match hint {
        KeyHint::OtherTransport(owners) => format!(
            "{} is a {} key, not valid for transport={transport}; {accepts} (e.g. \
             vec{unit}:transport={},...,{})",
            Shown(key),
            owners.join("/"),
            owners[0],
            super::keys::form_of(owners[0], key).example,
        ),
        KeyHint::DidYouMean(k) => format!(
            "unknown key {} for transport={transport}; did you mean {k}? (e.g. {}); {accepts}",
            Quoted(key),
            super::keys::form_of(transport, k).example,
        ),
        KeyHint::None => format!(
            "unknown key {} for transport={transport} (keys are case-sensitive); {accepts} \
             (e.g. {})",
            Quoted(key),
            super::keys::form_of(transport, keys_for(transport)[0]).example,
        ),
    }
}

impl SpecError {
    /// The key the error is about, as written in the spec (`transport` for transport
    /// errors), if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            SpecError::Empty
            | SpecError::MissingVecPrefix { .. }
            | SpecError::MissingColon { .. }
            | SpecError::BadUnit { .. }
            | SpecError::TooManyPairs { .. }
            | SpecError::EmptyKey { .. } => None,
            SpecError::BareToken { token, .. } => (!token.is_empty()).then_some(token.as_str()),
            SpecError::MissingTransport { .. } | SpecError::UnknownTransport { .. } => {
                Some("transport")
            }
            SpecError::ExtraEquals { key, .. }
            | SpecError::DuplicateKey { key, .. }
            | SpecError::UnknownKey { key, .. }
            | SpecError::BadNumber { key, .. }
            | SpecError::OutOfRange { key, .. }
            | SpecError::BadFlag { key, .. }
            | SpecError::BadValue { key, .. }
            | SpecError::Requires { key, .. }
            | SpecError::CookieTooWide { key, .. } => Some(key),
            SpecError::MissingKey { key, .. } | SpecError::Conflict { key, .. } => Some(key),
            SpecError::Impair { source, .. } => source.key(),
        }
    }

    /// The device number, once it has been parsed.
    pub fn unit(&self) -> Option<u32> {
        match self {
            SpecError::Empty
            | SpecError::MissingVecPrefix { .. }
            | SpecError::MissingColon { .. }
            | SpecError::BadUnit { .. } => None,
            SpecError::TooManyPairs { unit, .. }
            | SpecError::BareToken { unit, .. }
            | SpecError::ExtraEquals { unit, .. }
            | SpecError::EmptyKey { unit, .. }
            | SpecError::DuplicateKey { unit, .. }
            | SpecError::MissingTransport { unit }
            | SpecError::UnknownTransport { unit, .. }
            | SpecError::UnknownKey { unit, .. }
            | SpecError::BadNumber { unit, .. }
            | SpecError::OutOfRange { unit, .. }
            | SpecError::BadFlag { unit, .. }
            | SpecError::BadValue { unit, .. }
            | SpecError::MissingKey { unit, .. }
            | SpecError::Requires { unit, .. }
            | SpecError::CookieTooWide { unit, .. }
            | SpecError::Conflict { unit, .. }
            | SpecError::Impair { unit, .. } => Some(*unit),
        }
    }
}

/// Something legal but probably unintended in a spec. `Display` is one line starting with
/// the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecWarning {
    /// `mac=` is a universally administered (vendor) address.
    #[error(
        "vec{unit}: mac {mac} is not locally administered and may clash with real hardware; \
         consider mac={} (first octet | 0x02)",
        MacAddr(local_of(mac))
    )]
    MacNotLocal { unit: u32, mac: MacAddr },

    /// `bpfflash=1` lets the guest load BPF into the host kernel.
    #[error(
        "vec{unit}: bpfflash=1 lets the guest load BPF code into the host kernel; use it only \
         for trusted guests"
    )]
    BpfFlash { unit: u32 },

    /// An IP literal of the other family than `v6=` selects; opening will fail.
    #[error(
        "vec{unit}: {key}={value} is an {} address but v6={} selects {} sockets (the family \
         is never detected); set v6={}",
        if *v6 { "IPv4" } else { "IPv6" },
        u8::from(*v6),
        if *v6 { "IPv6" } else { "IPv4" },
        u8::from(!*v6)
    )]
    AddressFamily {
        unit: u32,
        key: &'static str,
        value: String,
        v6: bool,
    },
}

fn local_of(mac: &MacAddr) -> [u8; 6] {
    let mut o = mac.octets();
    o[0] |= 0x02;
    o
}
