//! Which keys each transport accepts, the accepted form and an example of each, and the
//! "did you mean" helpers used by the error messages.

/// The transport names, in the order `--help` lists them. Matching is exact.
pub const TRANSPORTS: &[&str] = &["tap", "hybrid", "raw", "gre", "l2tpv3", "bess", "fd", "vde"];

/// Keys every transport accepts.
pub const COMMON_KEYS: &[&str] = &[
    "mac", "mtu", "depth", "headroom", "gro", "vec", "bpffile", "bpfflash",
];

const TAP_KEYS: &[&str] = &[
    "ifname", "ifup", "mac", "mtu", "depth", "headroom", "gro", "vec", "bpffile", "bpfflash",
];

const RAW_KEYS: &[&str] = &[
    "ifname", "ifup", "ring", "ring_kib", "mac", "mtu", "depth", "headroom", "gro", "vec",
    "bpffile", "bpfflash",
];

const GRE_KEYS: &[&str] = &[
    "fd",
    "src",
    "dst",
    "v6",
    "rx_key",
    "tx_key",
    "sequence",
    "pin_sequence",
    "mac",
    "mtu",
    "depth",
    "headroom",
    "gro",
    "vec",
    "bpffile",
    "bpfflash",
];

const L2TPV3_KEYS: &[&str] = &[
    "fd",
    "src",
    "dst",
    "v6",
    "udp",
    "srcport",
    "dstport",
    "rx_session",
    "tx_session",
    "cookie64",
    "rx_cookie",
    "tx_cookie",
    "counter",
    "pin_counter",
    "mac",
    "mtu",
    "depth",
    "headroom",
    "gro",
    "vec",
    "bpffile",
    "bpfflash",
];

const BESS_KEYS: &[&str] = &[
    "dst", "src", "listen", "mac", "mtu", "depth", "headroom", "gro", "vec", "bpffile", "bpfflash",
];

const FD_KEYS: &[&str] = &[
    "fd", "mac", "mtu", "depth", "headroom", "gro", "vec", "bpffile", "bpfflash",
];

const VDE_KEYS: &[&str] = &[
    "vnl", "descr", "port", "mode", "group", "mac", "mtu", "depth", "headroom", "gro", "vec",
    "bpffile", "bpfflash",
];

/// Alternative spellings: (transport, alias, canonical key). The HOWTO writes `src_port` and
/// `dst_port`; UML's code reads `srcport` and `dstport`. vecbox accepts both.
const ALIASES: &[(&str, &str, &str)] = &[
    ("l2tpv3", "src_port", "srcport"),
    ("l2tpv3", "dst_port", "dstport"),
];

/// The keys `transport` accepts besides `transport` itself: its own keys first, then
/// [`COMMON_KEYS`]. Aliases (`src_port`, `dst_port`) are not listed. Empty for an unknown
/// transport name.
pub fn keys_for(transport: &str) -> &'static [&'static str] {
    match transport {
        "tap" => TAP_KEYS,
        "hybrid" | "raw" => RAW_KEYS,
        "gre" => GRE_KEYS,
        "l2tpv3" => L2TPV3_KEYS,
        "bess" => BESS_KEYS,
        "fd" => FD_KEYS,
        "vde" => VDE_KEYS,
        _ => &[],
    }
}

/// The canonical name of `key` for `transport` (resolving aliases), if it accepts it.
pub(crate) fn canonical(transport: &str, key: &str) -> Option<&'static str> {
    if let Some(k) = keys_for(transport).iter().find(|k| **k == key) {
        return Some(k);
    }
    ALIASES
        .iter()
        .find(|(t, alias, _)| *t == transport && *alias == key)
        .map(|(_, _, k)| *k)
}

/// The transports that accept `key` (or an alias of it).
pub(crate) fn owners(key: &str) -> Vec<&'static str> {
    TRANSPORTS
        .iter()
        .copied()
        .filter(|t| canonical(t, key).is_some())
        .collect()
}

/// How a key's value must look, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Form {
    pub expected: &'static str,
    pub example: &'static str,
}

const fn form(expected: &'static str, example: &'static str) -> Form {
    Form { expected, example }
}

pub(crate) const FLAG: &str = "0 or 1";
pub(crate) const U32_FORM: &str = "an integer 0..=4294967295 (decimal, 0x hex or 0-prefixed \
     octal; -2147483648..=-1 is also taken as its two's-complement value)";
pub(crate) const COOKIE_FORM: &str = "an integer 0..=4294967295, or 0..=18446744073709551615 \
     with cookie64=1 (decimal, 0x hex or 0-prefixed octal)";
pub(crate) const PORT_FORM: &str =
    "a port number 1..=65535 (numbers only: service names are not looked up)";
pub(crate) const IFNAME_FORM: &str =
    "an interface name of 1..=15 bytes without '/', ':' or whitespace";
