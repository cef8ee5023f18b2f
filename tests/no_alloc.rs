//! The packet path allocates nothing: receive a batch, forward every frame to another
//! port (including software segmentation of a 64 KiB GSO frame and checksum
//! completion), flush — with a counting global allocator watching. The fd test is
//! unprivileged (socketpairs), also with impairment stages and capture taps; the ring
//! test needs root (a raw port with a TPACKET_V3 ring on the loopback of a private
//! network namespace).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicUsize, Ordering};

use vecbox::buf::Pool;
use vecbox::transport::{self, Spec};

struct Counting;

thread_local! {
    /// Counting is per thread: the test harness' own threads (which print results
    /// while another test runs) are not the packet path. Const-initialised, no
    /// destructor: safe to read from inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// The counter is global: one counting test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn pair() -> (UnixDatagram, UnixDatagram) {
    let (a, b) = UnixDatagram::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn udp_frame(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1, 2)
        .write(&mut out, &vec![7u8; len])
        .unwrap();
    out
}

fn tcp_gso_frame(payload: usize) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 100, 1000)
        .write(&mut out, &vec![9u8; payload])
        .unwrap();
    out
}

fn gso_meta(id: vecbox::buf::BufId, len: usize) -> vecbox::buf::Frame {
    use vecbox::wire::vnet;
    vecbox::buf::Frame {
        buf: id,
        off: 0,
        len: len as u32,
        vnet: vnet::Repr {
            gso_type: vnet::GsoType::TcpV4,
            gso_size: 1448,
            csum: Some(vnet::Csum {
                start: 34,
                offset: 16,
            }),
            ..vnet::Repr::NONE
        },
    }
}

#[test]
fn receive_forward_flush_does_not_allocate() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (in_peer, in_port) = pair();
    let (out_port, out_peer) = pair();
    let spec = |unit: u32, fd: i32| -> Spec {
        format!("vec{unit}:transport=fd,fd={fd},depth=32")
            .parse()
            .unwrap()
    };
    let mut rx = transport::open(&spec(0, in_port.as_raw_fd())).unwrap();
    let mut tx = transport::open(&spec(1, out_port.as_raw_fd())).unwrap();
    let stride = rx.caps.rx_slot.max(tx.caps.rx_slot).max(70_000);
    let mut pool = Pool::new(rx.buffers_needed() + tx.buffers_needed(), stride);
    let mut frames = Vec::with_capacity(64);
    let frame = udp_frame(18);
    let tcp = tcp_gso_frame(20_000);
    let mut sink = vec![0u8; 70_000];

    // Warm up once (first use of each path), then count.
    for round in 0..2 {
        COUNTING.with(|c| c.set(round == 1));
        for _ in 0..20 {
            for _ in 0..32 {
                in_peer.send(&frame).unwrap();
            }
            let got = rx.recv(&mut pool, &mut frames).unwrap();
            assert_eq!(got, 32);
            for f in frames.drain(..) {
                tx.enqueue(&mut pool, f);
            }
            tx.flush(&mut pool);
            while out_peer.recv(&mut sink).is_ok() {}
            // A 64 KiB-style GSO frame from a vnet port: segmented for this bare port.
            let id = pool.alloc().unwrap();
            pool.buf_mut(id)[..tcp.len()].copy_from_slice(&tcp);
            tx.enqueue(&mut pool, gso_meta(id, tcp.len()));
            tx.flush(&mut pool);
            while out_peer.recv(&mut sink).is_ok() {}
        }
        COUNTING.with(|c| c.set(false));
    }
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "allocations on the packet path"
    );
    let segs = 20_000u64.div_ceil(1448);
    assert_eq!(tx.stats.tx_packets, 2 * 20 * (32 + segs));
    assert_eq!(tx.stats.tx_gso_segmented, 2 * 20);
    rx.release_all(&mut pool);
    tx.release_all(&mut pool);
    assert_eq!(pool.available(), pool.capacity());
}

/// With impairments on both stages (delay, jitter, loss, corruption, duplication, a
/// rate that segments GSO frames in the stage), entering and leaving the stages
/// allocates nothing either: their memory is sized when they are configured.
#[test]
fn impaired_path_does_not_allocate() {
    impaired_path(false);
}

/// The same with a capture on both ports at all four points (the stages reporting
/// packet ids and verdicts to the taps): still nothing allocated, and the capture ring
/// saw frames with the stages' notes.
#[test]
fn impaired_path_with_captures_does_not_allocate() {
    impaired_path(true);
}

/// A capture of every point of a port into a fresh 1 MiB ring; the reader's end.
fn capture_all(
    slot: u16,
) -> (
    Box<vecbox::capture::tap::PortTap>,
    vecbox::capture::ring::Consumer,
) {
    use std::cell::RefCell;
    use std::rc::Rc;
    use vecbox::capture::ring::{self, Consumer, Producer};
    let (file, reader) = ring::create(1 << 20).unwrap();
    let guest = vecbox::sys::shm::SharedWords::map(&file, true).unwrap();
    let ring = Rc::new(RefCell::new(Producer::attach(guest, 2, 1).unwrap()));
    let tap = vecbox::capture::tap::PortTap::new(
        vec![vecbox::capture::tap::Attach {
            ring,
            slot,
            points: 0b1111,
            snaplen: 128,
            filter: None,
        }],
        1,
    )
    .unwrap();
    (tap, Consumer::new(reader).unwrap())
}

