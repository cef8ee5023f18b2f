//! How `vecbox apply` talks to a running lab's supervisor: a Unix stream socket at
//! `/run/vecbox/LAB/control`, one JSON request per line, one JSON response per line.
//!
//! The supervisor owns the node processes (they are its children: it reaps them and
//! applies their restart policy) and the host ends of tap links (it holds their
//! descriptors, so a restarted node gets the same tap). Everything else an apply does
//! itself. Every request is idempotent: `start` of a node that runs restarts it with the
//! definition given, `stop` of a node that is gone succeeds, `tap` of a tap held is kept.
//! An apply killed in the middle of a request leaves the supervisor consistent (it
//! finishes the request and the connection closes); the next apply asks for `status`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LabError;
use super::plan::PNode;

/// The socket in a run directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("control")
}

/// A request to the supervisor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The supervised nodes and the taps held.
    Status,
    /// Run `node` (stopping the process it has, if any); `taps` pairs the descriptor
    /// numbers of its tap ends with their link ids.
    Start {
        node: Box<PNode>,
        taps: Vec<(i32, String)>,
    },
    /// Stop `node`'s process and forget the node.
    Stop { node: String },
    /// Take `node`'s definition for its next restarts (its process keeps running).
    Define {
        node: Box<PNode>,
        taps: Vec<(i32, String)>,
    },
    /// Create tap `name` in `netns` for link `link` and hold it.
    Tap {
        link: String,
        netns: String,
        name: String,
        mtu: u32,
    },
    /// Let go of link `link`'s tap.
    Untap { link: String },
    /// Bind the underlay socket of cross-host link `link` from its local end's `spec`
    /// and hold it (released by `Untap`).
    Sock { link: String, spec: String },
    /// Add port `spec` (transport=fd) to the running guest `umid`, passing link `link`'s
    /// tap descriptor with the console request.
    Attach {
        umid: String,
        spec: String,
        link: String,
    },
    /// Re-read `plan.json` (nodes and links shown by `status`, links sampled).
    Reload,
}

/// One supervised node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SlotInfo {
    pub name: String,
    /// The running process (pid, start time), if any.
    pub pid: Option<(i32, u64)>,
    /// `starting`, `running`, `restarting`, `stopped`, `failed`.
    pub state: String,
    pub restarts: u32,
    /// The definition it restarts with.
    pub def: PNode,
}

/// What the supervisor holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub slots: Vec<SlotInfo>,
    /// Link ids whose tap the supervisor holds.
    pub taps: Vec<String>,
}

impl Status {
    pub fn slot(&self, node: &str) -> Option<&SlotInfo> {
        self.slots.iter().find(|s| s.name == node)
    }
}

/// The answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Status(Status),
    /// A process was started: its pid and start time, and the length of its log before
    /// it started (readiness is looked for after that).
    Started {
        pid: i32,
        start: u64,
        since: usize,
    },
    Error {
        message: String,
    },
}

/// Whoever runs the lab's processes: the supervisor in this process (`up`), or the one
/// of a running lab through its socket (`apply`).
pub trait Procs {
    fn call(&mut self, req: Request) -> Result<Response, LabError>;
}

/// Send `req` and fail on an error answer.
pub fn call_ok(p: &mut dyn Procs, req: Request) -> Result<Response, LabError> {
    match p.call(req)? {
        Response::Error { message } => Err(LabError::Supervisor(message)),
        r => Ok(r),
    }
}

/// A connection to a running supervisor.
pub struct Client {
    stream: BufReader<UnixStream>,
}

impl Client {
    /// Connect to the supervisor of the lab whose run directory is `dir`.
    pub fn connect(dir: &Path) -> Result<Client, LabError> {
        let path = socket_path(dir);
        let s = UnixStream::connect(&path).map_err(|e| {
            LabError::object(
                format!("connecting to the lab's supervisor at {}", path.display()),
                e,
            )
        })?;
        // Starting a UML kernel or stopping a stubborn node takes a few seconds.
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        Ok(Client {
            stream: BufReader::new(s),
        })
    }
}

