//! The connection table's index: a fixed array of 8-way buckets, each key with two
//! candidate buckets chosen by a keyed hash (SipHash-1-3 with a random key per table).
//!
//! - No rehash, ever: the array is sized once for the table's capacity at half load,
//!   so an insert or removal never moves more than one entry.
//! - Bounded probes: a lookup reads two buckets (16 ways: a 16-bit tag each, then the
//!   connection itself on a tag match), whatever the table holds.
//! - Crafted flows cannot aim at a bucket: without the key, which flows share buckets
//!   is unknown. Should both candidate buckets be full anyway, the caller evicts one of
//!   their 16 entries (counted) instead of probing further.

use std::hash::{BuildHasher, Hash, RandomState};

/// Ways per bucket.
pub const WAYS: usize = 8;

#[derive(Clone, Copy, Default)]
struct Bucket {
    tag: [u16; WAYS],
    /// Slot + 1, or 0 when the way is empty.
    slot: [u32; WAYS],
}

/// A keyed hash of a flow and where it may live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hashed {
    b: [u32; 2],
    tag: u16,
}

/// The index.
pub struct Index {
    buckets: Box<[Bucket]>,
    mask: u64,
    state: RandomState,
}

impl Index {
    /// An index for `entries` keys at most, at half load or less.
    pub fn new(entries: usize) -> Index {
        let n = (2 * entries).div_ceil(WAYS).next_power_of_two().max(2);
        Index {
            buckets: vec![Bucket::default(); n].into_boxed_slice(),
            mask: n as u64 - 1,
            state: RandomState::new(),
        }
    }

    /// Hash `k` with this table's key.
    #[inline]
    pub fn hash<K: Hash>(&self, k: &K) -> Hashed {
        let h = self.state.hash_one(k);
        let b0 = h & self.mask;
        // Flipping the lowest bit at least: the two buckets always differ.
        let b1 = b0 ^ (((h >> 32) & self.mask) | 1);
        Hashed {
            b: [b0 as u32, b1 as u32],
            tag: (h >> 16) as u16,
        }
    }

    /// The slot whose key `eq` accepts among the entries tagged like `h`, and its
    /// position.
    #[inline]
    pub fn find(&self, h: Hashed, mut eq: impl FnMut(u32) -> bool) -> Option<(u32, u32)> {
        for b in h.b {
            let bucket = &self.buckets[b as usize];
            for w in 0..WAYS {
                let s = bucket.slot[w];
                if s != 0 && bucket.tag[w] == h.tag && eq(s - 1) {
                    return Some((s - 1, b * WAYS as u32 + w as u32));
                }
            }
        }
        None
    }

    /// Put `slot` under `h`; its position, or `None` when both buckets are full.
    pub fn insert(&mut self, h: Hashed, slot: u32) -> Option<u32> {
        // The emptier bucket, so both fill evenly.
        let free = |b: &Bucket| b.slot.iter().filter(|s| **s == 0).count();
        let [b0, b1] = h.b;
        let b = if free(&self.buckets[b1 as usize]) > free(&self.buckets[b0 as usize]) {
            b1
        } else {
            b0
        };
        let bucket = &mut self.buckets[b as usize];
        let w = bucket.slot.iter().position(|s| *s == 0)?;
        bucket.slot[w] = slot + 1;
        bucket.tag[w] = h.tag;
        Some(b * WAYS as u32 + w as u32)
    }

    /// The slots in both candidate buckets of `h` (to pick one to evict).
    pub fn candidates(&self, h: Hashed) -> impl Iterator<Item = u32> + '_ {
        h.b.into_iter().flat_map(move |b| {
            self.buckets[b as usize]
                .slot
                .iter()
                .filter(|s| **s != 0)
                .map(|s| s - 1)
        })
    }

    /// Empty position `pos`.
    pub fn remove(&mut self, pos: u32) {
        let (b, w) = (pos as usize / WAYS, pos as usize % WAYS);
        self.buckets[b].slot[w] = 0;
    }

    /// Bytes of the bucket array.
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }
}
