//! Small interface and descriptor helpers.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// Index of interface `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}

/// Hardware (MAC) address of interface `name` (SIOCGIFHWADDR).
pub fn hwaddr(name: &str) -> io::Result<[u8; 6]> {
    let mut ifr = ifreq_for(name)?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM.cloexec(), None)?;
    // SAFETY: SIOCGIFHWADDR reads the name from and writes a sockaddr into `ifr`, which is
    // alive and exclusively borrowed for the call.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) })?;
    // SAFETY: on success the kernel filled the hwaddr member of the union.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// `ETHTOOL_GTSO`: read whether TCP segmentation offload is on.
const ETHTOOL_GTSO: u32 = 0x1e;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: `ifreq` is a plain C struct/union; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// Whether interface `name` has TCP segmentation offload on (`ethtool -k`:
/// tcp-segmentation-offload), asked through any socket `fd` of its namespace
/// (SIOCETHTOOL, ETHTOOL_GTSO).
pub fn tso_enabled(fd: BorrowedFd<'_>, name: &str) -> io::Result<bool> {
    let mut ifr = ifreq_for(name)?;
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GTSO,
        data: 0,
    };
    ifr.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
    // SAFETY: SIOCETHTOOL reads the name and the data pointer from `ifr`; the pointer
    // refers to `v`, a live `ethtool_value` the kernel reads the command from and writes
    // the result into. Both stay exclusively borrowed for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) })?;
    Ok(v.data != 0)
}

/// Put an inherited descriptor into non-blocking, close-on-exec mode.
pub fn set_nonblocking_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    Ok(())
}

/// Take an inherited descriptor number (`fd=N`): duplicate it into a close-on-exec,
/// non-blocking descriptor owned by vecbox. Fails with `EBADF` if `fd` is not open.
pub fn adopt_inherited(fd: i32) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_DUPFD_CLOEXEC on an arbitrary number is safe: the kernel validates it and
    // fails with EBADF when it is not an open descriptor; nothing is borrowed.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `new` was just created by fcntl and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(new) };
    set_nonblocking_cloexec(owned.as_fd())?;
    Ok(owned)
}

/// `true` if `fd` is a socket (fstat S_IFSOCK).
pub fn is_socket(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_index_and_zero_mac() {
        assert!(ifindex("lo").unwrap() > 0);
        assert_eq!(hwaddr("lo").unwrap(), [0; 6]);
        assert!(ifindex("vbnosuchif0").is_err());
        assert!(hwaddr("").is_err());
        // Loopback segments nothing itself but advertises TSO; a missing interface is
        // an error, not "off".
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(tso_enabled(s.as_fd(), "lo").unwrap());
        assert!(tso_enabled(s.as_fd(), "vbnosuchif0").is_err());
    }

    #[test]
    fn adopting_a_closed_descriptor_fails() {
        assert_eq!(
            adopt_inherited(-1).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert_eq!(
            adopt_inherited(1_000_000).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let fd = adopt_inherited(a.as_raw_fd()).unwrap();
        assert!(is_socket(fd.as_fd()).unwrap());
        assert_ne!(fd.as_raw_fd(), a.as_raw_fd());
    }
}
