//! Network functions: what a guest does with the frames its ports receive.
//!
//! A function sees one received batch at a time ([`Function::process`]) and decides, per
//! frame, to forward it to a port, flood it, or drop it with a reason, through an
//! [`Output`]. Functions never touch descriptors, so they are tested without privileges
//! against [`testing::Recorder`].

pub mod bridge;
pub mod firewall;
pub mod ip;
pub mod router;
pub mod xconnect;

use std::time::Instant;

use crate::buf::Frame;
use crate::metrics::{DropReason, MetricSink};
use crate::transport::Spec;

/// Where a function sends frames. Implemented by the guest over its ports, and by
/// [`testing::Recorder`] in tests.
pub trait Output {
    /// Number of ports.
    fn ports(&self) -> usize;
    /// The bytes of a frame.
    fn frame(&self, f: &Frame) -> &[u8];
    /// The bytes of a frame, writable (in-place rewrites: MACs, TTL, replies).
    fn frame_mut(&mut self, f: &Frame) -> &mut [u8];
    /// A new frame of `len` bytes (zeroed contents not guaranteed) that the function
    /// fills through [`Output::frame_mut`] and sends with [`Output::forward`] (ARP
    /// requests, ICMP errors). `None` when no buffer is free or `len` does not fit.
    fn alloc(&mut self, len: usize) -> Option<Frame>;
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
    /// Called right after [`Function::tick`], with the ports: for timers that send
    /// frames (retries) or release frames the function holds.
    fn timer(&mut self, _now: Instant, _out: &mut dyn Output) {}
    /// Buffers the function may hold between batches or originate (held frames,
    /// replies), added to the pool at start.
    fn buffers_needed(&self) -> usize {
        0
    }
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
    /// The guest's interfaces changed at run time (console `config`/`remove`, or a
    /// `reboot` that could not reopen every port): `ports` are the new interfaces in
    /// port order. Port numbers of the survivors may have shifted, so per-port state must
    /// be rebuilt; frames the function holds are released through `out` (the ports as
    /// they were before the change). `Err` refuses the change (the guest then undoes it).
    fn set_ports(&mut self, ports: &[Spec], out: &mut dyn Output) -> Result<(), NfError> {
        let _ = (ports, out);
        Err(NfError::FixedPorts {
            function: self.name(),
        })
    }
}

/// Port names (`vecN`) of `specs`, in port order.
pub fn port_names(specs: &[Spec]) -> Vec<String> {
    specs.iter().map(|s| format!("vec{}", s.unit)).collect()
}

/// Names a configuration may mention while the interfaces change: the new ports (in
/// port order, so indices stay right), then those just removed (indices past the last
/// port, which no frame carries). A file may so still name a port that was removed.
pub fn known_names(new: &[String], old: &[String]) -> Vec<String> {
    let mut all = new.to_vec();
    all.extend(old.iter().filter(|n| !new.contains(n)).cloned());
    all
}

/// Errors building a function from its name and options.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NfError {
    #[error("unknown function {0:?}; available: xconnect, bridge, router, firewall")]
    Unknown(String),
    #[error("{function}: {msg}")]
    Config { function: &'static str, msg: String },
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
pub const FUNCTIONS: &[&str] = &["xconnect", "bridge", "router", "firewall"];

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

/// Build function `name` for the ports described by `specs` (port i is `specs[i]`);
/// functions that need more than a port count (MACs, names) are built here.
pub fn build_for(
    name: &str,
    specs: &[Spec],
    options: &[(String, String)],
) -> Result<Box<dyn Function>, NfError> {
    match name {
        "router" => Ok(Box::new(router::Router::new(specs, options)?)),
        "bridge" => Ok(Box::new(bridge::Bridge::for_ports(specs, options)?)),
        "firewall" => Ok(Box::new(firewall::Firewall::new(specs, options)?)),
        _ => build(name, specs.len(), options),
    }
}

/// The MAC a function uses on a port: `mac=` from the spec, else a random locally
/// administered unicast address (as UML does).
pub fn port_mac(spec: &Spec) -> [u8; 6] {
    if let Some(m) = spec.common.mac {
        return m.0;
    }
    let mut mac = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut mac);
    }
    if mac == [0; 6] {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        mac.copy_from_slice(&(t as u64 ^ u64::from(std::process::id())).to_le_bytes()[..6]);
        mac[5] ^= spec.unit as u8;
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
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
                pool: Pool::new(256, 2048),
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

    /// Fd specs (`vecN:transport=fd,fd=N`) for `units`, with MAC 02:00:00:00:00:N.
    pub fn specs(units: &[u32]) -> Vec<Spec> {
        units
            .iter()
            .map(|u| {
                format!(
                    "vec{u}:transport=fd,fd={},mac=02:00:00:00:00:{u:02x}",
                    u + 3
                )
                .parse()
                .unwrap()
            })
            .collect()
    }

    impl Output for Recorder {
        fn ports(&self) -> usize {
            self.ports
        }
        fn frame(&self, f: &Frame) -> &[u8] {
            self.pool.frame(f)
        }
        fn frame_mut(&mut self, f: &Frame) -> &mut [u8] {
            self.pool.frame_mut(f)
        }
        fn alloc(&mut self, len: usize) -> Option<Frame> {
            if len > self.pool.stride() {
                return None;
            }
            let id = self.pool.alloc()?;
            Some(Frame {
                buf: id,
                off: 0,
                len: len as u32,
                vnet: vnet::Repr::default(),
            })
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
