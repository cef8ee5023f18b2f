//! `/dev/net/tun` tap devices with a virtio-net header (the tap and hybrid transports).

use std::ffi::CStr;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use super::cvt;

mod diagnose;
pub use diagnose::{Step as TunStep, TUN_PATH};

/// Opening a tap failed: which step, on which name, why, and — when the cause is the
/// device's permissions or a missing capability — which one it is and what to do.
#[derive(Debug)]
pub struct TunError {
    pub step: TunStep,
    /// The name asked for (`tap%d` when the kernel picks).
    pub ifname: String,
    pub source: io::Error,
    /// "; ..." explanation from [`diagnose::explain`], or empty.
    pub hint: String,
}

impl TunError {
    fn new(step: TunStep, ifname: Option<&str>, source: io::Error) -> TunError {
        let facts = diagnose::Facts::gather(ifname);
        let shown = ifname.unwrap_or("tap%d");
        TunError {
            step,
            ifname: shown.to_string(),
            hint: diagnose::explain(step, &source, shown, &facts),
            source,
        }
    }
}

impl std::fmt::Display for TunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            TunStep::Open => write!(
                f,
                "opening {TUN_PATH} for tap {}: {}{}",
                self.ifname, self.source, self.hint
            ),
            TunStep::SetIff => write!(
                f,
                "TUNSETIFF (tap {}): {}{}",
                self.ifname, self.source, self.hint
            ),
        }
    }
}

impl std::error::Error for TunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

pub const IFF_TAP: libc::c_short = 0x0002;
pub const IFF_NO_PI: libc::c_short = 0x1000;
pub const IFF_VNET_HDR: libc::c_short = 0x4000;

pub const TUN_F_CSUM: libc::c_uint = 0x01;
pub const TUN_F_TSO4: libc::c_uint = 0x02;
pub const TUN_F_TSO6: libc::c_uint = 0x04;
pub const TUN_F_TSO_ECN: libc::c_uint = 0x08;
pub const TUN_F_USO4: libc::c_uint = 0x20;
pub const TUN_F_USO6: libc::c_uint = 0x40;

// ioctl numbers from linux/if_tun.h: _IOW('T', n, int) / _IOR('T', n, unsigned int).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNGETFEATURES: libc::c_ulong = 0x8004_54cf;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;

/// An `ifreq` with the name field filled from `name` (validated: 1..=15 bytes, no NUL).
fn ifreq_named(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must be 1 to 15 bytes without NUL"),
        ));
    }
    // SAFETY: `ifreq` is a plain C struct/union of integers and byte arrays; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// Open `/dev/net/tun` non-blocking and close-on-exec and attach it to tap `name`
/// (created if it does not exist, which needs CAP_NET_ADMIN; a tap created this way
/// disappears when the descriptor is closed). `name = None` lets the kernel pick
/// `tap%d`. Returns the descriptor and the interface name the kernel used. A failure
/// says which step failed and, for permission errors, whether the device's mode or a
/// missing capability is the cause ([`TunError`]).
pub fn open_tap(name: Option<&str>, vnet_hdr: bool) -> Result<(OwnedFd, String), TunError> {
    let mut ifr = ifreq_named(name.unwrap_or("tap%d"))
        .map_err(|e| TunError::new(TunStep::SetIff, name, e))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_PATH)
        .map_err(|e| TunError::new(TunStep::Open, name, e))?;
    let fd = OwnedFd::from(file);
    let mut flags = IFF_TAP | IFF_NO_PI;
    if vnet_hdr {
        flags |= IFF_VNET_HDR;
    }
    ifr.ifr_ifru.ifru_flags = flags;
    // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `ifr` is, alive for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut ifr) })
        .map_err(|e| TunError::new(TunStep::SetIff, name, e))?;
    // SAFETY: the kernel NUL-terminates `ifr_name` (IFNAMSIZ bytes) on success.
    let actual = unsafe { CStr::from_ptr(ifr.ifr_name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Ok((fd, actual))
}

/// Features the tun driver supports (TUNGETFEATURES), as `IFF_*` bits.
pub fn features(fd: impl AsFd) -> io::Result<libc::c_uint> {
    let mut feat: libc::c_uint = 0;
    // SAFETY: TUNGETFEATURES writes one unsigned int into `feat`.
    cvt(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), TUNGETFEATURES, &mut feat) })?;
    Ok(feat)
}

/// Tell the kernel which offloads vecbox accepts on frames it reads (TUNSETOFFLOAD).
/// With 0, the kernel segments and checksums everything before handing it over.
pub fn set_offload(fd: impl AsFd, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value.
    cvt(unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            TUNSETOFFLOAD,
            libc::c_ulong::from(flags),
        )
    })
    .map(drop)
}

/// Set the size of the virtio-net header in front of each frame (TUNSETVNETHDRSZ).
pub fn set_vnet_hdr_size(fd: impl AsFd, size: libc::c_int) -> io::Result<()> {
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, alive for the call.
    cvt(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), TUNSETVNETHDRSZ, &size) }).map(drop)
}

/// The flags the tap was attached with (TUNGETIFF).
pub fn get_flags(fd: BorrowedFd<'_>) -> io::Result<libc::c_short> {
    // SAFETY: all-zero `ifreq` is valid (see `ifreq_named`).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF writes one `ifreq`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNGETIFF, &mut ifr) })?;
    // SAFETY: on success the kernel filled the flags member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_before_any_syscall() {
        assert!(ifreq_named("").is_err());
        assert!(ifreq_named("0123456789abcdef").is_err());
        assert!(ifreq_named("a\0b").is_err());
        let ifr = ifreq_named("0123456789abcde").unwrap();
        assert_eq!(ifr.ifr_name[14] as u8, b'e');
        assert_eq!(ifr.ifr_name[15], 0);
    }
}
