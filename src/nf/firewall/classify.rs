//! Rule lookup whose cost does not depend on how the rules share fields.
//!
//! The rules are compiled into decision trees ([`super::tree`], built by
//! [`super::cuts`] over the dimensions of [`super::fields`]): a packet walks a few
//! inner nodes, each a shift and a mask of one field, to a leaf of a few rules in file
//! order, and the first of those whose remaining range tests pass is the answer —
//! exactly the rule a linear first-match scan would pick (the tests compare the two on
//! random rule sets and packets).
//!
//! Large rule sets are split into up to four groups by which of the source and
//! destination address they leave wide open (EffiCuts' separable trees: a tree that
//! cuts addresses then never copies wildcard rules into all its children). Every tree
//! is searched when the match is late in the list, so the groups are then joined into
//! as few trees as fit in [`MERGE`] times the separable trees' memory (one, else two
//! by the openness of the destination or of the source, else the four). The trees are
//! searched in the order of their first rule, each only for rules before the best
//! match so far. See docs/firewall.md for the choice, the memory it takes and its
//! worst cases.

use super::cuts;
use super::fields::{Axes, Coord, DST, Point, SRC, Space, top};
use super::rules::{Packet, Rule};
use super::tree::{Tree, TreeStats};

/// Rule sets up to this size get one tree per family.
const ONE_TREE: usize = 64;
/// Joined trees may take this many times the memory of the separable ones.
const MERGE: usize = 3;
/// Smaller groups join the group of rules wide open in both addresses.
const MIN_GROUP: usize = 32;
/// An address condition is wide open when it spans 2^(bits - this) addresses or more
/// (IPv4: a /16 or shorter prefix).
const OPEN_PREFIX: u8 = 16;

/// The trees of one address family: (first rule, tree), by first rule.
struct Family<V> {
    trees: Vec<(u32, Tree<V>)>,
}

/// Ways to join the separable groups (by which address they leave open: bit 0 source,
/// bit 1 destination) into fewer trees, fewest first: all in one; by the destination's
/// openness; by the source's.
const JOINS: [&[&[usize]]; 3] = [&[&[0, 1, 2, 3]], &[&[0, 1], &[2, 3]], &[&[0, 2], &[1, 3]]];

impl<V: Coord> Family<V> {
    fn new(space: &Space, axes: &Axes) -> Family<V> {
        let groups = partition(space, space.rules());
        let build = |sets: Vec<Vec<u32>>, mut limit: usize| -> Option<Vec<(u32, Tree<V>)>> {
            let mut trees = Vec::new();
            for g in sets.into_iter().filter(|g| !g.is_empty()) {
                let t = cuts::tree(space, axes, &g, limit)?;
                limit -= t.stats().bytes;
                trees.push((g[0], t));
            }
            Some(trees)
        };
        let bytes = |t: &[(u32, Tree<V>)]| t.iter().map(|t| t.1.stats().bytes).sum::<usize>();
        let nonempty = groups.iter().filter(|g| !g.is_empty()).count();
        let mut best = build(groups.clone(), usize::MAX).unwrap_or_default();
        if groups.len() < 4 {
            return Family::sorted(best);
        }
        // Fewer trees, as long as they take at most MERGE times the separable trees'
        // memory: every tree is searched, so each one saved is a walk saved.
        let limit = MERGE.saturating_mul(bytes(&best));
        for join in JOINS {
            let sets: Vec<Vec<u32>> = join
                .iter()
                .map(|ix| {
                    let mut g: Vec<u32> = ix.iter().flat_map(|&i| groups[i].clone()).collect();
                    g.sort_unstable();
                    g
                })
                .collect();
            let count = sets.iter().filter(|g| !g.is_empty()).count();
            if count >= best.len().min(nonempty) {
                continue;
            }
            if let Some(t) = build(sets, limit) {
                best = t;
            }
        }
        Family::sorted(best)
    }

    fn sorted(mut trees: Vec<(u32, Tree<V>)>) -> Family<V> {
        trees.sort_by_key(|t| t.0);
        Family { trees }
    }

    #[inline]
    fn lookup(&self, x: &Point<V>) -> Option<usize> {
        let mut best = u32::MAX;
        for (first, t) in &self.trees {
            if *first >= best {
                break;
            }
            if let Some(r) = t.lookup(x, best) {
                best = r;
            }
        }
        (best != u32::MAX).then_some(best as usize)
    }
}