impl Procs for Client {
    fn call(&mut self, req: Request) -> Result<Response, LabError> {
        let io = |e| LabError::object("talking to the lab's supervisor", e);
        let mut line = serde_json::to_string(&req).map_err(|e| LabError::object("encoding", e))?;
        line.push('\n');
        self.stream
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(io)?;
        let mut answer = String::new();
        if self.stream.read_line(&mut answer).map_err(io)? == 0 {
            return Err(LabError::Supervisor(
                "the supervisor closed the connection (did it exit?)".into(),
            ));
        }
        serde_json::from_str(&answer)
            .map_err(|e| LabError::object("reading the supervisor's answer", e))
    }
}

/// The supervisor's end: a non-blocking listener and its connections, polled by the
/// supervision loop.
pub struct Server {
    listener: UnixListener,
    conns: Vec<(UnixStream, Vec<u8>)>,
}

impl Server {
    /// Listen at the run directory's socket (replacing a stale one).
    pub fn bind(dir: &Path) -> std::io::Result<Server> {
        let path = socket_path(dir);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            conns: Vec::new(),
        })
    }

    /// Descriptors to wait on.
    pub fn fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        let mut v = vec![self.listener.as_fd()];
        v.extend(self.conns.iter().map(|(s, _)| s.as_fd()));
        v
    }

    /// Accept connections and read what arrived; returns the complete requests with the
    /// index of their connection (a malformed line is answered with an error here).
    pub fn poll(&mut self) -> Vec<(usize, Request)> {
        use std::io::Read;
        while let Ok((s, _)) = self.listener.accept() {
            if s.set_nonblocking(true).is_ok() {
                self.conns.push((s, Vec::new()));
            }
        }
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for (i, (s, buf)) in self.conns.iter_mut().enumerate() {
            let mut chunk = [0u8; 4096];
            loop {
                match s.read(&mut chunk) {
                    Ok(0) => {
                        dead.push(i);
                        break;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => break,
                }
            }
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                match serde_json::from_slice::<Request>(&line) {
                    Ok(r) => out.push((i, r)),
                    Err(e) => {
                        let r = Response::Error {
                            message: format!("bad request: {e}"),
                        };
                        let _ = send(s, &r);
                    }
                }
            }
        }
        // Requests of a closed connection are still served (their answer is lost).
        for i in dead.into_iter().rev() {
            if !out.iter().any(|(c, _)| *c == i) {
                self.conns.remove(i);
                for (c, _) in &mut out {
                    if *c > i {
                        *c -= 1;
                    }
                }
            }
        }
        out
    }

    /// Answer a request of connection `conn`.
    pub fn reply(&mut self, conn: usize, r: &Response) {
        if let Some((s, _)) = self.conns.get_mut(conn)
            && send(s, r).is_err()
        {
            self.conns.remove(conn);
        }
    }
}

fn send(s: &mut UnixStream, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    line.push('\n');
    s.set_nonblocking(false)?;
    let res = s.write_all(line.as_bytes());
    s.set_nonblocking(true)?;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_cross_the_socket() {
        let dir = std::env::temp_dir().join(format!("vbctl{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Server::bind(&dir).unwrap();
        let t = std::thread::spawn({
            let dir = dir.clone();
            move || {
                let mut c = Client::connect(&dir).unwrap();
                let a = c.call(Request::Stop { node: "x".into() }).unwrap();
                let b = c.call(Request::Status).unwrap();
                (a, b)
            }
        });
        let mut served = 0;
        while served < 2 {
            for (conn, req) in server.poll() {
                let r = match req {
                    Request::Stop { node } => Response::Error { message: node },
                    _ => Response::Status(Status::default()),
                };
                server.reply(conn, &r);
                served += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (a, b) = t.join().unwrap();
        assert_eq!(
            a,
            Response::Error {
                message: "x".into()
            }
        );
        assert_eq!(b, Response::Status(Status::default()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
