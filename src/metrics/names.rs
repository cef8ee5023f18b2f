//! The metrics a guest exports for itself and its ports (docs/metrics.md lists them
//! with the network functions' own). Labels: `iface` (vecN), `transport`, `host_if`
//! (host interface or `-`), `reason` for drops; the reader adds `lab` and `node`.

use super::sink::{HistogramRef, MetricSink};
use super::{DropReason, PortStats};

/// Identity of a port, as labels.
#[derive(Clone, Copy, Debug)]
pub struct PortLabels<'a> {
    pub iface: &'a str,
    pub transport: &'a str,
    pub host_if: &'a str,
}

/// Report the capture counters of interface `iface` (every capture it ever had).
pub fn capture(sink: &mut dyn MetricSink, iface: &str, packets: u64, dropped: u64) {
    let l = [("iface", iface)];
    sink.counter(
        "vecbox_capture_packets_total",
        "Frames copied into capture rings (vecbox capture, Wireshark through vecbox extcap).",
        &l,
        packets,
    );
    sink.counter(
        "vecbox_capture_dropped_total",
        "Frames a capture wanted but whose copy was dropped: the capture's ring was full because its reader was slow. Forwarding is not affected.",
        &l,
        dropped,
    );
}

/// Report one port's counters.
pub fn port(sink: &mut dyn MetricSink, p: PortLabels<'_>, s: &PortStats, vnet: bool, tx_gso: bool) {
    let l = [
        ("iface", p.iface),
        ("transport", p.transport),
        ("host_if", p.host_if),
    ];
    let c =
        |sink: &mut dyn MetricSink, name: &str, help: &str, v: u64| sink.counter(name, help, &l, v);
    c(
        sink,
        "vecbox_rx_packets_total",
        "Frames received and handed to the network function.",
        s.rx_packets,
    );
    c(
        sink,
        "vecbox_rx_bytes_total",
        "Bytes of received frames (Ethernet header on, no vnet header).",
        s.rx_bytes,
    );
    c(
        sink,
        "vecbox_tx_packets_total",
        "Frames handed to the kernel for transmission.",
        s.tx_packets,
    );
    c(
        sink,
        "vecbox_tx_bytes_total",
        "Bytes of transmitted frames.",
        s.tx_bytes,
    );
    for r in DropReason::ALL {
        sink.counter(
            "vecbox_dropped_packets_total",
            "Frames dropped, by reason (encap_error, bad_vnet_header and the tunnel header reasons are encapsulation errors).",
            &[l[0], l[1], l[2], ("reason", r.name())],
            s.dropped(r),
        );
    }
    sink.histogram(
        "vecbox_rx_batch_size",
        "Frames per receive batch (recvmmsg call).",
        &l,
        s.rx_batch.histogram(),
    );
    sink.histogram(
        "vecbox_tx_batch_size",
        "Frames per transmit batch (sendmmsg call).",
        &l,
        s.tx_batch.histogram(),
    );
    let g =
        |sink: &mut dyn MetricSink, name: &str, help: &str, v: f64| sink.gauge(name, help, &l, v);
    g(
        sink,
        "vecbox_rx_queue_max",
        "Largest receive batch so far (UML rx_queue_max).",
        s.rx_batch.max as f64,
    );
    g(
        sink,
        "vecbox_rx_queue_running_average",
        "Running average receive batch (UML rx_queue_running_average).",
        s.rx_batch.running_average as f64,
    );
    g(
        sink,
        "vecbox_tx_queue_max",
        "Largest transmit batch so far (UML tx_queue_max).",
        s.tx_batch.max as f64,
    );
    g(
        sink,
        "vecbox_tx_queue_running_average",
        "Running average transmit batch (UML tx_queue_running_average).",
        s.tx_batch.running_average as f64,
    );
    c(
        sink,
        "vecbox_tx_restart_queue_total",
        "Transmits the kernel took only partly (UML tx_restart_queue).",
        s.tx_restart_queue,
    );
    c(
        sink,
        "vecbox_rx_csum_offload_good_total",
        "Frames received with a valid checksum flag (UML rx_csum_offload_good).",
        s.rx_csum_offload_good,
    );
    c(
        sink,
        "vecbox_rx_gso_frames_total",
        "GSO super-frames received whole.",
        s.rx_gso_frames,
    );
    c(
        sink,
        "vecbox_tx_gso_frames_total",
        "GSO super-frames sent whole.",
        s.tx_gso_frames,
    );
    c(
        sink,
        "vecbox_tx_gso_segmented_total",
        "GSO super-frames split in software before transmit.",
        s.tx_gso_segmented,
    );
    c(
        sink,
        "vecbox_tx_gso_segments_total",
        "Segments made by software segmentation.",
        s.tx_gso_segments,
    );
    c(
        sink,
        "vecbox_tx_csum_completed_total",
        "Checksums completed in software before transmit.",
        s.tx_csum_completed,
    );
    c(
        sink,
        "vecbox_port_fallbacks_total",
        "Kernel features the port had to do without.",
        s.fallbacks,
    );
    g(
        sink,
        "vecbox_port_vnet",
        "1 if frames on this port carry a virtio-net header.",
        f64::from(u8::from(vnet)),
    );
    g(
        sink,
        "vecbox_port_tx_gso",
        "1 if GSO super-frames may leave this port whole.",
        f64::from(u8::from(tx_gso)),
    );
}

