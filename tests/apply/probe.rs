//! Sequence-numbered UDP probes across a lab: a sender thread in one namespace sends a
//! datagram every `interval` on a fixed schedule (sequence number and send time in the
//! payload), a receiver thread in another takes them with the kernel's receive
//! timestamps (SO_TIMESTAMPNS), so neither thread's own scheduling counts as a gap:
//!
//! - loss: sequence numbers sent and never received; duplicates: received twice;
//! - largest gap: between two consecutive received datagrams, the time between their
//!   kernel receive stamps minus whatever the sender itself was late beyond the
//!   schedule (a sender descheduled on a loaded machine is not the lab's fault).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt, sockopt};

fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

/// One received datagram: sequence, send time, kernel receive time (ns, realtime).
#[derive(Clone, Copy, Debug)]
struct Rx {
    seq: u64,
    sent: i128,
    at: i128,
}

/// A running probe.
pub struct Probe {
    pub name: String,
    interval: Duration,
    stop: Arc<AtomicBool>,
    sender: Option<JoinHandle<u64>>,
    receiver: Option<JoinHandle<Vec<Rx>>>,
}

/// What a probe saw.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub sent: u64,
    pub received: usize,
    pub lost: Vec<u64>,
    pub duplicates: usize,
    /// Largest gap the lab caused, in milliseconds.
    pub max_gap_ms: f64,
}

impl Probe {
    /// Send from `src` (namespace, address) to `dst` (namespace, address) on UDP `port`
    /// every `interval`.
    pub fn start(
        name: &str,
        src: (&str, Ipv4Addr),
        dst: (&str, Ipv4Addr),
        port: u16,
        interval: Duration,
    ) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let rstop = stop.clone();
        let (dns, dip) = (dst.0.to_string(), dst.1);
        let receiver = std::thread::spawn(move || {
            enter(&dns);
            let sock = UdpSocket::bind(SocketAddrV4::new(dip, port)).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            setsockopt(&sock, sockopt::ReceiveTimestampns, &true).unwrap();
            ready_tx.send(()).unwrap();
            let mut got = Vec::new();
            let mut idle_since: Option<Instant> = None;
            loop {
                let mut buf = [0u8; 64];
                let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
                let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                match recvmsg::<SockaddrIn>(
                    sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                ) {
                    Ok(m) if m.bytes >= 24 => {
                        let mut at = None;
                        for c in m.cmsgs().unwrap() {
                            if let ControlMessageOwned::ScmTimestampns(t) = c {
                                at = Some(t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128);
                            }
                        }
                        let seq = u64::from_le_bytes(buf[0..8].try_into().unwrap());
                        let sent = i128::from_le_bytes(buf[8..24].try_into().unwrap());
                        got.push(Rx {
                            seq,
                            sent,
                            at: at.unwrap_or_else(now_ns),
                        });
                        idle_since = None;
                    }
                    _ => {
                        if rstop.load(Ordering::Relaxed) {
                            let t = *idle_since.get_or_insert_with(Instant::now);
                            if t.elapsed() > Duration::from_millis(300) {
                                return got;
                            }
                        }
                    }
                }
            }
        });
        ready_rx.recv().unwrap();
        let sstop = stop.clone();
        let (sns, sip) = (src.0.to_string(), src.1);
        let sender = std::thread::spawn(move || {
            enter(&sns);
            let sock = UdpSocket::bind(SocketAddrV4::new(sip, 0)).unwrap();
            let to = SocketAddrV4::new(dip, port);
            let t0 = Instant::now();
            let mut seq = 0u64;
            while !sstop.load(Ordering::Relaxed) {
                let due = t0 + interval * u32::try_from(seq).unwrap();
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let mut buf = [0u8; 24];
                buf[0..8].copy_from_slice(&seq.to_le_bytes());
                buf[8..24].copy_from_slice(&now_ns().to_le_bytes());
                // A send that fails (no route for a moment) is a loss the receiver sees.
                let _ = sock.send_to(&buf, to);
                seq += 1;
            }
            seq
        });
        Probe {
            name: name.to_string(),
            interval,
            stop,
            sender: Some(sender),
            receiver: Some(receiver),
        }
    }

    /// Stop sending, collect what arrived.
    pub fn finish(mut self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.take().unwrap().join().unwrap();
        let mut rx = self.receiver.take().unwrap().join().unwrap();
        let received = rx.len();
        rx.sort_by_key(|r| (r.seq, r.at));
        let before = rx.len();
        rx.dedup_by_key(|r| r.seq);
        let duplicates = before - rx.len();
        let seen: std::collections::BTreeSet<u64> = rx.iter().map(|r| r.seq).collect();
        let lost = (0..sent).filter(|s| !seen.contains(s)).collect();
        let nominal = self.interval.as_nanos() as i128;
        let mut max_gap = 0i128;
        for w in rx.windows(2) {
            let rx_gap = w[1].at - w[0].at;
            let sender_late =
                (w[1].sent - w[0].sent - nominal * i128::from((w[1].seq - w[0].seq) as u32)).max(0);
            max_gap = max_gap.max(rx_gap - sender_late);
        }
        Outcome {
            name: self.name.clone(),
            sent,
            received,
            lost,
            duplicates,
            max_gap_ms: max_gap as f64 / 1e6,
        }
    }
}
