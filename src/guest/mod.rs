//! One guest process: parse its command line, open its transports, drop privileges and
//! run the network function in a single-threaded run-to-completion loop.
//!
//! - [`event_loop`]: the epoll loop over port descriptors, the control socket, a
//!   signalfd (SIGINT/SIGTERM end the guest cleanly) and a timerfd (function ticks).
//! - [`control`]: the mconsole commands (`version`, `config`, `stop`, `proc`, ...).
//! - [`impair`]: the console's `impair` and `link` commands.
//! - [`ports`]: adding, removing and reopening interfaces at run time.
//! - [`procfs`]: the files of `proc` and the `stack` dump.
//! - [`publish`]: counters to the shared metrics region, `metrics=ADDR`.
//! - [`capture`]: the console's `capture` commands and the ports' capture taps.
//!
//! Every guest has a run directory `~/.uml/UMID/` (as a UML kernel does) holding its pid,
//! its control socket `mconsole` and its counter region `metrics`.

mod args;
mod capture;
mod control;
mod event_loop;
mod fabric;
mod filter;
mod impair;
mod ports;
mod procfs;
mod publish;
mod report;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use args::{GUEST_KEYS, GuestArgs, GuestError};
pub use event_loop::{BUDGET, TICK};
pub use filter::FilterError;
pub use report::{Report, schema as report_schema};

use crate::buf::Pool;
use crate::console::{RunDir, Server};
use crate::metrics::region::RegionWriter;
use crate::metrics::sink::Snapshot;
use crate::nf::{self, Function};
use crate::transport::{self, Port};

/// A running guest.
pub struct Guest {
    pub args: GuestArgs,
    pub ports: Vec<Port>,
    pub pool: Pool,
    pub nf: Box<dyn Function>,
    started: Instant,
    started_unix: f64,
    /// Datapath restarts (console `reboot`).
    pub restarts: u64,
    /// Forwarding paused by the console's `stop`.
    pub stopped: bool,
    console: Server,
    region: RegionWriter,
    snap: Snapshot,
    metrics_listener: Option<std::net::TcpListener>,
    /// Text of console `log` requests not yet ended by a newline.
    log_line: String,
    /// Captures running in this guest.
    captures: capture::Captures,
    /// Removed last (fields drop in order): the socket and region live inside it.
    run_dir: RunDir,
}

impl Guest {
    /// Create the run directory and control socket, open every transport and build the
    /// function. Needs whatever privileges the transports need; call
    /// [`Guest::sandbox`] afterwards.
    pub fn open(args: GuestArgs) -> Result<Guest, GuestError> {
        let nf = nf::build_for(&args.function, &args.specs, &args.nf_options)?;
        let run_dir = crate::console::rundir::create_default(&args.umid)?;
        let console = Server::bind(&run_dir.socket()).map_err(|source| GuestError::Control {
            what: "binding the control socket",
            path: run_dir.socket(),
            source,
        })?;
        let region =
            RegionWriter::create(&run_dir.metrics()).map_err(|source| GuestError::Control {
                what: "creating the metrics region",
                path: run_dir.metrics(),
                source,
            })?;
        let metrics_listener = match args.metrics {
            Some(a) => Some(crate::metrics::http::bind(a)?),
            None => None,
        };
        for spec in &args.specs {
            for w in spec.warnings() {
                tracing::warn!("vec{}: {w}", spec.unit);
            }
        }
        let ports = transport::open_all(&args.specs)?;
        let (count, stride) = ports::pool_size(&ports);
        Ok(Guest {
            args,
            ports,
            pool: Pool::new(count + nf.buffers_needed(), stride),
            nf,
            started: Instant::now(),
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            restarts: 0,
            stopped: false,
            console,
            region,
            snap: Snapshot::default(),
            metrics_listener,
            log_line: String::new(),
            captures: capture::Captures::default(),
            run_dir,
        })
    }

    /// Pin to `cpu=` if given, then drop privileges: clear effective capabilities (the
    /// network ones stay permitted for console `reboot`/`config`), set no_new_privs
    /// (see [`crate::sys::sandbox`]) and install the seccomp allowlist on every thread
    /// (see [`crate::sys::seccomp::allowlist`]; threads started later, such as the
    /// `metrics=` server, inherit it).
    pub fn sandbox(&self) -> Result<(), GuestError> {
        if let Some(cpu) = self.args.cpu {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu).map_err(|_| GuestError::Cpu(cpu))?;
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                .map_err(|_| GuestError::Cpu(cpu))?;
        }
        crate::sys::sandbox::drop_capabilities_keeping(crate::sys::sandbox::net_capabilities())
            .map_err(GuestError::Sandbox)?;
        let seccomp = |e| GuestError::Seccomp(self.args.seccomp.as_str(), e);
        if let Some(prog) = crate::sys::seccomp::guest_filter(self.args.seccomp).map_err(seccomp)? {
            crate::sys::seccomp::install(&prog).map_err(seccomp)?;
        }
        Ok(())
    }

    /// Counters and state, for printing.
    pub fn report(&self) -> Report {
        Report::new(self)
    }

    /// The guest's run directory (`~/.uml/UMID`).
    pub fn run_dir(&self) -> &std::path::Path {
        &self.run_dir.path
    }

    fn ready_line(&self) -> String {
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|p| {
                format!(
                    "{}={}({})",
                    p.name,
                    p.spec.transport_name(),
                    p.host_if.as_deref().unwrap_or("-")
                )
            })
            .collect();
        format!(
            "vecbox guest {} ready: {} {} console={}",
            self.args.umid,
            self.nf.name(),
            ports.join(" "),
            self.run_dir.socket().display()
        )
    }

    /// Time since the guest opened its ports.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
