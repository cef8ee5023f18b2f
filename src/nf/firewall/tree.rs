//! A packet-classification decision tree in the manner of HiCuts and HyperCuts: every
//! inner node cuts one dimension of its box, compacted to where the rules' boundaries
//! lie, into equal parts of 2^k values (plus one child below and one above that
//! region), so the child is found by a compare, a subtraction and a shift; every leaf
//! holds a few rules in file order, each with the range tests it still needs inside the
//! leaf's box. A lookup walks one path and tests one short list:
//! its cost depends on the depth and the leaf size, not on how many rules share a
//! field. How the tree is built: [`super::cuts`].

use super::fields::{Coord, Point};

pub(super) const LEAF: u8 = u8::MAX;

/// An inner node's children are `nodes[at]` for values below `base`, then one per part
/// of 2^shift values from `base` on (`len` of them), then one for the values above:
/// copies of the child nodes, so a step is one load.
#[derive(Clone, Copy, Debug)]
pub(super) struct Node<V> {
    pub base: V,
    /// Dimension cut, or [`LEAF`].
    pub dim: u8,
    pub shift: u8,
    /// First child in `nodes`, or first entry in `entries`.
    pub at: u32,
    /// Parts of an inner node; entries of a leaf.
    pub len: u32,
}

/// A rule in a leaf: its index, the small fields it needs equal to one value
/// (`packed & mask == value`), and its range tests (`tests[at..at + len]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Entry {
    pub mask: u64,
    pub value: u64,
    pub rule: u32,
    pub at: u32,
    pub len: u32,
}

/// `lo <= x[dim] <= hi`; when `alt`, the next test is another range of the same
/// dimension and passing either is enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Test<V> {
    pub lo: V,
    pub hi: V,
    pub dim: u8,
    pub alt: bool,
}

/// Shape of a built tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Rules the tree was built over.
    pub rules: usize,
    pub nodes: usize,
    pub leaves: usize,
    /// Rules in all leaves together (rules spanning several leaves count in each).
    pub entries: usize,
    pub depth: usize,
    pub largest_leaf: usize,
    pub bytes: usize,
}

/// The tree over one group of one family's rules.
pub struct Tree<V> {
    pub(super) nodes: Vec<Node<V>>,
    pub(super) entries: Vec<Entry>,
    pub(super) tests: Vec<Test<V>>,
    pub(super) stats: TreeStats,
}

impl<V: Coord> Tree<V> {
    /// The first rule (in file order) before `bound` matching point `x`.
    #[inline]
    pub fn lookup(&self, p: &Point<V>, bound: u32) -> Option<u32> {
        let x = &p.x;
        let mut n = self.nodes[0];
        while n.dim != LEAF {
            let v = x[usize::from(n.dim) & 15];
            let i = if v < n.base {
                0
            } else {
                v.offset(n.base, n.shift).min(n.len as usize) + 1
            };
            n = self.nodes[n.at as usize + i];
        }
        let leaf = &self.entries[n.at as usize..(n.at + n.len) as usize];
        leaf.iter()
            .take_while(|e| e.rule < bound)
            .find(|e| {
                p.packed & e.mask == e.value
                    && self.passes(&self.tests[e.at as usize..(e.at + e.len) as usize], x)
            })
            .map(|e| e.rule)
    }

    #[inline]
    fn passes(&self, tests: &[Test<V>], x: &[V; 16]) -> bool {
        let mut i = 0;
        while i < tests.len() {
            let t = tests[i];
            let v = x[usize::from(t.dim) & 15];
            if t.lo <= v && v <= t.hi {
                // Skip the other ranges of this dimension.
                while tests[i].alt {
                    i += 1;
                }
            } else if !t.alt {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Bytes of the nodes, leaf entries and tests so far.
    pub(super) fn bytes(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<Node<V>>()
            + self.entries.len() * std::mem::size_of::<Entry>()
            + self.tests.len() * std::mem::size_of::<Test<V>>()
    }

    /// The tree's shape.
    pub fn stats(&self) -> TreeStats {
        self.stats
    }

    /// Rules of the largest leaf (diagnostics and tests).
    pub fn largest_leaf(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| n.dim == LEAF)
            .max_by_key(|n| n.len)
            .map(|n| {
                self.entries[n.at as usize..(n.at + n.len) as usize]
                    .iter()
                    .map(|e| e.rule)
                    .collect()
            })
            .unwrap_or_default()
    }
}
