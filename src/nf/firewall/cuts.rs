//! Building the decision tree of [`super::tree`] (at start, and whenever the rules are
//! re-read; never on the packet path).
//!
//! A node keeps the rules that overlap its box, minus those an earlier rule subsumes
//! inside the box (they can never be the first match there) and everything after a rule
//! that covers the whole box; at [`LEAF_MAX`] rules or fewer it becomes a leaf.
//! Otherwise it cuts the dimension, into the number of parts, that leaves the fewest
//! rules in the fullest child, within a space budget of [`SPACE_FACTOR`] times its rule
//! count for the children together: a rule spanning several children is copied into
//! each, except that neighbouring children that no rule boundary separates share one
//! subtree. Identical leaves are stored once.

use std::collections::HashMap;

use super::fields::{
    Axes, CT, Coord, DIMS, DPORT, DST, ICMP, IN, OUT, PROTO, SPORT, SRC, Space, top,
};
use super::tree::{Entry, LEAF, Node, Test, Tree, TreeStats};

/// Rules per leaf at most (unless no cut separates them within the budget).
pub const LEAF_MAX: usize = 2;
/// Rules in a node's children, plus half a rule per child pointer, may reach this many
/// times the node's rules.
pub const SPACE_FACTOR: usize = 4;
/// Cuts per node at most (2^bits).
const MAX_BITS: u8 = 16;
/// Earlier rules each rule is checked against for subsumption, at most.
const SUBSUME_WINDOW: usize = 256;
/// Deeper than this a node becomes a leaf whatever its size.
const MAX_DEPTH: usize = 24;
/// The order in which a leaf tests dimensions: the most selective first.
const TEST_ORDER: [usize; DIMS] = [SRC, DST, DPORT, SPORT, PROTO, CT, IN, OUT, ICMP];

/// A box: per dimension, `lo[d] ..= hi[d]`.
#[derive(Clone, Copy)]
struct Bx {
    lo: [u128; DIMS],
    hi: [u128; DIMS],
}

/// `true` if the (merged) ranges in `set` cover `lo..=hi`.
fn covers(set: &[(u128, u128)], lo: u128, hi: u128) -> bool {
    set.iter().any(|&(a, b)| a <= lo && hi <= b)
}

/// A cut of one dimension of a box: below `base`, `parts` parts of 2^shift values, and
/// above (up to the box's end).
#[derive(Clone, Copy, Debug)]
struct Cut {
    lo: u128,
    hi: u128,
    base: u128,
    shift: u8,
    parts: usize,
}

impl Cut {
    /// Children: below, the parts, above.
    fn children(&self) -> usize {
        self.parts + 2
    }

    /// The child holding `v`.
    fn child(&self, v: u128) -> usize {
        if v < self.base {
            0
        } else {
            (((v - self.base) >> self.shift).min(self.parts as u128) + 1) as usize
        }
    }

    /// Values of child `c` (`None` if it has none).
    fn span(&self, c: usize) -> Option<(u128, u128)> {
        let size = 1u128.checked_shl(u32::from(self.shift))?;
        let part = |i: usize| self.base.checked_add((i as u128).checked_mul(size)?);
        let (a, b) = match c {
            0 => (self.lo, self.base.checked_sub(1)?),
            c if c <= self.parts => (part(c - 1)?, part(c).map_or(u128::MAX, |v| v - 1)),
            _ => (part(self.parts)?, self.hi),
        };
        let (a, b) = (a.max(self.lo), b.min(self.hi));
        (a <= b).then_some((a, b))
    }
}

type LeafKey<V> = Vec<(u32, u64, u64, Vec<Test<V>>)>;

const PLACEHOLDER: u8 = LEAF;

struct Builder<'a, V> {
    space: &'a Space,
    axes: &'a Axes,
    t: Tree<V>,
    leaves: HashMap<LeafKey<V>, Node<V>>,
    /// Bytes the tree may take; past them the build is abandoned.
    limit: usize,
}

