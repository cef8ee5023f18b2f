use super::*;
use crate::sys::mmsg::SendRing;
use crate::transport::spec::{Kind, Spec};
use crate::wire::vnet;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A port over one end of a datagram socketpair, with the given framing.
fn port(framing: Framing, vector: bool, gso: bool) -> (Port, UnixDatagram) {
    let (a, b) = UnixDatagram::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let vnet = framing.has_vnet();
    let mut spec = Spec::new(0, Kind::Fd { fd: 0 });
    spec.common.gro = Some(gso);
    let opened = Opened {
        rx_fd: OwnedFd::from(a),
        tx_fd: None,
        rx_mode: if vector { RxMode::Mmsg } else { RxMode::Single },
        tx_mode: if vector { TxMode::Mmsg } else { TxMode::Single },
        framing,
        caps: Caps {
            rx_slot: super::super::rx_slot(&spec, if vnet { 10 } else { 0 }, gso),
            vnet,
            tx_gso: gso,
            max_tx_frame: super::super::max_tx_frame(&spec),
            depth: 8,
        },
        host_if: None,
        fallbacks: 0,
        dest: None,
        ring: None,
    };
    (Port::new("vec0".into(), spec, opened), b)
}

fn eth(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

#[test]
fn bad_frames_are_dropped_by_reason_and_the_rest_pass() {
    for vector in [true, false] {
        let (mut p, peer) = port(Framing::Vnet, vector, false);
        let mut pool = Pool::new(64, p.caps.rx_slot);
        let good = [&[0u8; 10][..], &eth(60)].concat();
        let mut bad_flags = good.clone();
        bad_flags[0] = 0x40;
        let mut gso_no_size = good.clone();
        gso_no_size[1] = 1;
        gso_no_size[0] = 1;
        let runt = [&[0u8; 10][..], &[1u8; 13]].concat();
        let tiny = [0u8; 6];
        let huge = [&[0u8; 10][..], &eth(p.caps.rx_slot)].concat();
        for m in [
            &good[..],
            &bad_flags,
            &gso_no_size,
            &runt,
            &tiny,
            &huge,
            &good,
        ] {
            peer.send(m).unwrap();
        }
        let mut frames = Vec::new();
        let mut got = 0;
        let mut accepted = Vec::new();
        while got < 7 {
            let n = p.recv(&mut pool, &mut frames).unwrap();
            assert!(n > 0, "vector={vector}: stalled after {got}");
            got += n;
            accepted.append(&mut frames);
        }
        assert_eq!(accepted.len(), 2, "vector={vector}");
        for f in &accepted {
            assert_eq!(pool.frame(f), &eth(60)[..]);
            pool.release(f.buf);
        }
        assert_eq!(p.stats.dropped(DropReason::BadVnetHeader), 2);
        assert_eq!(p.stats.dropped(DropReason::Runt), 2);
        assert_eq!(p.stats.dropped(DropReason::Oversize), 1);
        assert_eq!(p.stats.rx_packets, 2);
        p.release_all(&mut pool);
        assert_eq!(pool.available(), pool.capacity(), "no buffer leaked");
    }
}

#[test]
fn transmit_adds_the_vnet_header_and_completes_checksums_without_one() {
    // NEEDS_CSUM frame through a bare port: the checksum is completed in software.
    let (mut p, peer) = port(Framing::Bare, true, false);
    let mut pool = Pool::new(16, 2048);
    let mut pkt = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1, 2)
        .write(&mut pkt, &[7u8; 100])
        .unwrap();
    let want = pkt.clone();
    // Replace the UDP checksum with the pseudo-header sum, as CHECKSUM_PARTIAL does.
    let pseudo = crate::wire::checksum::fold(crate::wire::checksum::pseudo_v4(
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        17,
        108,
    ));
    pkt[40..42].copy_from_slice(&pseudo.to_be_bytes());
    let id = pool.alloc().unwrap();
    pool.buf_mut(id)[..pkt.len()].copy_from_slice(&pkt);
    let meta = vnet::Repr {
        csum: Some(vnet::Csum {
            start: 34,
            offset: 6,
        }),
        ..vnet::Repr::NONE
    };
    p.enqueue(
        &mut pool,
        Frame {
            buf: id,
            off: 0,
            len: pkt.len() as u32,
            vnet: meta,
        },
    );
    assert_eq!(p.flush(&mut pool), Flush::Done);
    let mut buf = [0u8; 2048];
    let n = peer.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &want[..]);
    assert_eq!(p.stats.tx_csum_completed, 1);
    assert_eq!(pool.available(), pool.capacity());

    // The same frame through a vnet port keeps the checksum pending in the header.
    let (mut v, peer) = port(Framing::Vnet, true, false);
    let id = pool.alloc().unwrap();
    pool.buf_mut(id)[..pkt.len()].copy_from_slice(&pkt);
    v.enqueue(
        &mut pool,
        Frame {
            buf: id,
            off: 0,
            len: pkt.len() as u32,
            vnet: meta,
        },
    );
    v.flush(&mut pool);
    let n = peer.recv(&mut buf).unwrap();
    assert_eq!(vnet::Repr::parse_bytes(&buf[..10]).unwrap(), meta);
    assert_eq!(&buf[10..n], &pkt[..]);
}

