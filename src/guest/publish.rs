//! Counters to the shared metrics region (`~/.uml/UMID/metrics`): the guest's own
//! series, every port's, then the function's. Port counters are copied every few
//! milliseconds while frames flow; the function is asked for its metrics only on the
//! tick (its tables may be large), and its last values are kept in between.

use super::Guest;
use crate::impair::counters::{DELAY_BOUNDS_NS, LATE_BOUNDS_NS};
use crate::impair::{Direction, Dropped, Stage};
use crate::metrics::HistogramRef;
use crate::metrics::names::{self, GuestInfo, PortLabels};
use crate::metrics::region::State;
use crate::metrics::sink::Snapshot;

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
            let labels = PortLabels {
                iface: &p.name,
                transport: p.spec.transport_name(),
                host_if: p.host_if.as_deref().unwrap_or("-"),
            };
            names::port(snap, labels, &p.stats, p.caps.vnet, p.caps.tx_gso);
            for d in Direction::BOTH {
                if let Some(st) = p.impairment(d) {
                    impair_series(snap, labels, d, st);
                }
            }
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

/// One impairment direction's series.
fn impair_series(snap: &mut Snapshot, labels: PortLabels<'_>, d: Direction, st: &Stage) {
    let c = &st.counters;
    let dropped = Dropped::ALL.map(|r| (r.name(), c.dropped(r)));
    let (queue_packets, queue_bytes) = st.queue_depth();
    names::impair(
        snap,
        labels,
        &names::ImpairSeries {
            direction: d.name(),
            frames_in: c.frames_in,
            frames_out: c.frames_out,
            delayed: c.delayed,
            dropped: &dropped,
            duplicated: c.duplicated,
            corrupted: c.corrupted,
            reordered: c.reordered,
            queue_packets,
            queue_bytes,
            in_flight: st.in_flight() as u64,
            memory_bytes: st.memory() as u64,
            delay: HistogramRef {
                bounds: &DELAY_BOUNDS_NS,
                buckets: &c.delay.buckets,
                sum: c.delay.sum,
            },
            late: HistogramRef {
                bounds: &LATE_BOUNDS_NS,
                buckets: &c.late.buckets,
                sum: c.late.sum,
            },
        },
    );
}