#[derive(Default)]
struct Measure {
    counts: Vec<i64>,
    split: Vec<bool>,
}

impl<V: Coord> Builder<'_, V> {
    fn leaf(&mut self, rules: &[u32], bx: &Bx) -> Node<V> {
        // Per rule: (mask, value) of the small fields it needs equal to one value, then
        // its range tests (dimension, more ranges of it follow, low, high).
        let mut key: LeafKey<V> = Vec::with_capacity(rules.len());
        for &r in rules {
            let (mut mask, mut value) = (0u64, 0u64);
            let mut tests = Vec::new();
            for d in TEST_ORDER {
                let set = self.space.set(r, d);
                let (lo, hi) = (bx.lo[d], bx.hi[d]);
                if covers(set, lo, hi) {
                    continue;
                }
                let clipped: Vec<(u128, u128)> = set
                    .iter()
                    .filter(|&&(a, b)| a <= hi && lo <= b)
                    .map(|&(a, b)| (a.max(lo), b.min(hi)))
                    .collect();
                if let (Some(at), [(a, b)]) = (self.packed_at(d), &clipped[..])
                    && a == b
                {
                    mask |= (top(self.space.width[d]) as u64) << at;
                    value |= (*a as u64) << at;
                    continue;
                }
                let last = clipped.len() - 1;
                for (i, (a, b)) in clipped.into_iter().enumerate() {
                    tests.push(Test {
                        lo: V::from_wide(a),
                        hi: V::from_wide(b),
                        dim: d as u8,
                        alt: i < last,
                    });
                }
            }
            key.push((r, mask, value, tests));
        }
        if let Some(&n) = self.leaves.get(&key) {
            return n;
        }
        let t = &mut self.t;
        let first = t.entries.len() as u32;
        for (rule, mask, value, tests) in &key {
            let at = t.tests.len() as u32;
            t.tests.extend_from_slice(tests);
            t.entries.push(Entry {
                mask: *mask,
                value: *value,
                rule: *rule,
                at,
                len: tests.len() as u32,
            });
        }
        t.stats.leaves += 1;
        t.stats.largest_leaf = t.stats.largest_leaf.max(rules.len());
        let n = Node {
            base: V::default(),
            dim: LEAF,
            shift: 0,
            at: first,
            len: rules.len() as u32,
        };
        self.leaves.insert(key, n);
        n
    }

    fn packed_at(&self, d: usize) -> Option<u8> {
        self.axes.packed_at(d)
    }

    /// Where the rule lists change along dimension `d` inside the box: the first and
    /// the last boundary (a range starts there, or ended just before), if any.
    fn changes(&self, rules: &[u32], bx: &Bx, d: usize) -> Option<(u128, u128)> {
        let (lo, hi) = (bx.lo[d], bx.hi[d]);
        let mut first: Option<(u128, u128)> = None;
        let mut add = |v: u128| {
            first = Some(first.map_or((v, v), |(a, b)| (a.min(v), b.max(v))));
        };
        for &r in rules {
            for &(a, b) in self.space.set(r, d) {
                if a > lo && a <= hi {
                    add(a);
                }
                if b >= lo && b < hi {
                    add(b + 1);
                }
            }
        }
        first
    }

    /// What a cut costs: (rules in the children, counting once a run of neighbours that
    /// no boundary separates — they share one subtree —, rules in the fullest child).
    fn measure(&self, rules: &[u32], d: usize, cut: &Cut, m: &mut Measure) -> (usize, usize) {
        let n = cut.children();
        m.counts.clear();
        m.counts.resize(n + 1, 0);
        m.split.clear();
        m.split.resize(n + 1, false);
        let mark = |split: &mut Vec<bool>, v: u128| {
            let c = cut.child(v);
            split[c] = true;
            if cut.span(c).is_some_and(|(a, _)| a != v) {
                split[c + 1] = true;
            }
        };
        for &r in rules {
            let mut next = 0usize;
            for &(a, b) in self.space.set(r, d) {
                if b < cut.lo || a > cut.hi {
                    continue;
                }
                if a > cut.lo {
                    mark(&mut m.split, a);
                }
                if b < cut.hi {
                    mark(&mut m.split, b + 1);
                }
                let c0 = cut.child(a.max(cut.lo)).max(next);
                let c1 = cut.child(b.min(cut.hi));
                if c0 > c1 {
                    continue;
                }
                m.counts[c0] += 1;
                m.counts[c1 + 1] -= 1;
                next = c1 + 1;
            }
        }
        let (mut run, mut total, mut max) = (0i64, 0usize, 0usize);
        for i in 0..n {
            run += m.counts[i];
            if i == 0 || m.split[i] {
                total += run as usize;
            }
            max = max.max(run as usize);
        }
        (total, max)
    }

    /// `true` if every packet in `bx` that rule `r` matches is matched by `q` too.
    fn subsumes(&self, q: u32, r: u32, bx: &Bx) -> bool {
        (0..DIMS).all(|d| {
            let (lo, hi) = (bx.lo[d], bx.hi[d]);
            let qs = self.space.set(q, d);
            self.space
                .set(r, d)
                .iter()
                .filter(|&&(a, b)| a <= hi && lo <= b)
                .all(|&(a, b)| covers(qs, a.max(lo), b.min(hi)))
        })
    }

    fn node(&mut self, rules: &[u32], bx: &Bx, depth: usize) -> Node<V> {
        if self.t.bytes() > self.limit {
            // Abandoned: unwind with empty leaves.
            return self.leaf(&[], bx);
        }
        // A rule that an earlier one matches wherever it does, inside this box, is
        // never the first match here: drop it (checked against the first
        // SUBSUME_WINDOW rules kept); nothing after a rule covering the box matters.
        let mut kept: Vec<u32> = Vec::with_capacity(rules.len());
        for &r in rules {
            let window = &kept[..kept.len().min(SUBSUME_WINDOW)];
            if window.iter().any(|&q| self.subsumes(q, r, bx)) {
                continue;
            }
            let full = (0..DIMS).all(|d| covers(self.space.set(r, d), bx.lo[d], bx.hi[d]));
            kept.push(r);
            if full {
                break;
            }
        }
        let rules = &kept[..];
        self.t.stats.depth = self.t.stats.depth.max(depth);
        if rules.len() <= LEAF_MAX || depth >= MAX_DEPTH {
            return self.leaf(rules, bx);
        }
        let budget = SPACE_FACTOR * rules.len();
        let mut best: Option<(usize, usize, usize, Cut)> = None; // (fullest, cost, dim, cut)
        let mut m = Measure::default();
        for d in 0..DIMS {
            let Some((first, last)) = self.changes(rules, bx, d) else {
                continue;
            };
            // The region where the lists change, in parts of 2^shift values.
            let len = (last - first).max(1);
            let need = (128 - (len - 1).leading_zeros()) as u8;
            for bits in 0..=need.min(MAX_BITS) {
                let shift = need - bits;
                if u32::from(shift) >= V::BITS {
                    continue;
                }
                let parts = len.div_ceil(1u128 << shift) as usize;
                let cut = Cut {
                    lo: bx.lo[d],
                    hi: bx.hi[d],
                    base: first,
                    shift,
                    parts,
                };
                let (total, max) = self.measure(rules, d, &cut, &mut m);
                let cost = total + cut.children() / 2;
                if bits > 0 && cost > budget {
                    break;
                }
                if max < rules.len() && best.is_none_or(|b| (max, cost) < (b.0, b.1)) {
                    best = Some((max, cost, d, cut));
                }
            }
        }
        let Some((_, _, d, cut)) = best else {
            return self.leaf(rules, bx);
        };
        let n = cut.children();
        let at = self.t.nodes.len();
        let placeholder = Node {
            base: V::default(),
            dim: PLACEHOLDER,
            shift: 0,
            at: 0,
            len: 0,
        };
        self.t.nodes.resize(at + n, placeholder);
        self.t.stats.nodes += 1;
        // Which children each rule spans, and which children a rule boundary crosses.
        let mut enter: Vec<Vec<u32>> = vec![Vec::new(); n + 1];
        let mut leave: Vec<Vec<u32>> = vec![Vec::new(); n + 1];
        let mut crossed = vec![false; n];
        for &r in rules {
            let mut open: Option<(usize, usize)> = None;
            for &(a, b) in self.space.set(r, d) {
                if b < cut.lo || a > cut.hi {
                    continue;
                }
                for v in [a, b.wrapping_add(1)] {
                    if v > cut.lo && v <= cut.hi {
                        let c = cut.child(v);
                        if cut.span(c).is_some_and(|(s, _)| s != v) {
                            crossed[c] = true;
                        }
                    }
                }
                let (c0, c1) = (cut.child(a.max(cut.lo)), cut.child(b.min(cut.hi)));
                open = match open {
                    Some((s, e)) if c0 <= e + 1 => Some((s, e.max(c1))),
                    Some((s, e)) => {
                        enter[s].push(r);
                        leave[e + 1].push(r);
                        Some((c0, c1))
                    }
                    None => Some((c0, c1)),
                };
            }
            if let Some((s, e)) = open {
                enter[s].push(r);
                leave[e + 1].push(r);
            }
        }
        // Children whose box no rule boundary crosses in `d` have subtrees that do not
        // depend on where they lie in `d`: one per distinct rule list.
        let mut shared: HashMap<Vec<u32>, Node<V>> = HashMap::new();
        let mut active = std::collections::BTreeSet::new();
        let mut last: Option<Node<V>> = None;
        for i in 0..n {
            let changed = !enter[i].is_empty() || !leave[i].is_empty();
            for r in &leave[i] {
                active.remove(r);
            }
            active.extend(enter[i].iter().copied());
            let Some((lo, hi)) = cut.span(i) else {
                // Never reached: any leaf will do.
                self.t.nodes[at + i] = self.leaf(&[], bx);
                last = None;
                continue;
            };
            let clean = !crossed[i];
            let k = match last {
                Some(k) if clean && !changed => k,
                _ => {
                    let sub: Vec<u32> = active.iter().copied().collect();
                    match clean.then(|| shared.get(&sub)).flatten() {
                        Some(&k) => k,
                        None => {
                            let mut cb = *bx;
                            cb.lo[d] = lo;
                            cb.hi[d] = hi;
                            let k = self.node(&sub, &cb, depth + 1);
                            if clean {
                                shared.insert(sub, k);
                            }
                            k
                        }
                    }
                }
            };
            last = clean.then_some(k);
            self.t.nodes[at + i] = k;
        }
        Node {
            base: V::from_wide(cut.base),
            dim: d as u8,
            shift: cut.shift,
            at: at as u32,
            len: cut.parts as u32,
        }
    }
}

/// Build the tree over `rules` (indices in file order) of `space`, or `None` if it
/// would take more than `limit` bytes.
pub fn tree<V: Coord>(space: &Space, axes: &Axes, rules: &[u32], limit: usize) -> Option<Tree<V>> {
    let mut b = Builder {
        limit,
        space,
        axes,
        t: Tree {
            nodes: Vec::new(),
            entries: Vec::new(),
            tests: Vec::new(),
            stats: TreeStats {
                rules: rules.len(),
                ..TreeStats::default()
            },
        },
        leaves: HashMap::new(),
    };
    let bx = Bx {
        lo: [0; DIMS],
        hi: space.width.map(top),
    };
    // The root goes first.
    b.t.nodes.push(Node {
        base: V::default(),
        dim: PLACEHOLDER,
        shift: 0,
        at: 0,
        len: 0,
    });
    let root = b.node(rules, &bx, 0);
    b.t.nodes[0] = root;
    let mut t = b.t;
    t.stats.nodes += t.stats.leaves;
    t.stats.entries = t.entries.len();
    t.stats.bytes = t.bytes();
    (t.stats.bytes <= limit).then_some(t)
}