/// A port over a UDP socket on 127.0.0.1 with L2TPv3-over-UDP framing.
fn udp_port(cfg: crate::wire::l2tpv3::Config) -> (Port, std::net::SocketAddr) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    let addr = s.local_addr().unwrap();
    let spec = Spec::new(0, Kind::Fd { fd: 0 });
    let opened = Opened {
        rx_fd: OwnedFd::from(s),
        tx_fd: None,
        rx_mode: RxMode::Mmsg,
        tx_mode: TxMode::Mmsg,
        framing: Framing::l2tpv3(cfg, false),
        caps: Caps {
            rx_slot: 2048,
            vnet: false,
            tx_gso: false,
            max_tx_frame: super::super::max_tx_frame(&spec),
            depth: 64,
        },
        host_if: None,
        fallbacks: 0,
        dest: None,
        ring: None,
    };
    let mut p = Port::new("vec0".into(), spec, opened);
    p.enable_udp_offloads();
    (p, addr)
}

#[test]
fn udp_segmentation_groups_and_gro_buffers_round_trip() {
    let cfg = crate::wire::l2tpv3::Config {
        udp: true,
        rx_session: 5,
        tx_session: 5,
        counter: true,
        ..Default::default()
    };
    let (mut rx, rx_addr) = udp_port(cfg);
    let (mut tx, _) = udp_port(cfg);
    tx.send_ring = SendRing::with_items(64, 64 + MAX_SEGMENTS, Some(rx_addr.into()));
    let mut pool = Pool::new(256, 70_000);
    let mut pkt = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 100, 1000)
        .ack(1)
        .write(&mut pkt, &vec![3u8; 30_000])
        .unwrap();
    let id = pool.alloc().unwrap();
    pool.buf_mut(id)[..pkt.len()].copy_from_slice(&pkt);
    let mut meta = vnet::Repr {
        gso_type: vnet::GsoType::TcpV4,
        gso_size: 1448,
        data_valid: true,
        ..vnet::Repr::NONE
    };
    let f = Frame {
        buf: id,
        off: 0,
        len: pkt.len() as u32,
        vnet: meta,
    };
    offload::normalize_rx(pool.frame_mut(&f), &mut meta).unwrap();
    tx.enqueue(&mut pool, Frame { vnet: meta, ..f });
    assert_eq!(tx.flush(&mut pool), Flush::Done);
    let segs = 30_000usize.div_ceil(1448) as u64;
    assert_eq!(tx.stats.tx_packets, segs);
    assert!(tx.stats.tx_udp_gso_sends >= 1, "{:?}", tx.stats);
    let mut frames = Vec::new();
    let mut got = Vec::new();
    for _ in 0..50 {
        rx.recv(&mut pool, &mut frames).unwrap();
        got.append(&mut frames);
        if rx.stats.rx_packets >= segs {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(rx.stats.rx_packets, segs, "{:?}", rx.stats);
    assert!(rx.stats.rx_gro_coalesced >= 1, "{:?}", rx.stats);
    // The segments of each GRO buffer were joined back into TCP GSO frames.
    assert!(rx.stats.rx_coalesced >= 2, "{:?}", rx.stats);
    assert!((got.len() as u64) < segs);
    let mut payload = 0;
    for f in &got {
        let s = etherparse::SlicedPacket::from_ethernet(pool.frame(f)).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else {
            panic!()
        };
        payload += t.payload().len();
        if f.vnet.is_gso() {
            assert_eq!(f.vnet.gso_size, 1448);
        }
    }
    for f in &got {
        pool.release(f.buf);
    }
    assert_eq!(payload, 30_000);
    rx.release_all(&mut pool);
    tx.release_all(&mut pool);
    assert_eq!(pool.available(), pool.capacity(), "no buffer leaked");
}

proptest::proptest! {
    /// Every framing's receive path, fed arbitrary datagrams through a real socket:
    /// nothing panics, and each datagram is either a frame or a counted drop.
    #[test]
    fn receive_accounts_for_every_datagram(
        which in 0u8..4,
        msgs in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 1..8),
    ) {
        let framing = match which {
            0 => Framing::Bare,
            1 => Framing::Vnet,
            2 => Framing::gre(crate::wire::gre::Config { keys: Some((1, 1)), ..Default::default() }, true),
            _ => Framing::l2tpv3(crate::wire::l2tpv3::Config { udp: true, rx_session: 1, tx_session: 1, ..Default::default() }, false),
        };
        let (mut p, peer) = port(framing, true, false);
        let mut pool = Pool::new(32, 2048);
        for m in &msgs {
            peer.send(m).unwrap();
        }
        let mut frames = Vec::new();
        let mut got = 0;
        while got < msgs.len() {
            let n = p.recv(&mut pool, &mut frames).unwrap();
            proptest::prop_assert!(n > 0);
            got += n;
            for f in frames.drain(..) {
                pool.release(f.buf);
            }
        }
        proptest::prop_assert_eq!(p.stats.rx_packets + p.stats.dropped_total(), msgs.len() as u64);
        p.release_all(&mut pool);
        proptest::prop_assert_eq!(pool.available(), pool.capacity());
    }
}