/// One impairment direction of a port (see docs/impairments.md), for [`impair`].
#[derive(Clone, Copy, Debug)]
pub struct ImpairSeries<'a> {
    /// `tx` or `rx`.
    pub direction: &'a str,
    pub frames_in: u64,
    pub frames_out: u64,
    pub delayed: u64,
    /// Drops by reason name (`loss`, `queue_full`, `link_down`, `buffer_full`).
    pub dropped: &'a [(&'a str, u64)],
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
    pub queue_packets: u64,
    pub queue_bytes: u64,
    pub in_flight: u64,
    pub memory_bytes: u64,
    /// Applied delay (entering to leaving the stage), ns.
    pub delay: HistogramRef<'a>,
    /// Lateness after the departure time, ns.
    pub late: HistogramRef<'a>,
}

/// Report one impairment direction of a port.
pub fn impair(sink: &mut dyn MetricSink, p: PortLabels<'_>, s: &ImpairSeries<'_>) {
    let l = [
        ("iface", p.iface),
        ("transport", p.transport),
        ("host_if", p.host_if),
        ("direction", s.direction),
    ];
    for (name, help, v) in [
        (
            "vecbox_impair_frames_in_total",
            "Wire frames that entered the impairment stage (GSO segments counted).",
            s.frames_in,
        ),
        (
            "vecbox_impair_frames_out_total",
            "Wire frames the impairment stage handed on.",
            s.frames_out,
        ),
        (
            "vecbox_impair_delayed_total",
            "Wire frames held by the impairment stage (delay, jitter or rate).",
            s.delayed,
        ),
        (
            "vecbox_impair_duplicated_total",
            "Extra copies made by the impairment stage.",
            s.duplicated,
        ),
        (
            "vecbox_impair_corrupted_total",
            "Frames with one bit flipped by the impairment stage.",
            s.corrupted,
        ),
        (
            "vecbox_impair_reordered_total",
            "Frames that skipped the delay (reorder).",
            s.reordered,
        ),
    ] {
        sink.counter(name, help, &l, v);
    }
    for (reason, v) in s.dropped {
        sink.counter(
            "vecbox_impair_dropped_total",
            "Frames dropped by the impairment stage, by reason (loss, queue_full, link_down, buffer_full).",
            &[l[0], l[1], l[2], l[3], ("reason", reason)],
            *v,
        );
    }
    for (name, help, v) in [
        (
            "vecbox_impair_queue_packets",
            "Frames in the queue in front of the impairment rate.",
            s.queue_packets,
        ),
        (
            "vecbox_impair_queue_bytes",
            "Bytes in the queue in front of the impairment rate.",
            s.queue_bytes,
        ),
        (
            "vecbox_impair_in_flight_packets",
            "Frames held by the impairment stage (queue and delay line).",
            s.in_flight,
        ),
        (
            "vecbox_impair_memory_bytes",
            "Memory the impairment stage holds for frames in flight.",
            s.memory_bytes,
        ),
    ] {
        sink.gauge(name, help, &l, v as f64);
    }
    sink.histogram_ns(
        "vecbox_impair_delay_seconds",
        "Time frames spent in the impairment stage (delay, jitter, queue and rate).",
        &l,
        s.delay,
    );
    sink.histogram_ns(
        "vecbox_impair_late_seconds",
        "How long after its departure time a frame left the impairment stage.",
        &l,
        s.late,
    );
}

/// Guest-level facts.
#[derive(Clone, Copy, Debug)]
pub struct GuestInfo<'a> {
    pub function: &'a str,
    pub start_time: f64,
    pub restarts: u64,
    pub stopped: bool,
    pub ports: usize,
    pub console_requests: u64,
    pub console_errors: u64,
}

/// Report the guest's own metrics.
pub fn guest(sink: &mut dyn MetricSink, g: GuestInfo<'_>) {
    sink.gauge(
        "vecbox_guest_info",
        "Always 1; labels say which function and vecbox version the guest runs.",
        &[
            ("function", g.function),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
    sink.gauge(
        "vecbox_guest_start_time_seconds",
        "When the guest started, seconds since the Unix epoch.",
        &[],
        g.start_time,
    );
    sink.counter(
        "vecbox_guest_restarts_total",
        "Datapath restarts (console reboot/cad: every transport closed and reopened).",
        &[],
        g.restarts,
    );
    sink.gauge(
        "vecbox_guest_stopped",
        "1 while forwarding is paused by the console's stop.",
        &[],
        f64::from(u8::from(g.stopped)),
    );
    sink.gauge(
        "vecbox_guest_ports",
        "Interfaces the guest has.",
        &[],
        g.ports as f64,
    );
    sink.counter(
        "vecbox_console_requests_total",
        "Control socket requests received.",
        &[],
        g.console_requests,
    );
    sink.counter(
        "vecbox_console_errors_total",
        "Control socket requests answered with an error.",
        &[],
        g.console_errors,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sink::Snapshot;

    #[test]
    fn port_series_are_stable_and_named_by_convention() {
        let mut s = Snapshot::default();
        let mut st = PortStats::default();
        st.rx_batch.record(3);
        let l = PortLabels {
            iface: "vec0",
            transport: "raw",
            host_if: "veth0",
        };
        s.begin();
        port(&mut s, l, &st, true, false);
        s.end();
        assert!(s.take_changed());
        for ser in &s.series {
            assert!(ser.name.starts_with("vecbox_"), "{}", ser.name);
            if ser.kind == crate::metrics::sink::Kind::Counter {
                assert!(ser.name.ends_with("_total"), "{}", ser.name);
            }
        }
        st.rx_packets = 9;
        s.begin();
        port(&mut s, l, &st, true, false);
        s.end();
        assert!(!s.take_changed());
        assert_eq!(s.values[0], 9);
    }
}
