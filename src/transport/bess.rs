//! `transport=bess`: Ethernet frames over an AF_UNIX SOCK_SEQPACKET connection, one
//! frame per message, no header (BESS's UnixSocketPort, UML's bess transport).
//!
//! Two ways to get a connection:
//! - `dst=PATH[,src=PATH]` connects to a listener at PATH, as UML does (binding `src`
//!   first if given). If nobody listens yet, vecbox waits and retries every tick
//!   instead of failing (UML fails the interface).
//! - `listen=PATH` (vecbox only) listens at PATH and accepts one peer at a time: a UML
//!   guest started with `vecN:transport=bess,dst=PATH` plugs straight into it, and two
//!   vecbox guests link with `listen=` on one side and `dst=` on the other.
//!
//! Socket files vecbox binds are removed when the port closes. A stale file at a path
//! vecbox wants to bind (a socket nobody listens on, e.g. left by a crashed process) is
//! replaced; a live listener or a non-socket file is an error.
//!
//! A vanished peer (end of stream, reset, `EPIPE`) is counted (`peer_losses`); frames
//! queued for it are dropped as `peer_gone`, and the port goes back to listening or to
//! reconnecting. The guest keeps running.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::framing::Framing;
use super::port::{Caps, Opened, RxMode, TxMode};
use super::{Kind, OpenError, Spec, max_tx_frame, rx_slot, sys_err};

/// Time between connection attempts while the peer is away.
pub const RETRY: Duration = Duration::from_millis(200);

/// How the port finds its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Connect { dst: PathBuf, src: Option<PathBuf> },
    Listen(PathBuf),
}

/// Connection state of a bess port.
pub struct Link {
    name: String,
    mode: Mode,
    up: bool,
    next_try: Instant,
    /// Paths vecbox bound and removes when done.
    bound: Vec<PathBuf>,
    /// The receive filter (`bpffile=`, or one loaded from the console), attached to
    /// every connection.
    filter: Option<crate::filter::Program>,
}

fn seqpacket() -> io::Result<Socket> {
    Socket::new(Domain::UNIX, Type::SEQPACKET.nonblocking().cloexec(), None)
}

/// Large buffers: on a connected seqpacket socket only the sender's buffer limits how
/// much can be in flight.
fn sized(s: Socket) -> OwnedFd {
    let fd = OwnedFd::from(s);
    let _ = crate::sys::packet::set_sndbuf(&fd, super::raw::SOCKET_BUFFER);
    let _ = crate::sys::packet::set_rcvbuf(&fd, super::raw::SOCKET_BUFFER);
    fd
}

/// Make `path` free to bind: nothing there, or a stale socket (removed). A socket
/// somebody listens on, or any other kind of file, is an error.
fn clear_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a socket; choose another path",
        ));
    }
    let probe = seqpacket()?;
    match probe.connect(&SockAddr::unix(path)?) {
        Ok(()) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is listening there",
        )),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is listening there (backlog full)",
        )),
        Err(_) => std::fs::remove_file(path),
    }
}

fn placeholder() -> io::Result<OwnedFd> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    // Never signalled: stands in for the connection while there is none, so the event
    // loop always has a descriptor to hold.
    EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map(OwnedFd::from)
        .map_err(io::Error::from)
}

impl Link {
    /// `true` while a peer is connected.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The receive filter every connection gets.
    pub fn filter(&self) -> Option<&crate::filter::Program> {
        self.filter.as_ref()
    }

    /// Replace the receive filter for the connections to come.
    pub fn set_filter(&mut self, prog: crate::filter::Program) {
        self.filter = Some(prog);
    }

    /// `true` when the port's descriptor is a listening socket waiting for a peer.
    pub fn is_listening(&self) -> bool {
        !self.up && matches!(self.mode, Mode::Listen(_))
    }

    fn listen(&mut self, path: &Path) -> io::Result<OwnedFd> {
        clear_stale(path)?;
        let s = seqpacket()?;
        s.bind(&SockAddr::unix(path)?)?;
        if !self.bound.iter().any(|p| p == path) {
            self.bound.push(path.to_path_buf());
        }
        s.listen(1)?;
        Ok(s.into())
    }

    fn connect(&mut self) -> io::Result<OwnedFd> {
        let Mode::Connect { dst, src } = self.mode.clone() else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        let s = seqpacket()?;
        if let Some(src) = &src {
            clear_stale(src)?;
            s.bind(&SockAddr::unix(src)?)?;
            if !self.bound.iter().any(|p| p == src) {
                self.bound.push(src.clone());
            }
        }
        let r = s.connect(&SockAddr::unix(&dst)?);
        if r.is_err()
            && let Some(src) = &src
        {
            // Free the source path for the next attempt.
            let _ = std::fs::remove_file(src);
        }
        r.map(|()| sized(s))
    }

