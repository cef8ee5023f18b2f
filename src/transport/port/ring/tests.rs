use super::*;
use proptest::prelude::*;

const PREFIX: usize = 10;

/// Build a block as the kernel lays one out: block header, then frames at 16-byte
/// aligned offsets, each a `tpacket3_hdr` with the MAC header at `tp_mac` and the vnet
/// header right before it.
fn block(frames: &[&[u8]], size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    let first = BLOCK_HEADER_LEN;
    b[12..16].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
    b[16..20].copy_from_slice(&(first as u32).to_ne_bytes());
    let mut at = first;
    for (i, f) in frames.iter().enumerate() {
        let mac = 92usize; // tpacket3_hdr + sockaddr_ll + 16, minus the MAC header, + vnet
        let total = (mac + f.len()).next_multiple_of(16);
        let next = if i + 1 == frames.len() { 0 } else { total };
        b[at..at + 4].copy_from_slice(&(next as u32).to_ne_bytes());
        b[at + 12..at + 16].copy_from_slice(&(f.len() as u32).to_ne_bytes());
        b[at + 16..at + 20].copy_from_slice(&(f.len() as u32).to_ne_bytes());
        b[at + 24..at + 26].copy_from_slice(&(mac as u16).to_ne_bytes());
        b[at + mac - PREFIX..at + mac].fill(0xee);
        b[at + mac..at + mac + f.len()].copy_from_slice(f);
        at += total;
    }
    b
}

fn walk(b: &[u8]) -> Vec<Vec<u8>> {
    let mut c = Cursor::open(b);
    let mut out = Vec::new();
    while let Some(f) = c.next(b, PREFIX) {
        assert_eq!(&b[f.mac - PREFIX..f.mac], &[0xee; PREFIX]);
        out.push(b[f.mac..f.mac + f.snaplen].to_vec());
    }
    out
}

#[test]
fn frames_of_a_block_come_out_in_order() {
    let a = [1u8; 60];
    let bb = [2u8; 1514];
    let c = [3u8; 61];
    let b = block(&[&a, &bb, &c], 4096);
    assert_eq!(walk(&b), vec![a.to_vec(), bb.to_vec(), c.to_vec()]);
}

#[test]
fn empty_block_has_no_frames() {
    let b = block(&[], 4096);
    assert!(walk(&b).is_empty());
}

#[test]
fn frame_reaching_past_the_block_ends_the_walk() {
    let a = [1u8; 60];
    let mut b = block(&[&a, &a], 4096);
    // Second frame claims a snap length beyond the block.
    let second = BLOCK_HEADER_LEN + (92 + 60usize).next_multiple_of(16);
    b[second + 12..second + 16].copy_from_slice(&10_000u32.to_ne_bytes());
    assert_eq!(walk(&b), vec![a.to_vec()]);
    // A MAC offset that leaves no room for the vnet header ends it too.
    let mut b = block(&[&a], 4096);
    b[BLOCK_HEADER_LEN + 24..BLOCK_HEADER_LEN + 26].copy_from_slice(&20u16.to_ne_bytes());
    assert!(walk(&b).is_empty());
}

#[test]
fn geometry_holds_the_largest_frame() {
    let slot = crate::transport::GSO_FRAME_MAX + 11;
    let g = geometry(RingMode::Blocks, slot, 1577, 4 << 20);
    assert!(g.block_size >= slot + BLOCK_HEADER_LEN + 92);
    assert_eq!(g.block_size % 4096, 0);
    assert_eq!(g.bytes(), 4 << 20);
    let g = geometry(RingMode::Blocks, 1600, 1600, 4 << 20);
    assert_eq!(g.block_size, MIN_BLOCK);
    // Too small for four blocks: four blocks all the same.
    let g = geometry(RingMode::Blocks, slot, 1577, 256 << 10);
    assert_eq!(g.blocks, 4);
    assert!(g.bytes() >= 4 * (slot + BLOCK_HEADER_LEN));
}

#[test]
fn frame_ring_slots_hold_an_mtu_frame_after_the_kernel_headers() {
    // MTU 1500: frames up to 1518 bytes; the kernel puts the MAC header 76 bytes into
    // the slot (vnet header included).
    let g = geometry(
        RingMode::Frames,
        crate::transport::GSO_FRAME_MAX + 11,
        1518,
        GUEST_RING_BYTES,
    );
    let Layout::Frames { frame_size } = g.layout else {
        panic!("{g:?}")
    };
    assert_eq!(frame_size, 1600);
    assert!(frame_size >= 76 + 1518);
    assert_eq!(g.block_size % 4096, 0);
    assert_eq!(g.bytes(), GUEST_RING_BYTES);
    let slots = (g.block_size / frame_size) * g.blocks;
    assert_eq!(slots, 5120, "slots of a guest's whole budget");
    let g = geometry(RingMode::Frames, 2000, 1518, default_bytes(2));
    assert_eq!(
        (g.block_size / frame_size) * g.blocks,
        2560,
        "an xconnect's port"
    );
    // A 25-port bridge: five blocks of 40 slots per port.
    let g = geometry(RingMode::Frames, 2000, 1518, default_bytes(25));
    assert_eq!((g.blocks, (g.block_size / frame_size) * g.blocks), (5, 200));
    // The smallest default ring: four blocks of 40 slots.
    let g = geometry(RingMode::Frames, 2000, 1518, default_bytes(64));
    assert_eq!((g.blocks, (g.block_size / frame_size) * g.blocks), (4, 160));
    // Jumbo MTU: larger slots, fewer of them.
    let g = geometry(RingMode::Frames, 70_000, 9018, GUEST_RING_BYTES);
    assert_eq!(g.layout, Layout::Frames { frame_size: 9152 });
    assert!(g.block_size >= 9152 && g.block_size.is_multiple_of(4096));
    assert!(g.bytes() <= GUEST_RING_BYTES);
}