pub(crate) const UNIX_PATH_FORM: &str = "a unix socket path of at most 107 bytes";
pub(crate) const TRANSPORT_FORM: &str =
    "exactly one of tap, hybrid, raw, gre, l2tpv3, bess, fd, vde (case-sensitive)";

/// The accepted form of `key` under `transport`, with an example pair.
pub(crate) fn form_of(transport: &str, key: &str) -> Form {
    let bess = transport == "bess";
    match key {
        "transport" => form(TRANSPORT_FORM, "transport=tap"),
        "mac" => form(
            "six hex pairs separated by ':', not multicast, not all-zero",
            "mac=02:00:00:00:00:01",
        ),
        "mtu" => form("a decimal integer 576..=65534", "mtu=1500"),
        "depth" => form("a decimal integer 1..=4096", "depth=64"),
        "headroom" => form("a decimal integer 0..=256", "headroom=2"),
        "gro" => form(FLAG, "gro=1"),
        "vec" => form(FLAG, "vec=0"),
        "bpffile" => form("a host file path", "bpffile=/etc/vecbox/filter.bpf"),
        "bpfflash" => form(FLAG, "bpfflash=1"),
        "ring" => form(
            "0 (recvmmsg, as UML), 1 (frame ring, the default) or 2 (block ring)",
            "ring=0",
        ),
        "ring_kib" => form(
            "the receive ring's size in KiB, a decimal integer 256..=262144 (needs a ring)",
            "ring_kib=8192",
        ),
        "ifname" if transport == "raw" => form(IFNAME_FORM, "ifname=p-veth0"),
        "ifname" => form(IFNAME_FORM, "ifname=tap0"),
        "ifup" => form("a program path", "ifup=/usr/local/sbin/vec-ifup"),
        "src" if bess => form(UNIX_PATH_FORM, "src=/run/vecbox/vec0.sock"),
        "dst" if bess => form(
            UNIX_PATH_FORM,
            "dst=/run/bess/port0.sock (or listen=/run/vecbox/vec0.sock)",
        ),
        "listen" => form(UNIX_PATH_FORM, "listen=/run/vecbox/vec0.sock"),
        "src" => form("a host name or IP address", "src=192.0.2.1"),
        "dst" => form("a host name or IP address", "dst=192.0.2.2"),
        "v6" => form(FLAG, "v6=1"),
        "udp" => form(FLAG, "udp=1"),
        "srcport" | "src_port" => form(PORT_FORM, "srcport=1706"),
        "dstport" | "dst_port" => form(PORT_FORM, "dstport=1707"),
        "rx_key" => form(U32_FORM, "rx_key=1"),
        "tx_key" => form(U32_FORM, "tx_key=1"),
        "sequence" => form(FLAG, "sequence=1"),
        "pin_sequence" => form(FLAG, "pin_sequence=1"),
        "rx_session" => form(U32_FORM, "rx_session=0xffffffff"),
        "tx_session" => form(U32_FORM, "tx_session=0xffff"),
        "cookie64" => form(FLAG, "cookie64=1"),
        "rx_cookie" => form(COOKIE_FORM, "rx_cookie=0x1234"),
        "tx_cookie" => form(COOKIE_FORM, "tx_cookie=0x1234"),
        "counter" => form(FLAG, "counter=1"),
        "pin_counter" => form(FLAG, "pin_counter=1"),
        "fd" => form("a decimal descriptor number 0..=2147483647", "fd=3"),
        "vnl" => form("a VDE switch locator", "vnl=/tmp/vde.ctl"),
        "descr" => form("a description", "descr=UML"),
        "port" => form("a VDE switch port", "port=1"),
        "mode" => form("a VDE socket mode", "mode=0700"),
        "group" => form("a VDE socket group", "group=vde"),
        _ => form("key=value", "depth=64"),
    }
}

/// [`form_of`] before the transport is known: under the first transport that accepts `key`.
pub(crate) fn form_any(key: &str) -> Form {
    let transport = owners(key).first().copied().unwrap_or("tap");
    form_of(transport, key)
}

/// The candidate closest to `word`: equal ignoring case, or within a small edit distance.
pub(crate) fn closest(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    if word.len() > 40 {
        return None;
    }
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(word)) {
        return Some(c);
    }
    let trimmed = word.trim();
    candidates
        .iter()
        .map(|c| (edit_distance(trimmed, c), *c))
        .filter(|(d, c)| *d <= if c.len() <= 4 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A known transport that `value` was probably meant to be: same name in another case, a
/// name UML's prefix match would pick (`tapXYZ` → `tap`), or a near miss.
pub(crate) fn closest_transport(value: &str) -> Option<&'static str> {
    let lower = value.to_ascii_lowercase();
    TRANSPORTS
        .iter()
        .copied()
        .filter(|t| lower.starts_with(t))
        .max_by_key(|t| t.len())
        .or_else(|| closest(value, TRANSPORTS))
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
