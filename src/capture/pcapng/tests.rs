use super::*;

/// The output so far, buffered blocks included.
fn flushed(w: &mut Writer<Vec<u8>>) -> &Vec<u8> {
    w.flush().unwrap();
    w.get_ref()
}

fn section(app: &str) -> Section<'_> {
    Section {
        application: Some(app),
        ..Section::default()
    }
}

#[test]
fn section_header_bytes() {
    let mut w = Writer::new(Vec::new(), &section("vb")).unwrap();
    #[rustfmt::skip]
    let want: &[u8] = &[
        0x0a, 0x0d, 0x0d, 0x0a, 0x28, 0, 0, 0,        // SHB, 40 bytes
        0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,           // byte-order magic, version 1.0
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // section length unknown
        4, 0, 2, 0, b'v', b'b', 0, 0,                 // shb_userappl "vb"
        0, 0, 0, 0,                                   // opt_endofopt
        0x28, 0, 0, 0,
    ];
    assert_eq!(flushed(&mut w).as_slice(), want);
}

#[test]
fn interface_block_bytes() {
    let mut w = Writer::new(Vec::new(), &Section::default()).unwrap();
    let start = flushed(&mut w).len();
    let id = w
        .add_interface(&Interface {
            name: "a/b:c",
            description: "",
            snaplen: 0x40000,
            filter: None,
        })
        .unwrap();
    assert_eq!(id, 0);
    #[rustfmt::skip]
    let want: &[u8] = &[
        1, 0, 0, 0, 0x2c, 0, 0, 0,                    // IDB, 44 bytes
        1, 0, 0, 0, 0, 0, 4, 0,                       // Ethernet, snaplen 262144
        2, 0, 5, 0, b'a', b'/', b'b', b':', b'c', 0, 0, 0, // if_name
        9, 0, 1, 0, 9, 0, 0, 0,                       // if_tsresol = 9 (ns)
        0, 0, 0, 0,
        0x2c, 0, 0, 0,
    ];
    assert_eq!(&flushed(&mut w)[start..], want);
    let second = w
        .add_interface(&Interface {
            name: "x",
            description: "veth link",
            snaplen: 0,
            filter: Some("icmp"),
        })
        .unwrap();
    assert_eq!((second, w.interfaces()), (1, 2));
    let tail = &flushed(&mut w)[start + want.len()..];
    // if_filter: type byte 0 (libpcap string) then the expression.
    let f = [11u8, 0, 5, 0, 0, b'i', b'c', b'm', b'p', 0, 0, 0];
    assert!(tail.windows(f.len()).any(|x| x == f), "{tail:?}");
}

#[test]
fn enhanced_packet_block_bytes() {
    let mut w = Writer::new(Vec::new(), &Section::default()).unwrap();
    let start = flushed(&mut w).len();
    w.packet(&Packet {
        iface: 0,
        ts_ns: 0x0000_0001_0000_0002,
        data: &[0xaa, 0xbb, 0xcc],
        orig_len: 60,
        direction: Some(Direction::Inbound),
        id: Some(7),
        comment: Some("x"),
    })
    .unwrap();
    #[rustfmt::skip]
    let want: &[u8] = &[
        6, 0, 0, 0, 0x44, 0, 0, 0,                    // EPB, 68 bytes
        0, 0, 0, 0,                                   // interface 0
        1, 0, 0, 0, 2, 0, 0, 0,                       // timestamp high, low
        3, 0, 0, 0, 60, 0, 0, 0,                      // captured 3 of 60
        0xaa, 0xbb, 0xcc, 0,                          // data, padded
        1, 0, 1, 0, b'x', 0, 0, 0,                    // opt_comment
        2, 0, 4, 0, 1, 0, 0, 0,                       // epb_flags: inbound
        5, 0, 8, 0, 7, 0, 0, 0, 0, 0, 0, 0,           // epb_packetid 7
        0, 0, 0, 0,
        0x44, 0, 0, 0,
    ];
    assert_eq!(&flushed(&mut w)[start..], want);

    // Outbound, no options besides the flags; original length never below captured.
    let start = flushed(&mut w).len();
    w.packet(&Packet {
        iface: 1,
        ts_ns: 0,
        data: &[1, 2, 3, 4],
        orig_len: 0,
        direction: Some(Direction::Outbound),
        id: None,
        comment: None,
    })
    .unwrap();
    let b = &flushed(&mut w)[start..];
    assert_eq!(&b[20..28], &[4, 0, 0, 0, 4, 0, 0, 0]);
    assert_eq!(&b[32..40], &[2, 0, 4, 0, 2, 0, 0, 0]);
}

