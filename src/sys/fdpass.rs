//! Descriptors passed over AF_UNIX datagram sockets (SCM_RIGHTS): `vecbox capture`
//! hands a guest its capture ring (a memfd) and a liveness pipe with the console's
//! `capture start` request, so nothing new is created inside the guest's sandbox.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};

/// Most descriptors accepted with one datagram; more are closed by the kernel
/// (`MSG_CTRUNC`).
pub const MAX_FDS: usize = 4;

/// One datagram and what came with it.
#[derive(Debug)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The sender's bound address (`None`: an unbound socket, which cannot be answered).
    pub from: Option<SocketAddr>,
    /// Descriptors passed with it, owned (close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// The datagram was longer than the buffer.
    pub truncated: bool,
}

/// Room for the control message of [`MAX_FDS`] descriptors (`CMSG_SPACE`), 8-aligned.
const CONTROL_WORDS: usize = 8;

/// Receive one datagram from a non-blocking socket, taking ownership of any descriptors
/// passed with it (close-on-exec). `WouldBlock` when nothing is waiting.
pub fn recv_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: `sockaddr_un` and `msghdr` are plain C structs; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_un).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to a live local (`addr`, `iov` over `buf`,
    // `control`) whose size is the length given beside it; they outlive the call.
    let n = super::cvt_size(unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    })?;
    let mut fds = Vec::new();
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR only walk the control
    // buffer it describes (bounded by msg_controllen) and return null at its end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: `c` is a non-null header inside `control`, as returned above.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is pure arithmetic.
            let head = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = (h.cmsg_len as usize).saturating_sub(head) / std::mem::size_of::<RawFd>();
            // SAFETY: the data of an SCM_RIGHTS message follows its header inside the
            // control buffer and holds `count` descriptors.
            let data = unsafe { libc::CMSG_DATA(c) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: index within the `count` descriptors; unaligned read as the
                // data need not be aligned for `c_int` on every platform.
                let raw = unsafe { std::ptr::read_unaligned(data.add(i)) };
                // SAFETY: the kernel installed `raw` in this process for this message;
                // nothing else refers to it, so it is ours to own.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    Ok(Received {
        len: n.min(buf.len()),
        from: to_std(&addr, msg.msg_namelen as usize),
        fds,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    })
}

/// The sender's address as std has it: a path, an abstract name, or `None` for an
/// unbound sender (address length up to the family field).
fn to_std(a: &libc::sockaddr_un, len: usize) -> Option<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let off = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    if len <= off || i32::from(a.sun_family) != libc::AF_UNIX {
        return None;
    }
    let name: Vec<u8> = a.sun_path[..(len - off).min(a.sun_path.len())]
        .iter()
        .map(|c| *c as u8)
        .collect();
    if name[0] == 0 {
        return SocketAddr::from_abstract_name(&name[1..]).ok();
    }
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(&name[..end])).ok()
}

/// Send `data` with `fds` to the datagram socket at `to`.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    to: &Path,
) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let addr = UnixAddr::new(to).map_err(io::Error::from)?;
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let n = sendmsg(
        sock.as_raw_fd(),
        &[IoSlice::new(data)],
        if raw.is_empty() { &[] } else { &cmsgs },
        MsgFlags::empty(),
        Some(&addr),
    )
    .map_err(io::Error::from)?;
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "datagram sent only in part",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn descriptors_cross_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("vecbox-fdpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server_path = dir.join("srv");
        let _ = std::fs::remove_file(&server_path);
        let server = UnixDatagram::bind(&server_path).unwrap();
        server.set_nonblocking(true).unwrap();
        let client = UnixDatagram::bind(dir.join("cli")).unwrap();
        let mut file = tempfile_in(&dir);
        file.write_all(b"shared").unwrap();

        let mut buf = [0u8; 64];
        assert_eq!(
            recv_with_fds(server.as_fd(), &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        send_with_fds(client.as_fd(), b"hello", &[file.as_fd()], &server_path).unwrap();
        let got = recv_with_fds(server.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got.len], b"hello");
        assert_eq!(got.fds.len(), 1);
        assert!(!got.truncated);
        assert_eq!(
            got.from
                .as_ref()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf)),
            Some(dir.join("cli"))
        );
        let mut f = std::fs::File::from(got.fds.into_iter().next().unwrap());
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "shared");

        // An unbound sender (no address to answer), and an abstract one.
        UnixDatagram::unbound()
            .unwrap()
            .send_to(b"x", &server_path)
            .unwrap();
        let got = recv_with_fds(server.as_fd(), &mut buf).unwrap();
        assert!(got.from.is_none() && got.len == 1);
        let name = format!("vecbox-fdpass-{}", std::process::id());
        let abs = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&abs)
            .unwrap()
            .send_to(b"y", &server_path)
            .unwrap();
        let got = recv_with_fds(server.as_fd(), &mut buf).unwrap();
        assert_eq!(
            got.from
                .as_ref()
                .and_then(|a| a.as_abstract_name().map(<[u8]>::to_vec)),
            Some(name.into_bytes())
        );

        // Without descriptors, and longer than the buffer.
        send_with_fds(client.as_fd(), &[7u8; 100], &[], &server_path).unwrap();
        let got = recv_with_fds(server.as_fd(), &mut buf).unwrap();
        assert!(got.truncated && got.fds.is_empty() && got.len == 64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_in(dir: &Path) -> std::fs::File {
        std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("data"))
            .unwrap()
    }
}
