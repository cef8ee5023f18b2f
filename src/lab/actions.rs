//! What an apply will do: [`Action`]s (one printed line each, or none for the later
//! phases of an object), each a list of [`Step`]s, saved as an [`ApplyPlan`]
//! (`--out PLAN.json`) and printed as a table with the symbols `+ - ~ -/+ !` and a
//! disruption column.
//!
//! Every step is idempotent ("make it so"): a step that finds its work already done does
//! nothing, so an apply interrupted at any step and run again converges.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::objects::{LinkObj, NodeObj, UnderlayObj};
use super::plan::{PRoute, Plan};

/// Saved plans say which format they are.
pub const PLAN_VERSION: u32 = 1;

/// One idempotent operation, journaled before it is made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Step {
    /// Create the node's namespace (marked; no IPv6 for guests and UML) and journal its
    /// control directory.
    Netns { node: String },
    /// Kill what still runs in the node's namespace, delete it and its control directory.
    NetnsDelete { node: String },
    /// Write the node's router configuration or firewall rules file.
    File { node: String },
    /// Sysctls in a host's namespace.
    Sysctls {
        node: String,
        set: Vec<(String, String)>,
    },
    /// Add (or delete) a host route.
    Route {
        node: String,
        route: PRoute,
        add: bool,
    },
    /// A veth pair between two namespaces, marked, with its MTU; both ends up.
    Veth {
        netns: [String; 2],
        kernel: [String; 2],
        mtu: u32,
    },
    /// Delete a veth pair (from whichever end still exists).
    VethDelete {
        netns: [String; 2],
        kernel: [String; 2],
    },
    /// The supervisor creates a host's tap (marked, MTU) and keeps its descriptor.
    Tap {
        link: String,
        netns: String,
        name: String,
        mtu: u32,
    },
    /// The supervisor lets go of a tap (it disappears with the last descriptor).
    TapDelete { link: String },
    /// The supervisor binds the socket of a link between hosts on this machine's
    /// underlay address (from the local end's spec) and keeps it, like a tap.
    Sock { link: String, spec: String },
    /// Configure an interface vecbox made: MAC, MTU, addresses added and removed, up.
    Iface {
        netns: String,
        kernel: String,
        mac: Option<String>,
        mtu: Option<u32>,
        add: Vec<String>,
        del: Vec<String>,
    },
    /// Delete an interface vecbox made that no object owns any more.
    IfaceDelete { netns: String, kernel: String },
    /// Add a port to a running guest or UML kernel through its console (`config vecN:…`);
    /// `tap`: the supervisor passes that link's tap descriptor with the request.
    PortAdd {
        node: String,
        spec: String,
        tap: Option<String>,
    },
    /// Remove a port from a running guest through its console (`remove vecN`).
    PortRemove { node: String, unit: u32 },
    /// The guest re-reads its router configuration or firewall rules, keeping its state.
    Reload { node: String },
    /// The guest rebuilds its function with new options.
    Options { node: String },
    /// Start the node's process under the supervisor with its definition from the plan,
    /// stopping a running one first.
    Start { node: String },
    /// Wait until the started nodes report ready.
    Ready { nodes: Vec<String> },
    /// The supervisor stops the node's process and forgets it.
    Stop { node: String },
    /// The supervisor takes the node's definition (ports, restart policy) for restarts.
    Define { node: String },
    /// Make a host's bridges, offload switches and neighbour entries.
    HostNet { node: String },
    /// Run a host's `exec` commands.
    Exec { node: String },
    /// A link's impairment changed: goes through the same path as `vecbox impair`
    /// (the hook is [`super::execute::impair`]).
    Impair { link: String },
}

impl Step {
    /// A short description, for progress and the journal.
    pub fn describe(&self) -> String {
        match self {
            Step::Netns { node } => format!("create namespace of {node}"),
            Step::NetnsDelete { node } => format!("delete namespace of {node}"),
            Step::File { node } => format!("write the file of {node}"),
            Step::Sysctls { node, set } => format!("{} sysctls on {node}", set.len()),
            Step::Route { node, route, add } => format!(
                "{} route to {} on {node}",
                if *add { "add" } else { "delete" },
                route.to
            ),
            Step::Veth { netns, kernel, .. } => format!(
                "veth {}/{} – {}/{}",
                netns[0], kernel[0], netns[1], kernel[1]
            ),
            Step::VethDelete { netns, kernel } => {
                format!("delete veth {}/{} – {}", netns[0], kernel[0], kernel[1])
            }
            Step::Tap { netns, name, .. } => format!("tap {netns}/{name}"),
            Step::TapDelete { link } => format!("release the tap of {link}"),
            Step::Sock { link, .. } => format!("bind the underlay socket of {link}"),
            Step::Iface { netns, kernel, .. } => format!("configure {netns}/{kernel}"),
            Step::IfaceDelete { netns, kernel } => format!("delete {netns}/{kernel}"),
            Step::PortAdd { node, spec, .. } => format!(
                "add port {} to {node}",
                spec.split(':').next().unwrap_or("?")
            ),
            Step::PortRemove { node, unit } => format!("remove port vec{unit} from {node}"),
            Step::Reload { node } => format!("{node} re-reads its file"),
            Step::Options { node } => format!("new options for {node}"),
            Step::Start { node } => format!("start {node}"),
            Step::Ready { nodes } => format!("wait until {} ready", nodes.join(", ")),
            Step::Stop { node } => format!("stop {node}"),
            Step::Define { node } => format!("supervisor takes the new definition of {node}"),
            Step::HostNet { node } => format!("bridges, offloads and neighbours of {node}"),
            Step::Exec { node } => format!("run the commands of {node}"),
            Step::Impair { link } => format!("impairment of {link}"),
        }
    }
}

