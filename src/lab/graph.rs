//! `vecbox graph`: a lab drawn as Graphviz DOT or Mermaid, with the names the user wrote.

use std::fmt::Write;

use super::plan::Plan;
use super::topology::{LinkType, NodeKind};

fn shape(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Host => "box",
        NodeKind::Uml => "box3d",
        NodeKind::Router => "ellipse",
        NodeKind::Firewall => "octagon",
        NodeKind::Bridge | NodeKind::Xconnect => "diamond",
    }
}

/// The impairment shown on link `l`'s edge, or on the datapath node `n` vecbox inserted.
fn impair_note(p: &Plan, names: &[String; 2]) -> Option<String> {
    p.impairs
        .iter()
        .find(|i| &i.ends == names || names.iter().any(|n| i.datapath.as_deref() == Some(n)))
        .filter(|i| i.set.iter().any(|s| s != "none") || i.datapath.is_some())
        .map(super::impair::label)
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz DOT.
pub fn dot(p: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "graph {} {{", quote(&p.lab));
    let _ = writeln!(
        s,
        "  label={};\n  node [fontname=\"sans-serif\"];\n  edge [fontname=\"sans-serif\", fontsize=10];",
        quote(&p.lab)
    );
    for n in &p.nodes {
        let label = match impair_note(p, &[n.name.clone(), String::new()]) {
            Some(i) => format!("impairment datapath\\n{i}"),
            None => format!("{}\\n({})", n.name, n.kind),
        };
        let _ = writeln!(
            s,
            "  {} [shape={}, label={}];",
            quote(&n.name),
            shape(n.kind),
            quote(&label)
        );
    }
    for l in &p.links {
        let (a, b) = (&p.nodes[l.ends[0].0], &p.nodes[l.ends[1].0]);
        let (fa, fb) = (&a.ifaces[l.ends[0].1].name, &b.ifaces[l.ends[1].1].name);
        let style = if l.kind == LinkType::Veth {
            "solid"
        } else {
            "dashed"
        };
        let _ = writeln!(
            s,
            "  {} -- {} [taillabel={}, headlabel={}, label={}, style={style}];",
            quote(&a.name),
            quote(&b.name),
            quote(fa),
            quote(fb),
            quote(&edge_label(p, l))
        );
    }
    s.push_str("}\n");
    s
}

/// Link type, and the impairment when the link's ends realise it themselves.
fn edge_label(p: &Plan, l: &super::plan::PLink) -> String {
    match impair_note(p, &l.names).filter(|_| !l.names.iter().any(|n| n.starts_with('_'))) {
        Some(i) => format!("{} {i}", l.kind),
        None => l.kind.to_string(),
    }
}

fn mermaid_id(s: &str) -> String {
    s.replace('-', "_")
}

/// Mermaid flowchart.
pub fn mermaid(p: &Plan) -> String {
    let mut s = String::from("flowchart LR\n");
    for n in &p.nodes {
        let id = mermaid_id(&n.name);
        let label = match impair_note(p, &[n.name.clone(), String::new()]) {
            Some(i) => format!("impairment datapath<br/>{i}"),
            None => format!("{}<br/>{}", n.name, n.kind),
        };
        let _ = match n.kind {
            NodeKind::Host => writeln!(s, "  {id}[\"{label}\"]"),
            NodeKind::Uml => writeln!(s, "  {id}[[\"{label}\"]]"),
            NodeKind::Router => writeln!(s, "  {id}((\"{label}\"))"),
            NodeKind::Firewall => writeln!(s, "  {id}{{{{\"{label}\"}}}}"),
            _ => writeln!(s, "  {id}{{\"{label}\"}}"),
        };
    }
    for l in &p.links {
        let (a, b) = (&p.nodes[l.ends[0].0], &p.nodes[l.ends[1].0]);
        let (fa, fb) = (&a.ifaces[l.ends[0].1].name, &b.ifaces[l.ends[1].1].name);
        let arrow = if l.kind == LinkType::Veth {
            "---"
        } else {
            "-.-"
        };
        let _ = writeln!(
            s,
            "  {} {arrow}|\"{fa} {} {fb}\"| {}",
            mermaid_id(&a.name),
            edge_label(p, l),
            mermaid_id(&b.name)
        );
    }
    s
}
