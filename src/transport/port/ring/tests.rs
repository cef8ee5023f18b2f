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
    let g = geometry(slot);
    assert!(g.block_size >= slot + BLOCK_HEADER_LEN + 92);
    assert_eq!(g.block_size % 4096, 0);
    assert_eq!(g.block_size * g.blocks, RING_BYTES);
    let g = geometry(1600);
    assert_eq!(g.block_size, MIN_BLOCK);
}

proptest! {
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
