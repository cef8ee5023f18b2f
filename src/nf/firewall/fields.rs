//! Rules and packets as points and boxes in a space of integer dimensions, the form the
//! decision tree of [`super::tree`] cuts.
//!
//! Nine dimensions: source and destination address (raw: 32 bits for IPv4, 128 for
//! IPv6), and seven small fields — source port, destination port, protocol, ICMP type,
//! connection state, input port and output port — each *compressed*: the boundaries of
//! every rule's ranges cut the field's domain into elementary intervals, and a value is
//! replaced by the number of its interval through a lookup table. A rule's condition on
//! a field becomes a union of inclusive ranges of interval numbers, exactly as selective
//! as before (every interval lies wholly inside or outside every rule range), and the
//! tree cuts a field that a rule set distinguishes by 3 values as a 2-bit dimension,
//! however far apart the values are.

use super::rules::{Packet, Rule};

/// Number of dimensions.
pub const DIMS: usize = 9;
pub const SRC: usize = 0;
pub const DST: usize = 1;
pub const SPORT: usize = 2;
pub const DPORT: usize = 3;
pub const PROTO: usize = 4;
pub const ICMP: usize = 5;
pub const CT: usize = 6;
pub const IN: usize = 7;
pub const OUT: usize = 8;

/// Size of each small field's domain: ports with one extra value for "no ports"
/// (fragments, other protocols), ICMP type with "none", the state bits, and port
/// indices below [`PORT_LIMIT`] with the output's extra value for "flooded".
const DOMAIN: [usize; DIMS] = [0, 0, 65537, 65537, 256, 257, 16, 256, 256];
/// Port indices at and above this are not encoded: such packets are scanned.
pub const PORT_LIMIT: usize = 255;

/// Inclusive range.
pub type Range = (u128, u128);

/// The largest value of a `w`-bit dimension.
#[inline]
pub fn top(w: u8) -> u128 {
    if w >= 128 {
        u128::MAX
    } else {
        (1u128 << w) - 1
    }
}

/// A rule's condition on each field in raw values (before compression), as sorted,
/// merged inclusive ranges; `None` when the rule can never match a packet of family
/// `v6` (or names a port index at or above [`PORT_LIMIT`], which only the scan sees).
pub fn raw_sets(r: &Rule, v6: bool) -> Option<[Vec<Range>; DIMS]> {
    if r.v6.is_some_and(|f| f != v6) {
        return None;
    }
    let abits = if v6 { 128 } else { 32 };
    let all = |n: usize| vec![(0u128, n as u128 - 1)];
    let prefixes = |list: &[super::rules::Prefix]| -> Vec<Range> {
        if list.is_empty() {
            return vec![(0, top(abits))];
        }
        list.iter()
            .filter(|p| p.v6 == v6)
            .map(|p| (p.addr, p.addr | (!p.mask & top(abits))))
            .collect()
    };
    let ports = |list: &[(u16, u16)]| -> Vec<Range> {
        if list.is_empty() {
            return all(DOMAIN[SPORT]);
        }
        list.iter()
            .map(|&(a, b)| (u128::from(a), u128::from(b)))
            .collect()
    };
    let one = |v: Option<usize>, d: usize| -> Vec<Range> {
        match v {
            None => all(DOMAIN[d]),
            Some(x) if x < PORT_LIMIT => vec![(x as u128, x as u128)],
            Some(_) => Vec::new(),
        }
    };
    let ct: Vec<Range> = (0u128..16)
        .filter(|v| r.ct == 0 || (*v as u8) & r.ct != 0)
        .map(|v| (v, v))
        .collect();
    let mut sets = [
        prefixes(&r.src),
        prefixes(&r.dst),
        ports(&r.sport),
        ports(&r.dport),
        r.proto
            .map(|p| vec![(u128::from(p), u128::from(p))])
            .unwrap_or_else(|| all(DOMAIN[PROTO])),
        r.icmp_type
            .map(|t| vec![(u128::from(t), u128::from(t))])
            .unwrap_or_else(|| all(DOMAIN[ICMP])),
        ct,
        one(r.in_port, IN),
        one(r.out_port, OUT),
    ];
    for s in &mut sets {
        normalize(s);
        if s.is_empty() {
            return None;
        }
    }
    Some(sets)
}