fn impaired_path(capture: bool) {
    use vecbox::transport::port::impair::now_ns;
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (in_peer, in_port) = pair();
    let (out_port, out_peer) = pair();
    let mut rx = transport::open(
        &format!(
            "vec0:transport=fd,fd={},depth=32,rx_delay=1ms,rx_jitter=200us,rx_loss=1%,rx_corrupt=1%,rx_seed=1",
            in_port.as_raw_fd()
        )
        .parse()
        .unwrap(),
    )
    .unwrap();
    let mut tx = transport::open(
        &format!(
            "vec1:transport=fd,fd={},depth=32,tx_delay=2ms,tx_rate=1gbit,tx_duplicate=1%,tx_seed=2",
            out_port.as_raw_fd()
        )
        .parse()
        .unwrap(),
    )
    .unwrap();
    let mut readers = Vec::new();
    if capture {
        for (slot, port) in [&mut rx, &mut tx].into_iter().enumerate() {
            let (tap, reader) = capture_all(slot as u16);
            port.tap = Some(tap);
            readers.push(reader);
        }
    }
    let stride = rx.caps.rx_slot.max(tx.caps.rx_slot).max(70_000);
    let mut pool = Pool::new(rx.buffers_needed() + tx.buffers_needed(), stride);
    let mut frames = Vec::with_capacity(64);
    let frame = udp_frame(18);
    let tcp = tcp_gso_frame(20_000);
    let mut sink = vec![0u8; 70_000];
    let mut sent = 0u64;
    let (mut copies, mut notes) = (0u64, 0u64);
    for round in 0..2 {
        COUNTING.with(|c| c.set(round == 1));
        for _ in 0..20 {
            for _ in 0..32 {
                in_peer.send(&frame).unwrap();
            }
            rx.recv(&mut pool, &mut frames).unwrap();
            assert!(frames.is_empty(), "delayed, nothing due yet");
            let later = now_ns() + 10_000_000_000;
            rx.release_rx(&mut pool, later, &mut frames);
            for f in frames.drain(..) {
                tx.enqueue(&mut pool, f);
            }
            let id = pool.alloc().unwrap();
            pool.buf_mut(id)[..tcp.len()].copy_from_slice(&tcp);
            tx.enqueue(&mut pool, gso_meta(id, tcp.len()));
            while tx.release_tx(&mut pool, later) > 0 {
                tx.flush(&mut pool);
            }
            while let Ok(n) = out_peer.recv(&mut sink) {
                sent += u64::from(n > 0);
            }
            // The reader is another process in real use: not counted.
            COUNTING.with(|c| c.set(false));
            for r in &mut readers {
                while let Some((m, _)) = r.read().unwrap() {
                    notes += u64::from(m.note != vecbox::capture::Note::None);
                    copies += 1;
                }
            }
            COUNTING.with(|c| c.set(round == 1));
        }
        COUNTING.with(|c| c.set(false));
    }
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "allocations on the impaired packet path"
    );
    let rx_st = rx.impairment(vecbox::impair::Direction::Rx).unwrap();
    let tx_st = tx.impairment(vecbox::impair::Direction::Tx).unwrap();
    let segs = 20_000u64.div_ceil(1448);
    assert_eq!(rx_st.counters.frames_in, 2 * 20 * 32);
    assert_eq!(
        tx_st.counters.frames_in,
        rx_st.counters.frames_out + 2 * 20 * segs
    );
    assert_eq!(sent, tx_st.counters.frames_out);
    assert!(rx_st.counters.corrupted > 0 && tx_st.counters.duplicated > 0);
    if capture {
        // Frames at pre and post on both ports, and the stages' verdicts as notes.
        assert!(copies >= 2 * rx_st.counters.frames_in, "{copies} copies");
        assert!(notes > 0, "no notes in {copies} copies");
    }
    rx.release_all(&mut pool);
    tx.release_all(&mut pool);
    assert_eq!(pool.available(), pool.capacity());
}

/// The ring receive path (`transport=raw,ring=1`) allocates nothing either. Runs in a
/// fresh, anonymous network namespace of this test's thread (gone when it ends): UDP
/// datagrams to 127.0.0.1 pass `lo`, where the port's ring sees them arrive.
#[test]
fn ring_receive_does_not_allocate() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET): run as root");
    let st = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("the test needs `ip`");
    assert!(st.success());
    let spec: Spec = "vec0:transport=raw,ifname=lo,ring=1,depth=32"
        .parse()
        .unwrap();
    let mut rx = transport::open(&spec).unwrap();
    let mut pool = Pool::new(rx.buffers_needed(), rx.caps.rx_slot);
    let mut frames = Vec::with_capacity(64);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = sock.local_addr().unwrap();
    let payload = [7u8; 18];
    let mut total = 0u64;
    for round in 0..2 {
        COUNTING.with(|c| c.set(round == 1));
        for _ in 0..20 {
            for _ in 0..32 {
                sock.send_to(&payload, dst).unwrap();
            }
            // Blocks reach user space when full or after the 1 ms retire timer.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut got = 0;
            while got < 32 && std::time::Instant::now() < deadline {
                let n = rx.recv(&mut pool, &mut frames).unwrap();
                got += n;
                for f in frames.drain(..) {
                    pool.release(f.buf);
                }
                if n == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
            assert!(got >= 32, "ring delivered {got} of 32");
            total += got as u64;
        }
        COUNTING.with(|c| c.set(false));
    }
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "allocations on the ring path"
    );
    assert!(rx.uses_ring());
    assert_eq!(rx.stats.rx_packets, total);
    rx.release_all(&mut pool);
    assert_eq!(pool.available(), pool.capacity());
}
