//! What the console's `proc FILE` and `stack` show. vecbox files: `net/dev` (interface
//! counters in the kernel's /proc/net/dev layout), `stats` (the full per-port report),
//! `impair` (impairment settings and counters, as the console's `impair`),
//! and whatever the function provides (`fdb` for the bridge; `routes`, `neigh`,
//! `rules`, `conntrack` for the router and firewall). Nothing here reads host files.

use std::fmt::Write;

use super::Guest;
use crate::metrics::{DropReason, PortStats};

/// Files every guest has.
pub const GUEST_FILES: [&str; 3] = ["net/dev", "stats", "impair"];

fn rx_errors(s: &PortStats) -> u64 {
    [
        DropReason::Runt,
        DropReason::Oversize,
        DropReason::BadVnetHeader,
        DropReason::EncapError,
        DropReason::BadIpHeader,
        DropReason::BadGreHeader,
        DropReason::NotEthernet,
        DropReason::BadKey,
        DropReason::BadL2tpHeader,
        DropReason::BadSession,
        DropReason::BadCookie,
    ]
    .iter()
    .map(|r| s.dropped(*r))
    .sum()
}

fn rx_dropped(s: &PortStats) -> u64 {
    [
        DropReason::NoBuffer,
        DropReason::NoRoute,
        DropReason::Filtered,
    ]
    .iter()
    .map(|r| s.dropped(*r))
    .sum()
}

fn tx_dropped(s: &PortStats) -> u64 {
    [
        DropReason::TxQueueFull,
        DropReason::GsoUnsupported,
        DropReason::ChecksumError,
        DropReason::PeerGone,
    ]
    .iter()
    .map(|r| s.dropped(*r))
    .sum()
}

impl Guest {
    /// Contents of console file `name`, or `None` if there is no such file.
    pub(super) fn proc_file(&self, name: &str) -> Option<String> {
        match name {
            "net/dev" => Some(self.net_dev()),
            "stats" => Some(self.report().to_string()),
            "impair" => Some(self.impair_text(None)),
            other => self.nf.proc_file(other),
        }
    }

    /// Names of the files `proc` can show.
    pub(super) fn proc_names(&self) -> Vec<&'static str> {
        let mut v = GUEST_FILES.to_vec();
        v.extend_from_slice(self.nf.proc_files());
        v
    }

    /// Interface counters laid out as the kernel's /proc/net/dev. Receive errors are
    /// malformed frames (runt, oversize, bad vnet header, encapsulation and tunnel header
    /// errors), receive drops are frames with nowhere to go (no buffer, no route,
    /// filtered); transmit errors are kernel refusals, transmit drops full queues,
    /// offload failures and a gone bess peer.
    fn net_dev(&self) -> String {
        let mut s = String::from(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs colls drop fifo carrier compressed\n",
        );
        for p in &self.ports {
            let t = &p.stats;
            let _ = writeln!(
                s,
                "{:>6}: {:>7} {:>7} {:>4} {:>4} {:>4} {:>5} {:>10} {:>9} {:>8} {:>7} {:>4} {:>5} {:>4} {:>4} {:>7} {:>10}",
                p.name,
                t.rx_bytes,
                t.rx_packets,
                rx_errors(t),
                rx_dropped(t),
                0,
                0,
                0,
                0,
                t.tx_bytes,
                t.tx_packets,
                t.dropped(DropReason::TxError),
                0,
                tx_dropped(t),
                0,
                0,
                0
            );
        }
        s
    }

    /// The `stack` dump: the guest's state rather than a kernel stack.
    pub(super) fn stack_dump(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "guest {} pid {} function {} up {:.1}s {} restarts {}",
            self.args.umid,
            std::process::id(),
            self.nf.name(),
            self.uptime().as_secs_f64(),
            if self.stopped { "STOPPED" } else { "running" },
            self.restarts
        );
        let _ = writeln!(
            s,
            "pool: {} of {} buffers free, {} bytes each",
            self.pool.available(),
            self.pool.capacity(),
            self.pool.stride()
        );
        let _ = writeln!(
            s,
            "capabilities: effective [{}]; seccomp={}",
            crate::sys::sandbox::effective_capabilities(),
            self.args.seccomp.as_str()
        );
        for p in &self.ports {
            let _ = writeln!(
                s,
                "{}: {} host_if={} depth={} vnet={} tx_gso={} tx_queued={} rx={} tx={} dropped={}",
                p.name,
                p.spec,
                p.host_if.as_deref().unwrap_or("-"),
                p.caps.depth,
                p.caps.vnet,
                p.caps.tx_gso,
                p.tx_pending(),
                p.stats.rx_packets,
                p.stats.tx_packets,
                p.stats.dropped_total()
            );
        }
        for (k, v) in self.nf.summary() {
            let _ = writeln!(s, "{}: {k}={v}", self.nf.name());
        }
        let _ = writeln!(
            s,
            "console: {} requests, {} errors; run directory {}",
            self.console.requests,
            self.console.errors,
            self.run_dir.path.display()
        );
        s
    }
}
