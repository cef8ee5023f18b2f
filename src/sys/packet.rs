//! AF_PACKET sockets bound to one interface (the raw and hybrid transports).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// `ETH_P_ALL`: receive every protocol.
pub const ETH_P_ALL: u16 = 0x0003;

// SOL_PACKET option numbers (linux/if_packet.h); libc lacks some of them.
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// Open an AF_PACKET `SOCK_RAW` socket bound to `ifindex`.
///
/// `protocol` is the host-order EtherType to receive (`ETH_P_ALL`), or 0 for a
/// transmit-only socket that never has frames queued to it.
pub fn open(ifindex: u32, protocol: u16) -> io::Result<OwnedFd> {
    let fd = unbound()?;
    bind(fd.as_fd(), ifindex, protocol)?;
    Ok(fd)
}

/// Open an AF_PACKET `SOCK_RAW` socket that receives nothing yet (protocol 0, unbound),
/// so that its options and filter are in place before the first frame is queued to
/// it: a socket opened with `ETH_P_ALL` receives from every interface of the
/// namespace, unfiltered, until it is bound. [`bind`] starts reception.
pub fn unbound() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments; the result is checked below.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Bind a packet socket to `ifindex`, receiving `protocol` (host order; 0: nothing).
pub fn bind(fd: BorrowedFd<'_>, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is a plain C struct; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::sa_family_t;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    // SAFETY: `sll` is a fully initialised sockaddr_ll that lives across the call and the
    // length passed is exactly its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `val` is a live c_int and the length passed is its size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Prefix every frame on this socket with a 10-byte `virtio_net_hdr` (PACKET_VNET_HDR).
pub fn set_vnet_hdr(fd: impl AsFd) -> io::Result<()> {
    set_int(fd.as_fd(), libc::SOL_PACKET, PACKET_VNET_HDR, 1)
}

/// Transmit straight to the driver, skipping the qdisc layer and the packet taps
/// (PACKET_QDISC_BYPASS). On such a socket vecbox's own transmissions are never
/// copied back to packet sockets on the same interface.
pub fn set_qdisc_bypass(fd: impl AsFd) -> io::Result<()> {
    set_int(fd.as_fd(), libc::SOL_PACKET, PACKET_QDISC_BYPASS, 1)
}

/// Do not queue frames that the host itself transmits on the interface
/// (PACKET_IGNORE_OUTGOING, Linux 4.20+).
pub fn set_ignore_outgoing(fd: impl AsFd) -> io::Result<()> {
    set_int(fd.as_fd(), libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
}

/// Raise the socket's receive buffer to `bytes`, beyond `rmem_max` when the process
/// has CAP_NET_ADMIN (SO_RCVBUFFORCE), else up to `rmem_max` (SO_RCVBUF).
pub fn set_rcvbuf(fd: impl AsFd, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
        .or_else(|_| set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, v))
}

/// Raise the socket's send buffer, as [`set_rcvbuf`] does for receive.
pub fn set_sndbuf(fd: impl AsFd, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, v)
        .or_else(|_| set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, v))
}

/// One classic BPF instruction, as `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Attach a classic BPF program as the socket's receive filter (SO_ATTACH_FILTER).
pub fn attach_filter(fd: impl AsFd, prog: &[SockFilter]) -> io::Result<()> {
    let insns: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len = u16::try_from(insns.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "filter longer than 65535 instructions",
        )
    })?;
    let fprog = libc::sock_fprog {
        len,
        filter: insns.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points to `insns`, which lives until after the call; the kernel
    // copies the program during setsockopt.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Remove the socket's receive filter (SO_DETACH_FILTER).
pub fn detach_filter(fd: impl AsFd) -> io::Result<()> {
    set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_DETACH_FILTER, 0)
}

/// One frame read from a packet socket by [`recv_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes placed in the buffer.
    pub len: usize,
    /// Length of the frame on the wire (larger than `len` when it was cut).
    pub orig_len: usize,
    /// The host transmitted it (`PACKET_OUTGOING`) rather than received it.
    pub outgoing: bool,
}

/// Read one frame from a non-blocking packet socket (`None` when none is waiting), with
/// its direction and untruncated length (`MSG_TRUNC`).
pub fn recv_frame(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<Received>> {
    use nix::sys::socket::{LinkAddr, MsgFlags, recvmsg};
    let cap = buf.len();
    let mut iov = [io::IoSliceMut::new(buf)];
    match recvmsg::<LinkAddr>(
        fd.as_raw_fd(),
        &mut iov,
        None,
        MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(m) => Ok(Some(Received {
            len: m.bytes.min(cap),
            orig_len: m.bytes,
            outgoing: m
                .address
                .is_some_and(|a| a.pkttype() == libc::PACKET_OUTGOING),
        })),
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ifindex_is_an_error_not_a_panic() {
        // Index u32::MAX cannot be a c_int: rejected before any syscall, or by bind when
        // unprivileged; either way an error.
        assert!(open(u32::MAX, ETH_P_ALL).is_err());
    }
}
