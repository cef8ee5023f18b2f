//! From the fate of every object ([`super::diff`]) to the ordered actions of a plan.
//! Make before break:
//!
//! 1. leftovers of an interrupted apply are removed;
//! 2. new namespaces, underlays and links are made, and ports added to running guests
//!    (a bess listener before the end that connects to it);
//! 3. replacements, and links that move an interface another link still holds (that
//!    interface: the old link goes, then the new one comes);
//! 4. new nodes are started (bess listeners first) and new hosts run their commands;
//! 5. in-place changes, reopened ports, restarted processes;
//! 6. removals: ports from running guests, links, nodes, underlays;
//! 7. the supervisor takes the new definitions of nodes whose ports changed.

mod change;
mod make;

use std::collections::{BTreeMap, BTreeSet};

use super::actions::{Action, Line, Record, Step, Symbol};
use super::diff::{Diff, LinkFate, NodeFate};
use super::objects::{NodeObj, Objects};
use super::observe::{Drift, Observed};
use super::topology::NodeKind;

struct Builder<'a> {
    rec: &'a Objects,
    want: &'a Objects,
    diff: &'a Diff,
    live: BTreeSet<String>,
    actions: Vec<Action>,
    /// Running nodes whose ports change (the supervisor needs their new definition).
    ports_changed: BTreeSet<String>,
}

fn line(
    symbol: Symbol,
    object: String,
    detail: impl Into<String>,
    disruption: impl Into<String>,
) -> Option<Line> {
    Some(Line {
        symbol,
        object,
        detail: detail.into(),
        disruption: disruption.into(),
    })
}

impl Builder<'_> {
    fn push(&mut self, line: Option<Line>, steps: Vec<Step>, record: Vec<Record>) {
        self.actions.push(Action {
            line,
            steps,
            record,
        });
    }

    fn fate(&self, node: &str) -> &NodeFate {
        self.diff.nodes.get(node).unwrap_or(&NodeFate::Keep)
    }

    /// A running node whose process stays: its ports change through its console.
    fn hot(&self, node: &str) -> bool {
        self.live.contains(node) && matches!(self.fate(node), NodeFate::Keep | NodeFate::Change(_))
    }

    /// A node that exists before and after without being made again.
    fn stays(&self, node: &str) -> bool {
        matches!(
            self.fate(node),
            NodeFate::Keep | NodeFate::Change(_) | NodeFate::Up | NodeFate::Restart(_)
        )
    }

    fn netns_of(&self, node: &str) -> String {
        self.want
            .nodes
            .get(node)
            .or_else(|| self.rec.nodes.get(node))
            .map(|n| n.node.netns.clone())
            .unwrap_or_default()
    }

    fn kind_of(&self, node: &str) -> NodeKind {
        self.want
            .nodes
            .get(node)
            .or_else(|| self.rec.nodes.get(node))
            .map_or(NodeKind::Host, |n| n.node.kind)
    }

    fn node_obj(&self, name: &str, up: bool) -> Option<NodeObj> {
        self.want.nodes.get(name).map(|n| NodeObj {
            node: n.node.clone(),
            up,
        })
    }

    fn leftovers(&mut self) {
        for d in &self.diff.leftovers {
            let steps = match d {
                Drift::LeftoverNetns { node } => vec![
                    Step::Stop { node: node.clone() },
                    Step::NetnsDelete { node: node.clone() },
                ],
                Drift::LeftoverProcess { node } => vec![Step::Stop { node: node.clone() }],
                Drift::LeftoverIface { netns, kernel } => vec![Step::IfaceDelete {
                    netns: netns.clone(),
                    kernel: kernel.clone(),
                }],
                Drift::LeftoverPort { node, unit } => vec![Step::PortRemove {
                    node: node.clone(),
                    unit: *unit,
                }],
                Drift::LeftoverTap { link } => vec![Step::TapDelete { link: link.clone() }],
                _ => continue,
            };
            let what = d.describe();
            self.push(
                line(Symbol::Remove, "leftover".into(), what, "none"),
                steps,
                vec![],
            );
        }
    }
}

/// The actions that take the observed lab to the desired objects `want`.
pub fn build(obs: &Observed, want: &Objects, diff: &Diff) -> Vec<Action> {
    let mut b = Builder {
        rec: &obs.recorded.objects,
        want,
        diff,
        live: obs.live(),
        actions: Vec::new(),
        ports_changed: BTreeSet::new(),
    };
    // 1. Leftovers.
    b.leftovers();
    let swaps = swaps(&b);
    // 2. Made: namespaces, underlays, links.
    make::made(&mut b, &swaps);
    // 3. Replacements and swaps.
    make::replaced(&mut b, &swaps);
    // 4. New nodes start: bess listeners first.
    change::start_new(&mut b);
    // 5. In place, reopened ports, restarts.
    change::change_in_place(&mut b);
    change::restarts(&mut b);
    // 6. Removals.
    let swapped_old: BTreeSet<String> = swaps.values().flatten().cloned().collect();
    change::removals(&mut b, &swapped_old);
    // 7. Definitions for the supervisor.
    change::definitions(&mut b);
    b.actions
}

/// New links that take an interface over from a link going away, with those links:
/// they are swapped (old out, new in) after everything else is made.
fn swaps(b: &Builder) -> BTreeMap<String, Vec<String>> {
    let diff = b.diff;
    // Interfaces that a new link takes over from a link going away: those links are
    // swapped in phase 3, the rest is made before anything is removed.
    let removed_ends: BTreeMap<String, String> = diff
        .links
        .iter()
        .filter(|(_, f)| matches!(f, LinkFate::Remove))
        .flat_map(|(id, _)| {
            b.rec.links[id]
                .ends
                .iter()
                .map(|e| (e.name(), id.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let swaps: BTreeMap<String, Vec<String>> = {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, f) in &diff.links {
            if *f != LinkFate::Create {
                continue;
            }
            for e in &b.want.links[id].ends {
                if let Some(old) = removed_ends.get(&e.name()) {
                    m.entry(id.clone()).or_default().push(old.clone());
                }
            }
        }
        m
    };
    swaps
}

#[cfg(test)]
mod tests;
