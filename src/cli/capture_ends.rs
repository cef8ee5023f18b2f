//! Where the link ends of running labs are captured: the one place that reads labs
//! (their saved plans and state, read-only) for `vecbox capture` and `vecbox extcap`.
//!
//! An end is captured inside the vecbox guest that carries it: the end's own node when
//! it is a guest, else the guest at the other end of the link (directions swapped).
//! A host end on a link with an impairment datapath (an xconnect vecbox inserted,
//! which impairs each direction at the `tx` stage of the port it leaves by) is
//! captured at the `tx` points of both datapath ports: outgoing frames where they
//! leave towards the peer, incoming ones where they leave towards this end, so `pre`
//! and `post` are before and after the impairment in both directions.
//! Links without a guest (host↔host, host↔UML veths and taps) are captured with a
//! packet socket on a kernel interface of the link, in its node's namespace. A link
//! between two UML kernels over a tunnel has neither and cannot be captured.

use std::path::PathBuf;

use crate::capture::TX_POINTS;
use crate::capture::stream::{End, GuestPort, Source};
use crate::lab::{self, Plan};

/// How one end is captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// Port `vec{unit}` of guest node `node` (index into the plan's nodes).
    Guest { node: usize, unit: u32, flip: bool },
    /// The end of a host on a link with impairment datapath `node`: its port `near`
    /// faces the end, `far` the peer.
    Datapath { node: usize, near: u32, far: u32 },
    /// A packet socket on `ifname` in `netns`.
    Host {
        netns: String,
        ifname: String,
        flip: bool,
    },
    /// Not capturable, and why.
    No(String),
}

/// One link end of a lab.
#[derive(Clone, Debug)]
pub struct LabEnd {
    /// `NODE:IF`
    pub end: String,
    /// The link type and the peer, e.g. `veth link to server:eth0`.
    pub link: String,
    pub how: How,
    /// Index of its link in the plan.
    pub link_index: usize,
}

/// Labs that are up.
pub fn running_labs() -> Vec<String> {
    lab::labs()
        .into_iter()
        .filter(|l| lab::saved_plan(l).is_ok())
        .collect()
}

/// The plan of running lab `name`, or an error listing the labs that are up.
pub fn plan(name: &str) -> Result<Plan, String> {
    lab::saved_plan(name).map_err(|_| {
        let labs = running_labs();
        if labs.is_empty() {
            format!("no lab named `{name}` is up (no lab is up; start one with `vecbox up FILE --detach`)")
        } else {
            format!(
                "no lab named `{name}` is up; labs up: {}",
                labs.join(", ")
            )
        }
    })
}

/// Every link end of a lab, in link order.
pub fn ends(plan: &Plan) -> Vec<LabEnd> {
    let mut v = Vec::new();
    for (li, link) in plan.links.iter().enumerate() {
        for side in 0..2 {
            let (n, f) = link.ends[side];
            let (pn, pf) = link.ends[1 - side];
            let node = &plan.nodes[n];
            let peer = &plan.nodes[pn];
            let iface = &node.ifaces[f];
            let piface = &peer.ifaces[pf];
            let far = datapath(plan, pn).and_then(|x| {
                x.iter()
                    .find(|f| f.unit.is_some() && f.unit != piface.unit)
                    .and_then(|f| f.unit)
            });
            let how = if let (true, Some(unit)) = (node.kind.is_guest(), iface.unit) {
                How::Guest {
                    node: n,
                    unit,
                    flip: false,
                }
            } else if let (Some(near), Some(far)) = (piface.unit, far) {
                How::Datapath {
                    node: pn,
                    near,
                    far,
                }
            } else if let (true, Some(unit)) = (peer.kind.is_guest(), piface.unit) {
                How::Guest {
                    node: pn,
                    unit,
                    flip: true,
                }
            } else if let Some(k) = &iface.kernel {
                How::Host {
                    netns: node.netns.clone(),
                    ifname: k.clone(),
                    flip: false,
                }
            } else if let Some(k) = &piface.kernel {
                How::Host {
                    netns: peer.netns.clone(),
                    ifname: k.clone(),
                    flip: true,
                }
            } else {
                How::No(format!(
                    "neither end of this {} link is a vecbox guest or a kernel interface (two UML kernels); put a vecbox guest on the link to capture it",
                    link.kind
                ))
            };
            v.push(LabEnd {
                end: format!("{}:{}", node.name, iface.name),
                link: format!("{} link to {}:{}", link.kind, peer.name, piface.name),
                how,
                link_index: li,
            });
        }
    }
    v
}

/// The ports of node `n` when it is an impairment datapath vecbox inserted.
fn datapath(plan: &Plan, n: usize) -> Option<&[crate::lab::plan::PIface]> {
    let node = &plan.nodes[n];
    plan.impairs
        .iter()
        .any(|l| l.datapath.as_deref() == Some(node.name.as_str()))
        .then_some(&node.ifaces[..])
}

/// The ends `wanted` (`NODE:IF`) of lab `plan`; none: one end of every link (the one a
/// guest carries, where there is one).
pub fn select(plan: &Plan, wanted: &[String]) -> Result<Vec<LabEnd>, String> {
    let all = ends(plan);
    if wanted.is_empty() {
        let mut v = Vec::new();
        for li in 0..plan.links.len() {
            let pair: Vec<&LabEnd> = all.iter().filter(|e| e.link_index == li).collect();
            let pick = pair
                .iter()
                .find(|e| matches!(e.how, How::Guest { flip: false, .. }))
                .or_else(|| pair.iter().find(|e| !matches!(e.how, How::No(_))));
            if let Some(e) = pick {
                v.push((*e).clone());
            }
        }
        if v.is_empty() {
            return Err(format!(
                "lab `{}` has no link that can be captured",
                plan.lab
            ));
        }
        return Ok(v);
    }
    wanted
        .iter()
        .map(|w| {
            let found = all.iter().find(|e| &e.end == w).cloned();
            found.ok_or_else(|| unknown(plan, w, &all))
        })
        .collect()
}