    /// The listening socket `listener` is readable: accept the peer. Returns the
    /// connection, or `None` if there was nobody after all.
    pub fn accept(&mut self, listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
        match SockRef::from(&listener).accept() {
            Ok((s, _)) => {
                s.set_nonblocking(true)?;
                self.up = true;
                tracing::info!(port = %self.name, "bess peer connected");
                Ok(Some(sized(s)))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The peer went away: the descriptor to hold until the next one (a fresh listener,
    /// or a placeholder while reconnecting).
    pub fn down(&mut self) -> io::Result<OwnedFd> {
        self.up = false;
        self.next_try = Instant::now();
        tracing::warn!(port = %self.name, "bess peer gone; {}", match &self.mode {
            Mode::Listen(p) => format!("listening again on {}", p.display()),
            Mode::Connect { dst, .. } => format!("reconnecting to {}", dst.display()),
        });
        match self.mode.clone() {
            Mode::Listen(p) => self.listen(&p),
            Mode::Connect { .. } => placeholder(),
        }
    }

    /// Periodic work while down in connect mode: try to connect. Returns the new
    /// connection when it succeeded.
    pub fn retry(&mut self, now: Instant) -> Option<OwnedFd> {
        if self.up || matches!(self.mode, Mode::Listen(_)) || now < self.next_try {
            return None;
        }
        self.next_try = now + RETRY;
        match self.connect() {
            Ok(fd) => {
                self.up = true;
                tracing::info!(port = %self.name, "bess peer connected");
                Some(fd)
            }
            Err(e) => {
                tracing::debug!(port = %self.name, error = %e, "bess connect failed");
                None
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for p in &self.bound {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `true` if the connected socket's peer has hung up (a zero-length read is either an
/// empty message or the end of the connection; this tells them apart).
pub fn peer_hung_up(fd: BorrowedFd<'_>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    // POLLHUP is reported once the peer has closed its end (both directions shut down).
    let mut p = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(poll(&mut p, PollTimeout::ZERO), Ok(n) if n > 0)
        && p[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// `true` for send/receive errors that mean the peer is gone.
pub fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPIPE)
            | Some(libc::ECONNRESET)
            | Some(libc::ENOTCONN)
            | Some(libc::ECONNREFUSED)
    )
}

/// Open a bess port.
pub fn open(name: &str, spec: &Spec) -> Result<(Opened, Link), OpenError> {
    let Kind::Bess { dst, src, listen } = &spec.kind else {
        unreachable!("bess::open called with another transport");
    };
    let mode = match (dst, listen) {
        (_, Some(l)) => Mode::Listen(l.clone()),
        (Some(d), None) => Mode::Connect {
            dst: d.clone(),
            src: src.clone(),
        },
        (None, None) => unreachable!("the spec parser requires dst or listen"),
    };
    let filter = match &spec.common.bpffile {
        Some(path) => {
            tracing::warn!(port = name, bpffile = %path.display(),
                "bpffile is attached to each bess connection, not to the listener");
            Some(
                crate::filter::Program::load(path).map_err(|source| OpenError::Filter {
                    port: name.to_string(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let mut link = Link {
        name: name.to_string(),
        mode: mode.clone(),
        up: false,
        next_try: Instant::now(),
        bound: Vec::new(),
        filter,
    };
    let fd = match &mode {
        Mode::Listen(p) => {
            link.listen(p)
                .map_err(sys_err(name, "bess listen", p.display().to_string()))?
        }
        Mode::Connect { dst, .. } => match link.connect() {
            Ok(fd) => {
                link.up = true;
                fd
            }
            Err(e) if is_peer_gone(&e) || e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(port = name, path = %dst.display(), error = %e,
                    "bess peer not there yet; retrying every {} ms", RETRY.as_millis());
                placeholder().map_err(sys_err(name, "eventfd", "bess placeholder"))?
            }
            Err(e) => {
                return Err(sys_err(name, "bess connect", dst.display().to_string())(e));
            }
        },
    };
    let vector = spec.common.vector;
    let opened = Opened {
        rx_fd: fd,
        tx_fd: None,
        rx_mode: if vector { RxMode::Mmsg } else { RxMode::Single },
        tx_mode: if vector { TxMode::Mmsg } else { TxMode::Single },
        framing: Framing::Bare,
        caps: Caps {
            rx_slot: rx_slot(spec, 0, false),
            vnet: false,
            tx_gso: false,
            max_tx_frame: max_tx_frame(spec),
            depth: usize::from(spec.common.depth),
        },
        host_if: Some(match &mode {
            Mode::Listen(p) => format!("listen:{}", p.display()),
            Mode::Connect { dst, .. } => dst.display().to_string(),
        }),
        fallbacks: 0,
        dest: None,
        ring: None,
    };
    if link.up
        && let Some(prog) = &link.filter
    {
        crate::sys::packet::attach_filter(opened.rx_fd.as_fd(), prog.insns()).map_err(sys_err(
            name,
            "SO_ATTACH_FILTER",
            "the bess connection",
        ))?;
    }
    Ok((opened, link))
}