#[test]
fn statistics_block_bytes() {
    let mut w = Writer::new(Vec::new(), &Section::default()).unwrap();
    let start = flushed(&mut w).len();
    w.stats(&Stats {
        iface: 0,
        ts_ns: 5,
        start_ns: Some(3),
        received: 10,
        dropped: 2,
        ..Stats::default()
    })
    .unwrap();
    #[rustfmt::skip]
    let want: &[u8] = &[
        5, 0, 0, 0, 0x40, 0, 0, 0,                    // ISB, 64 bytes
        0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0,           // interface 0, timestamp 5
        2, 0, 8, 0, 0, 0, 0, 0, 3, 0, 0, 0,           // isb_starttime 3
        4, 0, 8, 0, 10, 0, 0, 0, 0, 0, 0, 0,          // isb_ifrecv 10
        5, 0, 8, 0, 2, 0, 0, 0, 0, 0, 0, 0,           // isb_ifdrop 2
        0, 0, 0, 0,
        0x40, 0, 0, 0,
    ];
    assert_eq!(&flushed(&mut w)[start..], want);
}

#[test]
fn the_stream_reads_back() {
    let mut w = Writer::new(Vec::new(), &section("vecbox")).unwrap();
    w.add_interface(&Interface {
        name: "lab/n:eth0",
        description: "veth",
        snaplen: 0,
        filter: None,
    })
    .unwrap();
    let frames: Vec<Vec<u8>> = (1..=5u8).map(|n| vec![n; 60 + usize::from(n)]).collect();
    for (i, f) in frames.iter().enumerate() {
        w.packet(&Packet {
            iface: 0,
            ts_ns: i as u64,
            data: f,
            orig_len: f.len() as u32,
            direction: Some(Direction::Outbound),
            id: Some(i as u64),
            comment: (i == 2).then_some("a comment of odd length"),
        })
        .unwrap();
        w.stats(&Stats {
            iface: 0,
            ts_ns: i as u64,
            received: i as u64,
            ..Stats::default()
        })
        .unwrap();
    }
    let bytes = w.into_inner().unwrap();
    assert_eq!(bytes.len() % 4, 0);
    let got = crate::filter::pcap::frames(&bytes).unwrap();
    assert_eq!(got.len(), 5);
    for (g, f) in got.iter().zip(&frames) {
        assert_eq!(g, &f.as_slice());
    }
}

/// Counts the `write` calls that reach it.
#[derive(Default)]
struct Calls {
    writes: usize,
    bytes: Vec<u8>,
}

impl Write for Calls {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        self.bytes.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_batch_goes_out_in_one_write_and_filled_frames_match_copied_ones() {
    let mut w = Writer::new(Calls::default(), &Section::default()).unwrap();
    w.add_interface(&Interface {
        name: "x",
        description: "",
        snaplen: 0,
        filter: None,
    })
    .unwrap();
    let frame = [7u8; 1499];
    let p = Packet {
        iface: 0,
        ts_ns: 9,
        data: &frame,
        orig_len: 1500,
        direction: Some(Direction::Inbound),
        id: Some(3),
        comment: None,
    };
    for _ in 0..100 {
        w.packet(&p).unwrap();
        w.packet_with(&Packet { data: &[], ..p }, frame.len(), |d| {
            d.copy_from_slice(&frame)
        })
        .unwrap();
    }
    assert_eq!(w.get_ref().writes, 0, "nothing written before the flush");
    w.flush().unwrap();
    assert_eq!(w.get_ref().writes, 1, "a batch is one write");
    assert_eq!(w.buffered(), 0);
    let out = w.into_inner().unwrap();
    let got = crate::filter::pcap::frames(&out.bytes).unwrap();
    assert_eq!(got.len(), 200);
    assert!(got.iter().all(|f| *f == frame.as_slice()));
    // A buffer past FLUSH_BYTES goes out without waiting for the flush.
    let mut w = Writer::new(Calls::default(), &Section::default()).unwrap();
    for _ in 0..(FLUSH_BYTES / 1500 + 2) {
        w.packet(&p).unwrap();
    }
    assert_eq!(w.get_ref().writes, 1);
    assert!(w.buffered() < FLUSH_BYTES);
}
