//! Counters to the shared metrics region (`~/.uml/UMID/metrics`): the guest's own
//! series, every port's, then the function's. Port counters are copied every few
//! milliseconds while frames flow; the function is asked for its metrics only on the
//! tick (its tables may be large), and its last values are kept in between.

use super::Guest;
use crate::metrics::names::{self, GuestInfo, PortLabels};
use crate::metrics::region::State;

impl Guest {
    /// Copy counters to the region; `with_nf` also asks the function for its own.
    pub(super) fn publish(&mut self, with_nf: bool) {
        let snap = &mut self.snap;
        snap.begin();
        names::guest(
            snap,
            GuestInfo {
                function: self.nf.name(),
                start_time: self.started_unix,
                restarts: self.restarts,
                stopped: self.stopped,
                ports: self.ports.len(),
                console_requests: self.console.requests,
                console_errors: self.console.errors,
            },
        );
        for p in &self.ports {
            names::port(
                snap,
                PortLabels {
                    iface: &p.name,
                    transport: p.spec.transport_name(),
                    host_if: p.host_if.as_deref().unwrap_or("-"),
                },
                &p.stats,
                p.caps.vnet,
                p.caps.tx_gso,
            );
        }
        self.captures.metrics(snap);
        if with_nf || snap.changed() {
            self.nf.metrics(snap);
            snap.end();
        } else {
            snap.end_keep_rest();
        }
        self.region.publish(snap);
        self.region.set_state(if self.stopped {
            State::Stopped
        } else {
            State::Running
        });
    }
}
