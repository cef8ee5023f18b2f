//! Interfaces at run time: the console's `config vecN:SPEC` (add), `remove vecN` and
//! `reboot` (close and reopen every transport). Opening needs CAP_NET_RAW/CAP_NET_ADMIN,
//! which the sandboxed guest keeps only in its permitted set: they are raised for the
//! duration of the open ([`crate::sys::sandbox::with_net_capabilities`]).
//!
//! The function is told the new set of ports ([`crate::nf::Function::set_ports`]) and
//! may refuse. When the buffer pool is too small (or its buffers too short) for the new set
//! of ports, every queue is flushed and a new pool is allocated.

use super::Guest;
use super::fabric::Fabric;
use crate::buf::Pool;
use crate::metrics::{DropReason, PortStats};
use crate::sys::sandbox::with_net_capabilities;
use crate::transport::{self, Port, Spec};

/// Buffers and buffer size the pool needs for `ports`.
pub(super) fn pool_size(ports: &[Port]) -> (usize, usize) {
    let stride = ports.iter().map(|p| p.caps.rx_slot).max().unwrap_or(2048);
    let count: usize = ports.iter().map(Port::buffers_needed).sum();
    (count.max(1), stride)
}

impl Guest {
    /// Index of the port with unit `unit`.
    pub(super) fn port_index(&self, unit: u32) -> Option<usize> {
        self.ports.iter().position(|p| p.spec.unit == unit)
    }

    /// Tell the function its ports will be `specs`; it may release held frames through
    /// the ports as they still are.
    fn tell_function(&mut self, specs: &[Spec]) -> Result<(), String> {
        let mut fab = Fabric {
            pool: &mut self.pool,
            ports: &mut self.ports,
            in_port: usize::MAX,
        };
        self.nf
            .set_ports(specs, &mut fab)
            .map_err(|e| e.to_string())
    }

    /// The specs of the current ports, in port order.
    fn specs(&self) -> Vec<Spec> {
        self.ports.iter().map(|p| p.spec.clone()).collect()
    }

    /// Open `spec` and add it as a port (kept in unit order).
    /// The new port's default receive ring is its share of the guest's ring budget as it
    /// will be; the rings of the ports already open keep their size until a reboot.
    pub(super) fn add_port(&mut self, spec: &Spec) -> Result<(), String> {
        let at = self
            .ports
            .iter()
            .position(|p| p.spec.unit > spec.unit)
            .unwrap_or(self.ports.len());
        let mut specs = self.specs();
        specs.insert(at, spec.clone());
        let sharing = transport::port::ring::sharing_ports(&specs);
        let port = with_net_capabilities(|| transport::open_among(spec, sharing))
            .map_err(|e| e.to_string())?;
        self.tell_function(&specs)?;
        self.ports.insert(at, port);
        self.fit_pool();
        tracing::info!(port = %spec, "interface added from the console");
        Ok(())
    }

    /// Close and remove port `i`.
    pub(super) fn remove_port(&mut self, i: usize) -> Result<(), String> {
        let mut specs = self.specs();
        specs.remove(i);
        self.tell_function(&specs)?;
        let mut p = self.ports.remove(i);
        p.flush(&mut self.pool);
        p.release_all(&mut self.pool);
        tracing::info!(port = %p.name, "interface removed from the console");
        Ok(())
    }

    /// Close every transport and open it again from its spec. Ports that fail to reopen
    /// are dropped and named in the error.
    pub(super) fn reopen_all(&mut self) -> Result<(), String> {
        // Counters carry over, so they stay monotonic across the restart; impairment
        // stages carry over whole, with their frames in flight.
        let specs: Vec<(Spec, PortStats)> = self
            .ports
            .iter()
            .map(|p| (p.spec.clone(), p.stats))
            .collect();
        let mut stages: Vec<(u32, transport::port::impair::Stages)> = self
            .ports
            .iter_mut()
            .map(|p| (p.spec.unit, p.take_impairments()))
            .collect();
        for p in &mut self.ports {
            p.flush(&mut self.pool);
            p.release_all(&mut self.pool);
        }
        // Close everything before opening: a tap can only be attached once.
        self.ports.clear();
        let mut failed = Vec::new();
        let all: Vec<Spec> = specs.iter().map(|(s, _)| s.clone()).collect();
        let sharing = transport::port::ring::sharing_ports(&all);
        // All together first (tunnels sharing a socket are grouped); if that fails, one
        // by one, keeping what opens.
        let opened: Vec<(Result<Port, String>, PortStats)> =
            match with_net_capabilities(|| transport::open_all(&all)) {
                Ok(ports) => ports
                    .into_iter()
                    .zip(specs.iter().map(|(_, st)| *st))
                    .map(|(p, st)| (Ok(p), st))
                    .collect(),
                Err(_) => specs
                    .iter()
                    .map(|(spec, st)| {
                        (
                            with_net_capabilities(|| transport::open_among(spec, sharing))
                                .map_err(|e| e.to_string()),
                            *st,
                        )
                    })
                    .collect(),
            };
        for (p, stats) in opened {
            match p {
                Ok(mut p) => {
                    p.stats = PortStats {
                        fallbacks: p.stats.fallbacks,
                        ..stats
                    };
                    if let Some(at) = stages.iter().position(|(u, _)| *u == p.spec.unit) {
                        p.restore_impairments(stages.swap_remove(at).1);
                    }
                    self.ports.push(p)
                }
                Err(e) => failed.push(e),
            }
        }
        self.restarts += 1;
        if failed.is_empty() {
            self.fit_pool();
            tracing::info!("datapath restarted from the console");
            return Ok(());
        }
        // Before the pool may be replaced: the function releases what it holds.
        let specs = self.specs();
        if let Err(e) = self.tell_function(&specs) {
            failed.push(e);
        }
        self.fit_pool();
        Err(failed.join("; "))
    }

    /// The function re-reads its file with the ports it has (console `reload`).
    pub(super) fn reload_function(&mut self) -> Result<(), String> {
        let specs = self.specs();
        self.tell_function(&specs)?;
        self.fit_pool();
        tracing::info!("function re-read its file from the console");
        Ok(())
    }

    /// Build the function again with `options` and the ports it has (console
    /// `options`); the old one releases what it holds first.
    pub(super) fn rebuild_function(
        &mut self,
        options: Vec<(String, String)>,
    ) -> Result<(), String> {
        let specs = self.specs();
        let next = crate::nf::build_for(&self.args.function, &specs, &options)
            .map_err(|e| e.to_string())?;
        // Frames the old function holds go back to the pool through the ports.
        let _ = self.tell_function(&specs);
        self.nf = next;
        self.args.nf_options = options;
        self.fit_pool();
        tracing::info!(function = %self.args.function, "function rebuilt with new options from the console");
        Ok(())
    }

    /// Make the pool large enough for the current ports.
    fn fit_pool(&mut self) {
        let (count, stride) = pool_size(&self.ports);
        let count = count + self.nf.buffers_needed();
        if self.pool.capacity() >= count && self.pool.stride() >= stride {
            return;
        }
        for p in &mut self.ports {
            p.flush(&mut self.pool);
            let queued = p.tx_pending();
            for _ in 0..queued {
                p.stats.drop(DropReason::TxQueueFull);
            }
            p.release_all(&mut self.pool);
        }
        self.pool = Pool::new(count, stride.max(self.pool.stride()));
    }
}