/// Sort and merge overlapping or adjacent ranges.
pub fn normalize(s: &mut Vec<Range>) {
    s.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(s.len());
    for &(a, b) in s.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *s = out;
}

/// A coordinate type: `u32` for IPv4 (every dimension fits), `u128` for IPv6.
pub trait Coord: Copy + Ord + Default + std::fmt::Debug + std::hash::Hash {
    const BITS: u32;
    /// `v`, which must fit.
    fn from_wide(v: u128) -> Self;
    /// `(self - base) >> shift`, at most `u32::MAX` (`self >= base`).
    fn offset(self, base: Self, shift: u8) -> usize;
}

impl Coord for u32 {
    const BITS: u32 = 32;
    #[inline]
    fn from_wide(v: u128) -> u32 {
        v as u32
    }
    #[inline]
    fn offset(self, base: u32, shift: u8) -> usize {
        ((self - base) >> shift) as usize
    }
}

impl Coord for u128 {
    const BITS: u32 = 128;
    #[inline]
    fn from_wide(v: u128) -> u128 {
        v
    }
    #[inline]
    fn offset(self, base: u128, shift: u8) -> usize {
        ((self - base) >> shift).min(u128::from(u32::MAX)) as usize
    }
}

/// Compression of one small field: value → number of its elementary interval.
#[derive(Clone, Debug)]
struct Axis {
    map: Box<[u32]>,
    classes: u32,
}

impl Axis {
    /// Intervals cut by the start and end of every range in `sets`.
    fn new(domain: usize, sets: &[&[Range]]) -> Axis {
        let mut starts = vec![false; domain + 1];
        starts[0] = true;
        for s in sets {
            for &(a, b) in *s {
                starts[a as usize] = true;
                starts[b as usize + 1] = true;
            }
        }
        let mut map = Vec::with_capacity(domain);
        let mut class = 0u32;
        for (v, &st) in starts[..domain].iter().enumerate() {
            if st && v > 0 {
                class += 1;
            }
            map.push(class);
        }
        Axis {
            map: map.into_boxed_slice(),
            classes: class + 1,
        }
    }

    /// Bits this axis needs.
    fn width(&self) -> u8 {
        (32 - (self.classes - 1).leading_zeros()) as u8
    }

    #[inline]
    fn get(&self, v: usize) -> u32 {
        self.map[v]
    }
}

/// The compression tables of the seven small fields, shared by both families.
pub struct Axes {
    axes: Vec<Axis>,
    /// Where each small field's compressed value sits in [`Point::packed`], when all
    /// seven fit in 64 bits.
    pack: Option<[u8; DIMS]>,
}

/// A packet as one value per dimension (in the first [`DIMS`] of 16 slots, so a
/// dimension number masked with 15 indexes it without a bounds check), and its small
/// fields packed in one word.
#[derive(Clone, Copy, Debug)]
pub struct Point<V> {
    pub x: [V; 16],
    pub packed: u64,
}

impl Axes {
    /// Tables for the boundaries of every rule in `rules`.
    pub fn new(rules: &[Rule]) -> Axes {
        let raw: Vec<[Vec<Range>; DIMS]> = rules
            .iter()
            .filter_map(|r| raw_sets(r, r.v6.unwrap_or(false)))
            .collect();
        let axes = (SPORT..DIMS)
            .map(|d| {
                let sets: Vec<&[Range]> = raw.iter().map(|s| s[d].as_slice()).collect();
                Axis::new(DOMAIN[d], &sets)
            })
            .collect::<Vec<Axis>>();
        let mut pack = [0u8; DIMS];
        let mut at = 0u32;
        for d in SPORT..DIMS {
            pack[d] = at as u8;
            at += u32::from(axes[d - SPORT].width());
        }
        Axes {
            axes,
            pack: (at <= 64).then_some(pack),
        }
    }

    /// Bit offset of small dimension `d` in [`Point::packed`], if packed.
    pub fn packed_at(&self, d: usize) -> Option<u8> {
        self.pack.filter(|_| d >= SPORT).map(|p| p[d])
    }

