//! The guest's end of the control socket: a non-blocking `SOCK_DGRAM` socket at
//! `~/.uml/UMID/mconsole`, polled by the guest's event loop. Protocol errors (bad magic,
//! too large, truncated) are answered here; well-formed requests are handed to the
//! guest as [`Incoming`], and it answers with [`Server::reply`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

use super::proto::{self, RequestError};

/// Datagrams read per [`Server::receive`] call at most, so a flood of requests cannot
/// hold up the data path.
pub const BATCH: usize = 16;

/// A request to execute.
#[derive(Debug)]
pub struct Incoming {
    pub from: SocketAddr,
    /// Command text (invalid UTF-8 replaced).
    pub text: String,
    /// Descriptors passed with the request (SCM_RIGHTS; `capture start` takes its ring
    /// this way). Closed when dropped.
    pub fds: Vec<std::os::fd::OwnedFd>,
}

/// The listening control socket.
pub struct Server {
    sock: UnixDatagram,
    /// The address of an unbound sender (replies to it go nowhere, as before).
    unnamed: SocketAddr,
    buf: Box<[u8; 2048]>,
    out: Box<[u8; proto::REPLY_MAX]>,
    /// Requests received (well-formed or not).
    pub requests: u64,
    /// Requests answered with an error.
    pub errors: u64,
}

impl Server {
    /// Bind the socket at `path` (which must not exist).
    pub fn bind(path: &Path) -> io::Result<Server> {
        let sock = UnixDatagram::bind(path)?;
        sock.set_nonblocking(true)?;
        let unnamed = UnixDatagram::unbound()?.local_addr()?;
        Ok(Server {
            sock,
            unnamed,
            buf: Box::new([0; 2048]),
            out: Box::new([0; proto::REPLY_MAX]),
            requests: 0,
            errors: 0,
        })
    }

    /// Descriptor to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// The next well-formed request, answering malformed ones on the way; `None` when
    /// no request is waiting (or [`BATCH`] datagrams were read).
    pub fn receive(&mut self) -> Option<Incoming> {
        for _ in 0..BATCH {
            let (n, from, fds) =
                match crate::sys::fdpass::recv_with_fds(self.sock.as_fd(), &mut self.buf[..]) {
                    Ok(r) => (r.len, r.from.unwrap_or_else(|| self.unnamed.clone()), r.fds),
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            tracing::debug!(error = %e, "console receive failed");
                        }
                        return None;
                    }
                };
            self.requests += 1;
            let req = match proto::decode_request(&self.buf[..n]) {
                Ok(r) => r,
                Err(e) => {
                    self.errors += 1;
                    tracing::debug!(error = %e, "malformed console request");
                    if e == RequestError::BadMagic {
                        let _ = self.sock.send_to_addr(e.reply_text().as_bytes(), &from);
                    } else {
                        self.send(&from, 1, e.reply_text().as_bytes(), false);
                    }
                    continue;
                }
            };
            let text = String::from_utf8_lossy(req.text).into_owned();
            if req.version != proto::VERSION {
                // UML answers and then serves the request anyway.
                self.errors += 1;
                self.send(&from, 1, proto::BAD_VERSION.as_bytes(), false);
            }
            return Some(Incoming { from, text, fds });
        }
        None
    }

    /// Send a whole reply (`more=0` on its last packet).
    pub fn reply(&mut self, to: &SocketAddr, err: u32, text: &str) {
        if err != 0 {
            self.errors += 1;
        }
        self.send(to, err, text.as_bytes(), false);
    }

    /// Send part of a streamed reply (`more=1` on its last packet too).
    pub fn reply_part(&mut self, to: &SocketAddr, err: u32, text: &str) {
        self.send(to, err, text.as_bytes(), true);
    }

    fn send(&mut self, to: &SocketAddr, err: u32, text: &[u8], more: bool) {
        let sock = &self.sock;
        proto::encode_reply(err, text, more, &mut self.out, |pkt| {
            if let Err(e) = sock.send_to_addr(pkt, to) {
                tracing::debug!(error = %e, "console reply not delivered");
            }
        });
    }
}
