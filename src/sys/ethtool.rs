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

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union (padded to the union's size).
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
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

fn ethtool(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ifname:?} is not an interface name (1 to 15 bytes)"),
        ));
    }
    let sock = ioctl_socket()?;
    let mut value = EthtoolValue { cmd, data };
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    for (d, s) in req.name.iter_mut().zip(ifname.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: `req` is a valid, NUL-terminated ifreq (name checked shorter than
    // IFNAMSIZ above) whose data pointer points at `value`, a live ethtool_value the
    // kernel reads and, for a get command, writes; both outlive the call.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) })?;
    Ok(value.data)
}

/// Whether offload `o` of interface `ifname` (in the calling thread's namespace) is on.
pub fn get(ifname: &str, o: Offload) -> io::Result<bool> {
    ethtool(ifname, o.commands().0, 0).map(|v| v != 0)
}

/// Turn offload `o` of interface `ifname` on or off.
pub fn set(ifname: &str, o: Offload, on: bool) -> io::Result<()> {
    ethtool(ifname, o.commands().1, u32::from(on)).map(drop)
}