    /// Bits of each dimension for family `v6`.
    pub fn widths(&self, v6: bool) -> [u8; DIMS] {
        let a = if v6 { 128 } else { 32 };
        let mut w = [a; DIMS];
        for (w, a) in w[SPORT..].iter_mut().zip(&self.axes) {
            *w = a.width();
        }
        w
    }

    /// The compressed value of raw value `v` of small dimension `d`.
    fn class(&self, d: usize, v: u128) -> u128 {
        u128::from(self.axes[d - SPORT].get(v as usize))
    }

    /// The point of packet `p` (of family `V`), or `None` if a field lies outside what
    /// the dimensions encode (the caller then scans).
    #[inline]
    pub fn point<V: Coord>(&self, p: &Packet) -> Option<Point<V>> {
        if !p.v6 && ((p.src | p.dst) >> 32) != 0 {
            return None;
        }
        let out = match p.out_port {
            None => PORT_LIMIT,
            Some(o) if o < PORT_LIMIT => o,
            Some(_) => return None,
        };
        if p.in_port >= PORT_LIMIT {
            return None;
        }
        let (sp, dp) = match p.ports {
            Some((s, d)) => (usize::from(s), usize::from(d)),
            None => (65536, 65536),
        };
        let a = &self.axes;
        let small = [
            a[0].get(sp),
            a[1].get(dp),
            a[2].get(usize::from(p.proto)),
            a[3].get(p.icmp_type.map_or(256, usize::from)),
            a[4].get(usize::from(p.ct & 15)),
            a[5].get(p.in_port),
            a[6].get(out),
        ];
        let mut packed = 0u64;
        if let Some(at) = &self.pack {
            for (d, v) in small.iter().enumerate() {
                packed |= u64::from(*v) << at[d + SPORT];
            }
        }
        let mut x = [V::default(); 16];
        x[SRC] = V::from_wide(p.src);
        x[DST] = V::from_wide(p.dst);
        for (d, v) in small.iter().enumerate() {
            x[d + SPORT] = V::from_wide(u128::from(*v));
        }
        Some(Point { x, packed })
    }

    /// Bytes of the tables.
    pub fn bytes(&self) -> usize {
        self.axes.iter().map(|a| a.map.len() * 4).sum()
    }
}

/// Every rule of one family as compressed ranges per dimension (for building).
pub struct Space {
    /// Bits of each dimension.
    pub width: [u8; DIMS],
    ranges: Vec<Range>,
    /// Per rule (by index in the file): per dimension, (start, end) in `ranges`; `None`
    /// for rules that never match this family.
    spans: Vec<Option<[(u32, u32); DIMS]>>,
}

impl Space {
    /// Compile `rules` for family `v6`.
    pub fn new(rules: &[Rule], v6: bool, axes: &Axes) -> Space {
        let mut ranges = Vec::new();
        let spans = rules
            .iter()
            .map(|r| {
                let s = raw_sets(r, v6)?;
                let mut span = [(0u32, 0u32); DIMS];
                for d in 0..DIMS {
                    let start = ranges.len() as u32;
                    for &(a, b) in &s[d] {
                        if d >= SPORT {
                            ranges.push((axes.class(d, a), axes.class(d, b)));
                        } else {
                            ranges.push((a, b));
                        }
                    }
                    span[d] = (start, ranges.len() as u32);
                }
                Some(span)
            })
            .collect();
        Space {
            width: axes.widths(v6),
            ranges,
            spans,
        }
    }

    /// Indices of the rules that can match this family, in file order.
    pub fn rules(&self) -> Vec<u32> {
        (0..self.spans.len() as u32)
            .filter(|&r| self.spans[r as usize].is_some())
            .collect()
    }

    /// The ranges of rule `r` in dimension `d` (`r` must apply to this family).
    #[inline]
    pub fn set(&self, r: u32, d: usize) -> &[Range] {
        match &self.spans[r as usize] {
            Some(s) => &self.ranges[s[d].0 as usize..s[d].1 as usize],
            None => &[],
        }
    }
}