#[test]
fn default_rings_share_the_guest_budget_with_a_floor() {
    assert_eq!(default_bytes(0), GUEST_RING_BYTES);
    assert_eq!(default_bytes(1), GUEST_RING_BYTES);
    assert_eq!(default_bytes(2), GUEST_RING_BYTES / 2);
    assert_eq!(default_bytes(32), MIN_PORT_RING_BYTES);
    assert_eq!(default_bytes(100), MIN_PORT_RING_BYTES);
    assert!((1..64).all(|n| default_bytes(n) * n <= GUEST_RING_BYTES.max(n * MIN_PORT_RING_BYTES)));
}

#[test]
fn ring_size_follows_the_ports_that_share_it() {
    let parse = |s: &str| s.parse::<Spec>().unwrap();
    let specs = [
        parse("vec0:transport=raw,ifname=a"),
        parse("vec1:transport=hybrid,ifname=b"),
        parse("vec2:transport=raw,ifname=c,ring=0"),
        parse("vec3:transport=raw,ifname=d,vec=0"),
        parse("vec4:transport=raw,ifname=e,ring_kib=1024"),
        parse("vec5:transport=tap,ifname=f"),
        parse("vec6:transport=raw,ifname=g,ring=2"),
    ];
    // vec0, vec1 and vec6 share; vec4 has its own size; the others have no ring.
    assert_eq!(sharing_ports(&specs), 3);
    assert_eq!(ring_bytes(&specs[0], 3), GUEST_RING_BYTES / 3);
    assert_eq!(ring_bytes(&specs[4], 3), 1 << 20);
}

/// A V2 slot as the kernel writes one: `tpacket2_hdr`, the vnet header, the frame at
/// `tp_mac`.
fn slot(frame: &[u8], size: usize, len: usize) -> Vec<u8> {
    let mut s = vec![0u8; size];
    let mac = 76usize;
    s[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    let snap = frame.len().min(size - mac);
    s[8..12].copy_from_slice(&(snap as u32).to_ne_bytes());
    s[12..14].copy_from_slice(&(mac as u16).to_ne_bytes());
    s[mac - PREFIX..mac].fill(0xee);
    s[mac..mac + snap].copy_from_slice(&frame[..snap]);
    s
}

#[test]
fn slot_frames_are_found_and_bad_headers_refused() {
    let f = [7u8; 60];
    let s = slot(&f, 2048, 60);
    let rf = slot_frame(&s, PREFIX).unwrap();
    assert_eq!((rf.mac, rf.snaplen, rf.len), (76, 60, 60));
    assert_eq!(&s[rf.mac - PREFIX..rf.mac], &[0xee; PREFIX]);
    // Cut by the kernel (socket buffer full): snaplen < len, reported as such.
    let big = [1u8; 3000];
    let s = slot(&big, 2048, 3000);
    let rf = slot_frame(&s, PREFIX).unwrap();
    assert!(rf.snaplen < rf.len);
    // A MAC offset inside the header or a length past the slot is refused.
    let mut s = slot(&f, 2048, 60);
    s[12..14].copy_from_slice(&20u16.to_ne_bytes());
    assert!(slot_frame(&s, PREFIX).is_none());
    let mut s = slot(&f, 2048, 60);
    s[8..12].copy_from_slice(&5000u32.to_ne_bytes());
    assert!(slot_frame(&s, PREFIX).is_none());
    assert!(slot_frame(&[0u8; 8], PREFIX).is_none());
}

proptest! {
    /// Whatever bytes a slot holds, the frame found lies inside it.
    #[test]
    fn garbage_slots_stay_in_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Some(f) = slot_frame(&bytes, PREFIX) {
            prop_assert!(f.mac + f.snaplen <= bytes.len());
            prop_assert!(f.mac >= PREFIX + 32);
        }
    }

    /// Whatever bytes a block holds, walking it never reads outside it or panics, and
    /// ends after at most `num_pkts` frames.
    #[test]
    fn walking_garbage_is_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut c = Cursor::open(&bytes);
        let n = u32_at(&bytes, 12).unwrap_or(0);
        let mut seen = 0u32;
        while let Some(f) = c.next(&bytes, PREFIX) {
            prop_assert!(f.mac + f.snaplen <= bytes.len());
            prop_assert!(f.mac >= PREFIX);
            seen += 1;
        }
        prop_assert!(seen <= n);
    }
}
