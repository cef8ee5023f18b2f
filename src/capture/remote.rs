//! The capturing side of a capture inside a guest.
//!
//! vecbox makes the ring (a memfd) and a pipe, writes the configuration into the ring,
//! and sends the guest's control socket `capture start` with the ring and the pipe's
//! read end attached. Reaching the socket at all needs access to the guest's run
//! directory (`~/.uml/UMID`, mode 0700): only its owner or root can capture, and there
//! is no network listener. The guest watches the pipe: when the capturing process ends
//! in any way, the pipe's write end closes and the guest stops copying within a tick.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::Config;
use super::ring::{self, Consumer, Counters, Meta, Record, RingError, State, counter_index};
use crate::console::{Client, ClientError};

/// Errors starting or running a guest capture.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Ring(#[from] RingError),
    #[error("creating the liveness pipe: {0}")]
    Pipe(std::io::Error),
    #[error("{guest} refused the capture: {reason}")]
    Refused { guest: String, reason: String },
}

/// A running capture in one guest.
pub struct GuestCapture {
    /// The guest's control socket.
    pub socket: PathBuf,
    /// Session number the guest gave it.
    pub id: u32,
    /// The guest's pid.
    pub pid: u32,
    consumer: Consumer,
    client: Client,
    /// Write end of the liveness pipe: closed when this process ends.
    _alive: OwnedFd,
    _ring: File,
    stopped: bool,
}

impl GuestCapture {
    /// Start a capture of `config` in the guest whose control socket is `socket`, with
    /// a ring of `ring_bytes`.
    pub fn start(
        socket: &Path,
        config: &Config,
        ring_bytes: usize,
    ) -> Result<GuestCapture, RemoteError> {
        let (file, map) = ring::create(ring_bytes)?;
        let consumer = Consumer::new(map)?;
        consumer.write_config(&config.encode());
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| RemoteError::Pipe(e.into()))?;
        let mut client = Client::connect(&socket.display().to_string())?;
        client.timeout = Duration::from_secs(5);
        let reply = client.request_with_fds("capture start", &[file.as_fd(), r.as_fd()])?;
        drop(r);
        if reply.err != 0 {
            let reason = if reply.text.contains("nknown command") || reply.text.is_empty() {
                format!(
                    "{} (not a vecbox guest, or a vecbox without capture)",
                    reply.text.trim()
                )
            } else {
                reply.text.trim().to_string()
            };
            return Err(RemoteError::Refused {
                guest: socket.display().to_string(),
                reason,
            });
        }
        let (pid, id) = consumer.owner();
        Ok(GuestCapture {
            socket: socket.to_path_buf(),
            id,
            pid,
            consumer,
            client,
            _alive: w,
            _ring: file,
            stopped: false,
        })
    }

    /// The next record the guest published; see [`Consumer::read`].
    pub fn read(&mut self) -> Result<Option<(Meta, &[u8])>, RingError> {
        self.consumer.read()
    }

    /// The next record's description; see [`Consumer::next_record`].
    pub fn next_record(&mut self) -> Result<Option<Record>, RingError> {
        self.consumer.next_record()
    }

    /// Copy a record's frame out; see [`Consumer::frame_into`].
    pub fn frame_into(&self, r: &Record, dst: &mut [u8]) {
        self.consumer.frame_into(r, dst);
    }

    /// Give the space of what was read back to the guest.
    pub fn commit(&self) {
        self.consumer.commit();
    }

    /// The guest's counters of configuration slot `slot`, pre or post side.
    pub fn counters(&self, slot: usize, post: bool) -> Counters {
        self.consumer.counters(counter_index(slot, post))
    }

    pub fn state(&self) -> State {
        self.consumer.state()
    }

    /// Bytes the guest wrote that were not read yet.
    pub fn pending(&self) -> u64 {
        self.consumer.pending()
    }

    /// Ask the guest to stop, then wait (up to `wait`) until it has: its final counters
    /// are then in the header and every record it wrote is in the ring.
    pub fn stop(&mut self, wait: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if matches!(self.state(), State::Closed(_)) {
            return;
        }
        self.client.timeout = wait.max(Duration::from_millis(100));
        let _ = self.client.request(&format!("capture stop {}", self.id));
        let deadline = Instant::now() + wait;
        while !matches!(self.state(), State::Closed(_)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for GuestCapture {
    fn drop(&mut self) {
        self.stop(Duration::from_millis(200));
    }
}