/// Split `rules` into groups that cut well together: by which of source and destination
/// address they leave wide open. Small groups join the group open in both.
fn partition(space: &Space, rules: Vec<u32>) -> Vec<Vec<u32>> {
    if rules.len() <= ONE_TREE {
        return vec![rules];
    }
    let open = |r: u32, d: usize| {
        let span = space
            .set(r, d)
            .iter()
            .fold(0u128, |s, &(a, b)| s.saturating_add(b - a));
        span >= top(space.width[d].saturating_sub(OPEN_PREFIX))
    };
    let mut groups: Vec<Vec<u32>> = vec![Vec::new(); 4];
    for r in rules {
        groups[usize::from(open(r, SRC)) | usize::from(open(r, DST)) << 1].push(r);
    }
    let mut small = Vec::new();
    for g in &mut groups[..3] {
        if g.len() < MIN_GROUP {
            small.append(g);
        }
    }
    groups[3].append(&mut small);
    groups[3].sort_unstable();
    groups
}

/// The trees over a rule list.
struct Index {
    axes: Axes,
    v4: Family<u32>,
    v6: Family<u128>,
}

/// The classifier over a rule list: the trees, or (while they are being built in the
/// background, see [`Classifier::linear`]) a scan with the same answers.
pub struct Classifier {
    rules: Vec<Rule>,
    index: Option<Index>,
}

/// Shape of the classifier (docs, benchmarks, tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rules: usize,
    /// IPv4 trees, IPv6 trees (none while scanning).
    pub trees: [Vec<TreeStats>; 2],
    /// Bytes used at lookup: trees and the compression tables.
    pub bytes: usize,
}

impl Classifier {
    /// Compile `rules` (kept in order) into trees.
    pub fn new(rules: Vec<Rule>) -> Classifier {
        let axes = Axes::new(&rules);
        let s4 = Space::new(&rules, false, &axes);
        let s6 = Space::new(&rules, true, &axes);
        let index = Index {
            v4: Family::new(&s4, &axes),
            v6: Family::new(&s6, &axes),
            axes,
        };
        Classifier {
            rules,
            index: Some(index),
        }
    }

    /// A classifier that scans `rules`: the same answers as [`Classifier::new`]'s at
    /// once, for the time its trees take to build.
    pub fn linear(rules: Vec<Rule>) -> Classifier {
        Classifier { rules, index: None }
    }

    /// `true` when the trees are built (not scanning).
    pub fn indexed(&self) -> bool {
        self.index.is_some()
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Index of the first rule matching `p`.
    #[inline]
    pub fn lookup(&self, p: &Packet) -> Option<usize> {
        let Some(ix) = &self.index else {
            return self.scan(p);
        };
        let found = if p.v6 {
            ix.axes.point(p).map(|x| ix.v6.lookup(&x))
        } else {
            ix.axes.point(p).map(|x| ix.v4.lookup(&x))
        };
        // `None`: a port index the dimensions do not encode (a guest with 255+ ports).
        found.unwrap_or_else(|| self.scan(p))
    }

    /// First match by scanning every rule (the reference for [`Classifier::lookup`]).
    pub fn scan(&self, p: &Packet) -> Option<usize> {
        self.rules.iter().position(|r| r.matches(p))
    }

    /// The shape of the trees and the memory they take.
    pub fn stats(&self) -> Stats {
        let Some(ix) = &self.index else {
            return Stats {
                rules: self.rules.len(),
                ..Stats::default()
            };
        };
        let trees = [
            ix.v4.trees.iter().map(|t| t.1.stats()).collect::<Vec<_>>(),
            ix.v6.trees.iter().map(|t| t.1.stats()).collect::<Vec<_>>(),
        ];
        Stats {
            rules: self.rules.len(),
            bytes: trees.iter().flatten().map(|t| t.bytes).sum::<usize>() + ix.axes.bytes(),
            trees,
        }
    }

    /// Rules of the largest IPv4 leaf (diagnostics and tests).
    pub fn largest_leaf(&self) -> Vec<u32> {
        self.index
            .iter()
            .flat_map(|ix| ix.v4.trees.iter())
            .map(|t| t.1.largest_leaf())
            .max_by_key(Vec::len)
            .unwrap_or_default()
    }
}
