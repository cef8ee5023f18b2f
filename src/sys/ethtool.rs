//! Per-interface offload switches through the `SIOCETHTOOL` ioctl: the legacy
//! get/set commands for TCP segmentation, generic segmentation and receive offload, and
//! transmit and receive checksumming (what `ethtool -K IF tso|gso|gro|tx|rx on|off`
//! changes). The kernel derives the dependent feature bits itself (no segmentation
//! offload without checksumming).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::cvt;

const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// One offload switch, by its `ethtool -K` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Offload {
    /// Receive checksumming (`rx`).
    Rx,
    /// Transmit checksumming (`tx`).
    Tx,
    /// TCP segmentation offload (`tso`).
    Tso,
    /// Generic segmentation offload (`gso`).
    Gso,
    /// Generic receive offload (`gro`).
    Gro,
}

impl Offload {
    /// Every switch, checksumming first (segmentation offloads depend on it).
    pub const ALL: [Offload; 5] = [
        Offload::Rx,
        Offload::Tx,
        Offload::Tso,
        Offload::Gso,
        Offload::Gro,
    ];

    /// The `ethtool -K` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Offload::Rx => "rx",
            Offload::Tx => "tx",
            Offload::Tso => "tso",
            Offload::Gso => "gso",
            Offload::Gro => "gro",
        }
    }

    /// The switch named `s`.
    pub fn parse(s: &str) -> Option<Offload> {
        Offload::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// (get, set) command numbers (linux/ethtool.h).
    fn commands(self) -> (u32, u32) {
        match self {
            Offload::Rx => (0x14, 0x15),  // ETHTOOL_GRXCSUM, ETHTOOL_SRXCSUM
            Offload::Tx => (0x16, 0x17),  // ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM
            Offload::Tso => (0x1e, 0x1f), // ETHTOOL_GTSO, ETHTOOL_STSO
            Offload::Gso => (0x23, 0x24), // ETHTOOL_GGSO, ETHTOOL_SGSO
            Offload::Gro => (0x2b, 0x2c), // ETHTOOL_GGRO, ETHTOOL_SGRO
        }
    }
}

/// `struct ifreq` with the `ifr_data` member of its union (padded to the union's size).
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// A socket for interface ioctls in the calling thread's network namespace.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked before it is
    // wrapped, and the descriptor is owned by the OwnedFd from then on.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `SIOCETHTOOL` on `ifname` with the request in `buf` (which starts with the command
/// word and is as long as the command's structure); the kernel may write into `buf`.
fn ethtool_raw(ifname: &str, buf: &mut [u8]) -> io::Result<()> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ifname:?} is not an interface name (1 to 15 bytes)"),
        ));
    }
    let sock = ioctl_socket()?;
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: buf.as_mut_ptr().cast(),
        _pad: [0; 16],
    };
    for (d, s) in req.name.iter_mut().zip(ifname.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: `req` is a valid, NUL-terminated ifreq (name checked shorter than
    // IFNAMSIZ above) whose data pointer points at `buf`, which the callers size for
    // the command's structure (the kernel reads and writes at most that much, and
    // copies byte-wise, so no alignment is needed); both outlive the call.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) })?;
    Ok(())
}

fn ethtool(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&cmd.to_ne_bytes());
    buf[4..].copy_from_slice(&data.to_ne_bytes());
    ethtool_raw(ifname, &mut buf)?;
    Ok(u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]))
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The names of `ifname`'s feature bits (string set `ETH_SS_FEATURES`), in bit order.
fn feature_names(ifname: &str) -> io::Result<Vec<String>> {
    const GSSET_INFO: u32 = 0x37;
    const GSTRINGS: u32 = 0x1b;
    const SS_FEATURES: u32 = 4;
    // struct ethtool_sset_info: cmd, reserved, u64 sset_mask, u32 data[1].
    let mut info = [0u8; 20];
    info[..4].copy_from_slice(&GSSET_INFO.to_ne_bytes());
    info[8..16].copy_from_slice(&(1u64 << SS_FEATURES).to_ne_bytes());
    ethtool_raw(ifname, &mut info)?;
    let n = word(&info, 16) as usize;
    if n > 1024 {
        return Err(io::Error::other(format!("{n} feature names")));
    }
    // struct ethtool_gstrings: cmd, string_set, len, then len names of 32 bytes.
    let mut g = vec![0u8; 12 + n * 32];
    g[..4].copy_from_slice(&GSTRINGS.to_ne_bytes());
    g[4..8].copy_from_slice(&SS_FEATURES.to_ne_bytes());
    g[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
    ethtool_raw(ifname, &mut g)?;
    Ok(g[12..]
        .chunks(32)
        .map(|c| {
            let end = c.iter().position(|&b| b == 0).unwrap_or(32);
            String::from_utf8_lossy(&c[..end]).into_owned()
        })
        .collect())
}

/// Request every feature of `ifname` whose name `pick` accepts on or off
/// (`ETHTOOL_SFEATURES`); how many there were.
fn set_features(ifname: &str, pick: impl Fn(&str) -> bool, on: bool) -> io::Result<usize> {
    const SFEATURES: u32 = 0x3b;
    let names = feature_names(ifname)?;
    let blocks = names.len().div_ceil(32);
    // struct ethtool_sfeatures: cmd, size, then {valid, requested} per 32 features.
    let mut b = vec![0u8; 8 + blocks * 8];
    b[..4].copy_from_slice(&SFEATURES.to_ne_bytes());
    b[4..8].copy_from_slice(&(blocks as u32).to_ne_bytes());
    let mut hit = 0;
    for (i, _) in names.iter().enumerate().filter(|(_, n)| pick(n)) {
        let (at, bit) = (8 + (i / 32) * 8, 1u32 << (i % 32));
        let valid = word(&b, at) | bit;
        b[at..at + 4].copy_from_slice(&valid.to_ne_bytes());
        if on {
            let req = word(&b, at + 4) | bit;
            b[at + 4..at + 8].copy_from_slice(&req.to_ne_bytes());
        }
        hit += 1;
    }
    if hit > 0 {
        ethtool_raw(ifname, &mut b)?;
    }
    Ok(hit)
}

/// Whether offload `o` of interface `ifname` (in the calling thread's namespace) is on.
pub fn get(ifname: &str, o: Offload) -> io::Result<bool> {
    ethtool(ifname, o.commands().0, 0).map(|v| v != 0)
}

/// Turn offload `o` of interface `ifname` on or off. `tso` covers every TCP
/// segmentation feature the kernel has (as `ethtool -K IF tso`), also those the legacy
/// command does not know (e.g. `tx-tcp-accecn-segmentation`).
pub fn set(ifname: &str, o: Offload, on: bool) -> io::Result<()> {
    ethtool(ifname, o.commands().1, u32::from(on))?;
    if o == Offload::Tso {
        set_features(
            ifname,
            |n| n.starts_with("tx-tcp") && n.ends_with("segmentation"),
            on,
        )?;
    }
    Ok(())
}
