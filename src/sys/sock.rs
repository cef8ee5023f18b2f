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
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM.cloexec(), None)?;
    // SAFETY: `ifreq` is a plain C struct/union; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
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

/// Receive one datagram on `sock` (without blocking) into `buf`, with the descriptors
/// it carries (SCM_RIGHTS, received close-on-exec): (length, sender, descriptors).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<nix::sys::socket::UnixAddr>, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 16]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(v) = c {
                for fd in v {
                    // SAFETY: the kernel installed `fd` in this process for this message;
                    // nothing else refers to it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
    }
    Ok((msg.bytes, msg.address, fds))
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