#[test]
fn gso_segments_are_cut_to_the_output_mtu() {
    let (mut p, peer) = port(Framing::Bare, true, false);
    p.caps.max_tx_frame = 1018;
    let mut pool = Pool::new(16, 70_000);
    let mut pkt = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 100, 1000)
        .write(&mut pkt, &vec![7u8; 10_000])
        .unwrap();
    let id = pool.alloc().unwrap();
    pool.buf_mut(id)[..pkt.len()].copy_from_slice(&pkt);
    let mut meta = vnet::Repr {
        gso_type: vnet::GsoType::TcpV4,
        gso_size: 1448,
        data_valid: true,
        ..vnet::Repr::NONE
    };
    let f = Frame {
        buf: id,
        off: 0,
        len: pkt.len() as u32,
        vnet: meta,
    };
    offload::normalize_rx(pool.frame_mut(&f), &mut meta).unwrap();
    p.enqueue(&mut pool, Frame { vnet: meta, ..f });
    assert_eq!(p.flush(&mut pool), Flush::Done);
    let mut buf = [0u8; 2048];
    let mut payload = 0;
    while let Ok(n) = peer.recv(&mut buf) {
        assert!(n <= 1018, "segment of {n} bytes");
        payload += n - 54;
    }
    assert_eq!(payload, 10_000);
    assert_eq!(p.stats.dropped_total(), 0);
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn gso_frames_are_segmented_for_ports_without_gso() {
    let (mut p, peer) = port(Framing::Bare, true, false);
    let mut pool = Pool::new(16, 70_000);
    let mut pkt = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 100, 1000)
        .write(&mut pkt, &vec![9u8; 20_000])
        .unwrap();
    let id = pool.alloc().unwrap();
    pool.buf_mut(id)[..pkt.len()].copy_from_slice(&pkt);
    let mut meta = vnet::Repr {
        gso_type: vnet::GsoType::TcpV4,
        gso_size: 1448,
        data_valid: true,
        ..vnet::Repr::NONE
    };
    offload::normalize_rx(
        pool.frame_mut(&Frame {
            buf: id,
            off: 0,
            len: pkt.len() as u32,
            vnet: meta,
        }),
        &mut meta,
    )
    .unwrap();
    p.enqueue(
        &mut pool,
        Frame {
            buf: id,
            off: 0,
            len: pkt.len() as u32,
            vnet: meta,
        },
    );
    assert_eq!(p.flush(&mut pool), Flush::Done);
    let segs = 20_000usize.div_ceil(1448);
    assert_eq!(p.stats.tx_packets, segs as u64);
    assert_eq!(p.stats.tx_gso_segments, segs as u64);
    let mut payload = 0;
    let mut buf = [0u8; 2048];
    for _ in 0..segs {
        let n = peer.recv(&mut buf).unwrap();
        assert!(n <= 1514);
        let s = etherparse::SlicedPacket::from_ethernet(&buf[..n]).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else {
            panic!()
        };
        payload += t.payload().len();
    }
    assert_eq!(payload, 20_000);
    assert_eq!(
        pool.available(),
        pool.capacity(),
        "segment references released"
    );
}
