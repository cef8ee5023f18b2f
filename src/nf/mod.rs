//! Network functions: what a guest does with the frames its ports receive.
//!
//! A function sees one received batch at a time ([`Function::process`]) and decides, per
//! frame, to forward it to a port, flood it, or drop it with a reason, through an
//! [`Output`]. Functions never touch descriptors, so they are tested without privileges
//! against [`testing::Recorder`].

pub mod bridge;
pub mod xconnect;

use std::time::Instant;

use crate::buf::Frame;
use crate::metrics::{DropReason, MetricSink};

/// Where a function sends frames. Implemented by the guest over its ports, and by
/// [`testing::Recorder`] in tests.
pub trait Output {
    /// Number of ports.
    fn ports(&self) -> usize;
    /// The bytes of a frame.
    fn frame(&self, f: &Frame) -> &[u8];
    /// Send `f` out of `port`.
    fn forward(&mut self, port: usize, f: Frame);
    /// Send `f` out of every port except `from`.
    fn flood(&mut self, from: usize, f: Frame);
    /// Drop `f`, counted under `reason` on the port it arrived on.
    fn discard(&mut self, f: Frame, reason: DropReason);
}

/// A network function.
pub trait Function {
    /// Short name (`xconnect`, `bridge`, ...).
    fn name(&self) -> &'static str;
    /// Handle a batch of frames received on `port`.
    fn process(&mut self, port: usize, frames: &[Frame], out: &mut dyn Output);
    /// Called about four times a second (aging, timers).
    fn tick(&mut self, _now: Instant) {}
    /// Function state worth printing at exit (`key`, value).
    fn summary(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Export the function's own counters and gauges (rule hits, table sizes) with
    /// labels; called a few times a second from the guest loop, never per frame. See
    /// docs/metrics.md for naming.
    fn metrics(&self, _out: &mut dyn MetricSink) {}
    /// Console `proc FILE` files this function provides (`fdb`, `routes`, `neigh`,
    /// `rules`, `conntrack`, ...).
    fn proc_files(&self) -> &'static [&'static str] {
        &[]
    }
    /// Contents of console file `name` (one of [`Function::proc_files`]).
    fn proc_file(&self, _name: &str) -> Option<String> {
        None
    }
    /// The guest's interfaces changed at run time (console `config`/`remove`): the
    /// function now has `ports` ports, numbered by unit as at start. Port numbers of the
    /// survivors may have shifted, so per-port state must be dropped. `Err` refuses the
    /// change (the guest then undoes it).
    fn set_ports(&mut self, ports: usize) -> Result<(), NfError> {
        let _ = ports;
        Err(NfError::FixedPorts {
            function: self.name(),
        })
    }
}

/// Errors building a function from its name and options.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NfError {
    #[error("unknown function {0:?}; available: xconnect, bridge")]
    Unknown(String),
    #[error("{function} needs exactly {want} ports (vec0: and vec1:), got {got}")]
    PortCount {
        function: &'static str,
        want: usize,
        got: usize,
    },
    #[error("{function} needs at least {min} ports, got {got}")]
    TooFewPorts {
        function: &'static str,
        min: usize,
        got: usize,
    },
    #[error("{function} cannot change its interfaces while running")]
    FixedPorts { function: &'static str },
    #[error("{function}: unknown option {key:?}; accepted: {accepted}")]
    UnknownOption {
        function: &'static str,
        key: String,
        accepted: &'static str,
    },
    #[error("{function}: {key}={value:?} is not valid; expected {expected}")]
    BadOption {
        function: &'static str,
        key: String,
        value: String,
        expected: &'static str,
    },
}

/// Names of the functions [`build`] knows.
pub const FUNCTIONS: &[&str] = &["xconnect", "bridge"];

/// Build function `name` for `ports` ports with its `key=value` options.
pub fn build(
    name: &str,
    ports: usize,
    options: &[(String, String)],
) -> Result<Box<dyn Function>, NfError> {
    match name {
        "xconnect" => Ok(Box::new(xconnect::Xconnect::new(ports, options)?)),
        "bridge" => Ok(Box::new(bridge::Bridge::new(ports, options)?)),
        other => Err(NfError::Unknown(other.to_string())),
    }
}

pub mod testing {
    //! An in-memory [`Output`] for testing functions.
    use super::*;
    use crate::buf::Pool;
    use crate::wire::vnet;

    /// Records what a function did with each frame.
    pub struct Recorder {
        pub pool: Pool,
        pub ports: usize,
        /// (port, frame bytes) for every frame sent; a flood appears once per port.
        pub sent: Vec<(usize, Vec<u8>)>,
        pub dropped: Vec<(Vec<u8>, DropReason)>,
    }

    impl Recorder {
        /// A recorder for `ports` ports.
        pub fn new(ports: usize) -> Self {
            Recorder {
                pool: Pool::new(64, 2048),
                ports,
                sent: Vec::new(),
                dropped: Vec::new(),
            }
        }

        /// Put `bytes` in a buffer and return its frame.
        pub fn frame(&mut self, bytes: &[u8]) -> Frame {
            let id = self.pool.alloc().expect("recorder pool exhausted");
            self.pool.buf_mut(id)[..bytes.len()].copy_from_slice(bytes);
            Frame {
                buf: id,
                off: 0,
                len: bytes.len() as u32,
                vnet: vnet::Repr::default(),
            }
        }

        /// Run `f` on `frames` (raw bytes) arriving on `port`.
        pub fn feed(&mut self, f: &mut dyn Function, port: usize, frames: &[&[u8]]) {
            let batch: Vec<Frame> = frames.iter().map(|b| self.frame(b)).collect();
            f.process(port, &batch, self);
        }

        /// Clear what was recorded.
        pub fn clear(&mut self) {
            self.sent.clear();
            self.dropped.clear();
        }
    }

    impl Output for Recorder {
        fn ports(&self) -> usize {
            self.ports
        }
        fn frame(&self, f: &Frame) -> &[u8] {
            self.pool.frame(f)
        }
        fn forward(&mut self, port: usize, f: Frame) {
            self.sent.push((port, self.pool.frame(&f).to_vec()));
            self.pool.release(f.buf);
        }
        fn flood(&mut self, from: usize, f: Frame) {
            for p in (0..self.ports).filter(|&p| p != from) {
                self.sent.push((p, self.pool.frame(&f).to_vec()));
            }
            self.pool.release(f.buf);
        }
        fn discard(&mut self, f: Frame, reason: DropReason) {
            self.dropped.push((self.pool.frame(&f).to_vec(), reason));
            self.pool.release(f.buf);
        }
    }
}
