//! Descriptors passed over AF_UNIX datagram sockets (SCM_RIGHTS): `vecbox capture`
//! hands a guest its capture ring (a memfd) and a liveness pipe with the console's
//! `capture start` request, so nothing new is created inside the guest's sandbox.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, sendmsg};

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

/// Receive one datagram from a non-blocking socket, taking ownership of any descriptors
/// passed with it (close-on-exec). `WouldBlock` when nothing is waiting.
pub fn recv_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let cap = buf.len();
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for r in raw {
                    // SAFETY: the kernel installed `r` in this process for this message
                    // (SCM_RIGHTS); nothing else refers to it, so it is ours to own.
                    fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                }
            }
        }
    }
    let from = msg.address.as_ref().and_then(to_std);
    Ok(Received {
        len: msg.bytes.min(cap),
        from,
        fds,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
    })
}

fn to_std(a: &UnixAddr) -> Option<SocketAddr> {
    if let Some(p) = a.path() {
        return SocketAddr::from_pathname(p).ok();
    }
    a.as_abstract()
        .and_then(|n| SocketAddr::from_abstract_name(n).ok())
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