/// The message for an end that does not exist: what does.
fn unknown(plan: &Plan, wanted: &str, all: &[LabEnd]) -> String {
    let names = |v: Vec<String>| v.join(", ");
    let Some((node, iface)) = wanted.split_once(':') else {
        return format!(
            "{wanted:?} is not NODE:IF; link ends of lab `{}`: {}",
            plan.lab,
            names(all.iter().map(|e| e.end.clone()).collect())
        );
    };
    match plan.node(node) {
        None => format!(
            "lab `{}` has no node `{node}`; its nodes: {}",
            plan.lab,
            names(plan.nodes.iter().map(|n| n.name.clone()).collect())
        ),
        Some(n) => format!(
            "node `{node}` of lab `{}` has no interface `{iface}` on a link; it has: {}",
            plan.lab,
            names(n.ifaces.iter().map(|f| f.name.clone()).collect())
        ),
    }
}

/// The control socket of guest node `node`. A lab's guests may run with another HOME
/// than this process (root with a temporary HOME, or Wireshark's environment): then
/// the guest's own HOME is asked of /proc, which only its owner and root may read.
fn guest_socket(plan: &Plan, node: usize) -> Result<PathBuf, String> {
    let n = &plan.nodes[node];
    if let Some(d) = crate::console::rundir::find(&n.umid) {
        return Ok(d.join("mconsole"));
    }
    let pid = lab::state::read(&plan.run_dir())
        .and_then(|s| s.nodes.into_iter().find(|x| x.name == n.name))
        .and_then(|s| s.pid);
    let Some(pid) = pid else {
        return Err(format!(
            "guest `{}` of lab `{}` is not running (no pid in the lab's state); see `vecbox status {}`",
            n.name, plan.lab, plan.lab
        ));
    };
    let environ = std::fs::read(format!("/proc/{pid}/environ")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                "guest `{}` of lab `{}` belongs to another user: only the user who started the lab, or root, can capture it",
                n.name, plan.lab
            )
        } else {
            format!("guest `{}` of lab `{}` (pid {pid}): {e}", n.name, plan.lab)
        }
    })?;
    let home = environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"HOME="))
        .map(|h| PathBuf::from(String::from_utf8_lossy(h).into_owned()));
    let candidates = home
        .map(|h| h.join(".uml"))
        .into_iter()
        .chain([PathBuf::from(crate::console::rundir::TMP_UML_DIR)]);
    for base in candidates {
        let sock = base.join(&n.umid).join("mconsole");
        match std::fs::symlink_metadata(&sock) {
            Ok(_) => return Ok(sock),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(format!(
                    "{}: permission denied: only the user who started lab `{}`, or root, can capture it",
                    sock.display(),
                    plan.lab
                ));
            }
            Err(_) => {}
        }
    }
    Err(format!(
        "guest `{}` of lab `{}` has no control socket (umid {}); is it running? see `vecbox status {}`",
        n.name, plan.lab, n.umid, plan.lab
    ))
}

/// What the stream needs for `e` of lab `plan`.
pub fn to_end(plan: &Plan, e: &LabEnd) -> Result<End, String> {
    let name = format!("{}/{}", plan.lab, e.end);
    let (source, at) = match &e.how {
        How::No(why) => return Err(format!("{name} cannot be captured: {why}")),
        How::Guest { node, unit, flip } => {
            let n = &plan.nodes[*node];
            let port = GuestPort {
                flip: *flip,
                ..GuestPort::whole(*unit)
            };
            (
                Source::Guest {
                    socket: guest_socket(plan, *node)?,
                    ports: vec![port],
                },
                format!("captured in guest {} vec{unit}", n.name),
            )
        }
        How::Datapath { node, near, far } => {
            let n = &plan.nodes[*node];
            // Incoming: leaving the datapath towards this end (its tx, seen from the
            // other end of the wire); outgoing: leaving it towards the peer.
            let ports = vec![
                GuestPort {
                    unit: *near,
                    points: TX_POINTS,
                    flip: true,
                },
                GuestPort {
                    unit: *far,
                    points: TX_POINTS,
                    flip: false,
                },
            ];
            (
                Source::Guest {
                    socket: guest_socket(plan, *node)?,
                    ports,
                },
                format!(
                    "captured on impairment datapath {} (incoming at vec{near} tx, outgoing at vec{far} tx)",
                    n.name
                ),
            )
        }
        How::Host {
            netns,
            ifname,
            flip,
        } => (
            Source::Host {
                netns: Some(netns.clone()),
                ifname: ifname.clone(),
                flip: *flip,
            },
            format!("captured on {ifname} in namespace {netns}"),
        ),
    };
    Ok(End {
        description: format!("{}, {at}", e.link),
        name,
        source,
    })
}

/// `Some(reason)` once lab `name` is no longer up.
pub fn lab_gone(name: &str) -> Option<String> {
    let dir = lab::plan::run_dir(name);
    (!dir.join("plan.json").exists()).then(|| format!("lab {name} went down"))
}
