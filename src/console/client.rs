//! The client side: find a guest's (or a UML kernel's) control socket, send one request
//! at a time and read its reply packets until `more == 0`.
//!
//! Like `uml_mconsole`, the client binds an abstract-namespace address so the server
//! can answer. Abstract addresses belong to a network namespace, though: when the
//! server's process lives in another namespace (a lab node), its answer to an abstract
//! address would be lost, so the client binds a filesystem socket in a private
//! temporary directory instead.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::proto::{self, ReplyError};
use super::rundir;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Errors of the console client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no control socket for {0:?}: looked for ~/.uml/{0}/mconsole, /tmp/uml/{0}/mconsole and the path itself"
    )]
    NotFound(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("no reply from {0} within {1:?} (is the guest stopped in a debugger, or gone?)")]
    Timeout(PathBuf, Duration),
    #[error("bad reply from {path}: {err}")]
    BadReply { path: PathBuf, err: ReplyError },
}

/// Find the socket for `name` as `uml_mconsole` does: `~/.uml/NAME/mconsole`,
/// `/tmp/uml/NAME/mconsole`, then `NAME` as a path.
pub fn resolve(name: &str) -> Option<PathBuf> {
    let mut c = Vec::new();
    if let Ok(d) = rundir::uml_dir() {
        c.push(d.join(name).join("mconsole"));
    }
    c.push(Path::new("/tmp/uml").join(name).join("mconsole"));
    c.push(PathBuf::from(name));
    c.into_iter().find(|p| {
        std::fs::symlink_metadata(p)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false)
    })
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `err` of the first packet (0 = success).
    pub err: u32,
    pub text: String,
}

impl Response {
    /// As `uml_mconsole` prints it: `OK text` or `ERR text`.
    pub fn line(&self) -> String {
        format!("{} {}", if self.err == 0 { "OK" } else { "ERR" }, self.text)
    }
}

/// A connection to one control socket.
pub struct Client {
    sock: UnixDatagram,
    pub target: PathBuf,
    tmp: Option<PathBuf>,
    pub timeout: Duration,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClientError {
    let what = what.into();
    move |source| ClientError::Io { what, source }
}

fn same_netns(pid: i32) -> bool {
    match (
        std::fs::read_link(format!("/proc/{pid}/ns/net")),
        std::fs::read_link("/proc/self/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a == b,
        // Cannot tell (another user's process): assume the same namespace.
        _ => true,
    }
}

impl Client {
    /// Resolve `name` and bind a client socket that the server can answer.
    pub fn connect(name: &str) -> Result<Client, ClientError> {
        let target = resolve(name).ok_or_else(|| ClientError::NotFound(name.to_string()))?;
        let pid = target.parent().and_then(rundir::read_pid);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let me = std::process::id();
        let (sock, tmp) = if pid.is_none_or(same_netns) {
            let addr = SocketAddr::from_abstract_name(format!("vecbox-console-{me}-{n}"))
                .map_err(io_err("abstract socket name"))?;
            let s = UnixDatagram::bind_addr(&addr).map_err(io_err("binding the client socket"))?;
            (s, None)
        } else {
            let dir = std::env::temp_dir().join(format!("vecbox-console-{me}-{n}"));
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(io_err(format!("creating {}", dir.display())))?;
            let path = dir.join("sock");
            let s =
                UnixDatagram::bind(&path).map_err(io_err(format!("binding {}", path.display())))?;
            (s, Some(dir))
        };
        Ok(Client {
            sock,
            target,
            tmp,
            timeout: Duration::from_secs(10),
        })
    }

    /// Send `text` (trailing whitespace trimmed, cut to 511 bytes) and collect the reply.
    pub fn request(&mut self, text: &str) -> Result<Response, ClientError> {
        self.request_with_fds(text, &[])
    }

    /// As [`Client::request`], passing descriptors with the request (SCM_RIGHTS): how
    /// `vecbox capture` hands a guest its capture ring.
    pub fn request_with_fds(
        &mut self,
        text: &str,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<Response, ClientError> {
        use std::os::fd::AsFd;
        let req = proto::encode_request(text.trim_end());
        crate::sys::fdpass::send_with_fds(self.sock.as_fd(), &req, fds, &self.target)
            .map_err(io_err(format!("sending to {}", self.target.display())))?;
        self.reply()
    }

    /// As [`Client::request`], handing descriptor `fd` over with the request
    /// (SCM_RIGHTS): a vecbox guest takes it as the descriptor of a
    /// `config vecN:transport=fd,...` port (UML ignores it).
    pub fn request_with_fd(
        &mut self,
        text: &str,
        fd: impl std::os::fd::AsFd,
    ) -> Result<Response, ClientError> {
        self.request_with_fds(text, &[fd.as_fd()])
    }

    /// Collect the reply packets of the request just sent.
    fn reply(&mut self) -> Result<Response, ClientError> {
        self.sock
            .set_read_timeout(Some(self.timeout))
            .map_err(io_err("setting a timeout"))?;
        let mut buf = [0u8; 2048];
        let mut out = Vec::new();
        let mut err = None;
        loop {
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::Timeout(self.target.clone(), self.timeout));
                }
                Err(e) => return Err(io_err("receiving")(e)),
            };
            let r = match proto::decode_reply(&buf[..n]) {
                Ok(r) => r,
                Err(ReplyError::Raw(t)) => {
                    return Ok(Response {
                        err: 1,
                        text: t.trim_start_matches("ERR ").to_string(),
                    });
                }
                Err(e) => {
                    return Err(ClientError::BadReply {
                        path: self.target.clone(),
                        err: e,
                    });
                }
            };
            err.get_or_insert(r.err);
            out.extend_from_slice(&r.text);
            if !r.more {
                break;
            }
        }
        Ok(Response {
            err: err.unwrap_or(0),
            text: String::from_utf8_lossy(&out).into_owned(),
        })
    }
}

use std::os::unix::fs::DirBuilderExt;

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(d) = &self.tmp {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