/// The symbol of a plan line.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Symbol {
    /// `+` create.
    Create,
    /// `~` change in place.
    Change,
    /// `-/+` replace.
    Replace,
    /// `-` remove.
    Remove,
    /// `!` an object the plan does not change but that an action affects.
    Affected,
}

impl Symbol {
    pub fn as_str(self) -> &'static str {
        match self {
            Symbol::Create => "+",
            Symbol::Change => "~",
            Symbol::Replace => "-/+",
            Symbol::Remove => "-",
            Symbol::Affected => "!",
        }
    }
}

/// One printed line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Line {
    pub symbol: Symbol,
    /// `node NAME`, `link A – B`, `underlay A|B`.
    pub object: String,
    /// What and why (the reason of a replacement).
    pub detail: String,
    /// `none`, `link bounce NODE:IF, …`, `guest restart NODE`.
    pub disruption: String,
}

/// How the lab's record changes once an action's steps are all done.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "set", rename_all = "snake_case")]
pub enum Record {
    Node {
        name: String,
        obj: Option<NodeObj>,
    },
    Link {
        id: String,
        obj: Option<LinkObj>,
    },
    Underlay {
        id: String,
        obj: Option<UnderlayObj>,
    },
}

/// Steps that change one object, and its new record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Action {
    /// The line printed for it (later phases of an object print none).
    pub line: Option<Line>,
    pub steps: Vec<Step>,
    pub record: Vec<Record>,
}

/// What `vecbox apply` does, as printed and saved.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApplyPlan {
    pub version: u32,
    pub lab: String,
    /// The lab's generation when the plan was made; the plan is stale once it moved.
    pub generation: u64,
    /// Digest of what was observed; the plan is stale once the lab looks different.
    pub digest: String,
    /// Differences between the journal and the running lab, as found.
    pub drift: Vec<String>,
    pub actions: Vec<Action>,
    /// The lab the plan makes.
    pub desired: Plan,
}

impl ApplyPlan {
    /// The printed lines, in order.
    pub fn lines(&self) -> impl Iterator<Item = &Line> {
        self.actions.iter().filter_map(|a| a.line.as_ref())
    }

    /// `true` when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.actions.iter().all(|a| a.steps.is_empty())
    }

    /// Every step in order.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.actions.iter().flat_map(|a| a.steps.iter())
    }

    /// The plan as a table, with drift first and a count last.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.drift.is_empty() {
            s.push_str("Drift (the running lab differs from its record; shown here, changed only as planned below):\n");
            for d in &self.drift {
                let _ = writeln!(s, "  {d}");
            }
        }
        if self.is_empty() {
            let _ = writeln!(
                s,
                "No changes: lab `{}` matches {}.",
                self.lab,
                self.desired.file.display()
            );
            return s;
        }
        let lines: Vec<&Line> = self.lines().collect();
        let w = lines
            .iter()
            .map(|l| l.object.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let dw = lines
            .iter()
            .map(|l| l.detail.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let _ = writeln!(s, "    {:<w$}  {:<dw$}  DISRUPTION", "OBJECT", "CHANGE");
        for l in &lines {
            let _ = writeln!(
                s,
                "{:<3} {:<w$}  {:<dw$}  {}",
                l.symbol.as_str(),
                l.object,
                l.detail,
                l.disruption
            );
        }
        let count = |sym: Symbol| lines.iter().filter(|l| l.symbol == sym).count();
        let _ = writeln!(
            s,
            "Plan: {} to add, {} to change, {} to replace, {} to remove; {} affected.",
            count(Symbol::Create),
            count(Symbol::Change),
            count(Symbol::Replace),
            count(Symbol::Remove),
            count(Symbol::Affected)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(symbol: Symbol, object: &str, disruption: &str) -> Option<Line> {
        Some(Line {
            symbol,
            object: object.into(),
            detail: "d".into(),
            disruption: disruption.into(),
        })
    }

    #[test]
    fn table_and_counts() {
        let plan = ApplyPlan {
            version: PLAN_VERSION,
            lab: "l".into(),
            generation: 3,
            digest: String::new(),
            drift: vec!["node a: namespace l.a is missing".into()],
            actions: vec![
                Action {
                    line: line(Symbol::Create, "node h4", "none"),
                    steps: vec![Step::Netns { node: "h4".into() }],
                    record: vec![],
                },
                Action {
                    line: None,
                    steps: vec![Step::Exec { node: "h4".into() }],
                    record: vec![],
                },
                Action {
                    line: line(Symbol::Replace, "node u1", "guest restart u1"),
                    steps: vec![Step::Start { node: "u1".into() }],
                    record: vec![],
                },
                Action {
                    line: line(Symbol::Affected, "node sw", "none"),
                    steps: vec![],
                    record: vec![],
                },
            ],
            desired: crate::lab::check_text(
                "t.yaml",
                "name: l\nnodes: {a: {kind: host}}\n",
                std::path::Path::new("/tmp/t.yaml"),
            )
            .unwrap(),
        };
        let out = plan.render();
        assert!(out.contains("Drift"), "{out}");
        assert!(out.contains("+   node h4"), "{out}");
        assert!(out.contains("-/+ node u1"), "{out}");
        assert!(out.contains("guest restart u1"), "{out}");
        assert!(out.contains("!   node sw"), "{out}");
        assert!(
            out.contains("1 to add, 0 to change, 1 to replace, 0 to remove; 1 affected"),
            "{out}"
        );
        assert_eq!(plan.steps().count(), 3);
        assert!(!plan.is_empty());
        // Saved and read back unchanged.
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<ApplyPlan>(&json).unwrap(), plan);
    }
}
