//! Every `unsafe` block of vecbox lives under this module.
//!
//! Each submodule wraps one family of system calls behind a safe API:
//! [`mmsg`] the batched `recvmmsg`/`sendmmsg` rings, [`packet`] AF_PACKET sockets, [`ring`] their TPACKET_V3 receive rings,
//! [`tun`] `/dev/net/tun` ioctls, [`sock`] small socket options, [`sandbox`] capability
//! and privilege dropping, [`shm`] shared counter mappings (and the capture ring's bytes),
//! [`fdpass`] descriptors passed over AF_UNIX sockets. Callers above `sys/` never see a raw pointer.
//!
//! Rules: every descriptor is an [`std::os::fd::OwnedFd`] from the moment it is created,
//! every descriptor is opened with `O_CLOEXEC | O_NONBLOCK`, inputs are validated in safe code
//! before a call, and every `unsafe` block carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

pub mod ethtool;
pub mod fdpass;
pub mod mmsg;
pub mod packet;
pub mod process;
pub mod ring;
pub mod sandbox;
pub mod seccomp;
pub mod shm;
pub mod sock;
pub mod tun;

use std::io;

/// Run `f` again while it fails with `EINTR`.
pub fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Turn a `-1` return from a libc call into the thread's `errno`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turn a negative `ssize_t` return into the thread's `errno`.
fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `true` for the errors that mean "try again later" on a non-blocking descriptor
/// (`EAGAIN`/`EWOULDBLOCK`, and `ENOBUFS`, which UML treats the same way on transmit).
pub fn is_would_block(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOBUFS))
        || e.kind() == io::ErrorKind::WouldBlock
}
