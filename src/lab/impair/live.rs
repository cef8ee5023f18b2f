//! Impairments of a running lab, through the control sockets of the guests that
//! realise them (the console's `impair vecN DIR ...`): what every link has now, a
//! change of one direction or both, link down and up, and putting a link back to given
//! settings (`vecbox apply`).
//!
//! A change is parsed and merged into each stage's current settings here first, by the
//! same code the guests run; only when every affected stage accepts it is anything
//! sent, so a refused change changes nothing.

use serde::Serialize;

use super::LinkImpair;
use crate::console::Client;
use crate::impair::{Change, ImpairError, Params};
use crate::lab::plan::Plan;
use crate::lab::topology::{LinkType, NodeKind};
use crate::netlink::{NetNs, NetlinkError};

/// What can go wrong changing or reading a running lab's impairments.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{0}")]
    Key(#[from] ImpairError),
    #[error("lab `{lab}` has no link end `{end}`{hint}")]
    NoEnd {
        lab: String,
        end: String,
        hint: String,
    },
    #[error(
        "link {0} has no vecbox datapath (neither end is a vecbox guest and the file gives it no `impair:`); add `impair: {{}}` to the link in the topology file and bring the lab up again, and vecbox inserts one"
    )]
    NoDatapath(String),
    #[error("{stage}: {msg}")]
    Guest { stage: String, msg: String },
}

/// One link with what its stages have now.
#[derive(Clone, Debug, Serialize)]
pub struct LinkNow {
    #[serde(flatten)]
    pub link: LinkImpair,
    /// A→B and B→A now (`None`: the guest did not answer).
    pub now: [Option<String>; 2],
    /// The stages' counters, one line each (empty without a stage).
    pub counters: [String; 2],
    /// Why a direction could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Ask guest `umid` one console request.
fn ask(umid: &str, stage: &str, text: &str) -> Result<String, LiveError> {
    let mut c = Client::connect(umid).map_err(|e| LiveError::Guest {
        stage: stage.into(),
        msg: e.to_string(),
    })?;
    let r = c.request(text).map_err(|e| LiveError::Guest {
        stage: stage.into(),
        msg: e.to_string(),
    })?;
    if r.err != 0 {
        return Err(LiveError::Guest {
            stage: stage.into(),
            msg: r.text.trim().to_string(),
        });
    }
    Ok(r.text)
}

/// The current settings and counters of `port`'s `dir` stage from an `impair vecN`
/// listing.
fn settings_in(listing: &str, port: &str, dir: &str) -> Option<(String, String)> {
    let head = format!("{port} {dir}: ");
    let mut lines = listing.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(s) = l.strip_prefix(&head) {
            let counters = lines
                .peek()
                .filter(|n| n.starts_with("  "))
                .map(|n| n.trim().to_string())
                .unwrap_or_default();
            return Some((s.trim().to_string(), counters));
        }
    }
    None
}

/// Settings printed as `key=value` words (or `none`) back into [`Params`].
pub fn parse_settings(s: &str) -> Result<Params, ImpairError> {
    if s.trim() == "none" {
        return Ok(Params::default());
    }
    Params::default().apply(&Change::parse_words(s.split_whitespace())?)
}

/// Every link of the lab with its settings now.
pub fn show(plan: &Plan) -> Vec<LinkNow> {
    plan.impairs
        .iter()
        .map(|l| {
            let mut now = [None, None];
            let mut counters = [String::new(), String::new()];
            let mut errors = Vec::new();
            if let Some(at) = &l.at {
                for d in 0..2 {
                    match ask(
                        &at[d].umid,
                        &at[d].to_string(),
                        &format!("impair {}", at[d].port),
                    ) {
                        Ok(text) => {
                            if let Some((s, c)) = settings_in(&text, &at[d].port, &at[d].dir) {
                                now[d] = Some(s);
                                counters[d] = c;
                            }
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
            LinkNow {
                link: l.clone(),
                now,
                counters,
                errors,
            }
        })
        .collect()
}

/// The link with end `end` (`NODE:IF` as written) and which end it is (0 = A).
pub fn find<'a>(plan: &'a Plan, end: &str) -> Result<(&'a LinkImpair, usize), LiveError> {
    for l in &plan.impairs {
        if let Some(side) = l.ends.iter().position(|e| e == end) {
            return Ok((l, side));
        }
    }
    let ends: Vec<&str> = plan
        .impairs
        .iter()
        .flat_map(|l| l.ends.iter().map(String::as_str))
        .collect();
    let hint = crate::lab::diag::closest(end, &ends)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_else(|| format!(" (link ends: {})", ends.join(", ")));
    Err(LiveError::NoEnd {
        lab: plan.lab.clone(),
        end: end.into(),
        hint,
    })
}

/// What to do to a stage.
#[derive(Clone, Debug)]
pub enum Action {
    /// Merge these `KEY=VALUE` words.
    Set(Vec<String>),
    /// Back to no impairment.
    Clear,
    /// Exactly these settings (every other key back to its default).
    Replace(Params),
}

/// Do `action` to the directions `dirs` (0 = A→B) of link `l`; the reply lines, one per
/// direction (`h1:eth0 → h2:eth0: delay=20ms loss=1%`). Every stage is checked first.
pub fn change(l: &LinkImpair, dirs: &[usize], action: &Action) -> Result<Vec<String>, LiveError> {
    let Some(at) = &l.at else {
        return Err(LiveError::NoDatapath(l.title()));
    };
    let words = match action {
        Action::Set(w) => {
            let c = Change::parse_words(w.iter().map(String::as_str))?;
            for &d in dirs {
                let s = &at[d];
                let listing = ask(&s.umid, &s.to_string(), &format!("impair {}", s.port))?;
                let now = settings_in(&listing, &s.port, &s.dir)
                    .map(|x| x.0)
                    .unwrap_or_else(|| "none".into());
                parse_settings(&now)?.apply(&c)?;
            }
            w.join(" ")
        }
        Action::Clear => "clear".to_string(),
        Action::Replace(p) if p.is_default() => "clear".to_string(),
        Action::Replace(p) => {
            let mut w = Vec::new();
            for k in crate::impair::KEYS {
                let v = p
                    .pairs()
                    .into_iter()
                    .find(|(n, _)| *n == k.name)
                    .map_or("default".to_string(), |(_, v)| v);
                w.push(format!("{}={v}", k.name));
            }
            w.join(" ")
        }
    };
    let mut out = Vec::new();
    for &d in dirs {
        let s = &at[d];
        let reply = ask(
            &s.umid,
            &s.to_string(),
            &format!("impair {} {} {words}", s.port, s.dir),
        )?;
        let now = reply
            .lines()
            .find_map(|x| x.strip_prefix(&format!("{} {}: ", s.port, s.dir)))
            .unwrap_or("?")
            .trim()
            .to_string();
        out.push(format!("{} → {}: {now}", l.ends[d], l.ends[1 - d]));
    }
    Ok(out)
}

/// Take the whole link of end `end` down (both directions) or up. A host end whose
/// veth peer is a vecbox guest's port also loses (regains) its carrier: the peer is
/// set down (up) in the guest's namespace; the guest counts what it cannot send as
/// `link_down` and keeps running. A failure there is a warning in the reply.
pub fn link(plan: &Plan, end: &str, down: bool) -> Result<Vec<String>, LiveError> {
    let (l, _) = find(plan, end)?;
    let word = format!("down={down}");
    let mut warn = Vec::new();
    if !down {
        warn = carrier(plan, l, true);
    }
    let mut out = change(l, &[0, 1], &Action::Set(vec![word]))?;
    if down {
        warn = carrier(plan, l, false);
    }
    out.extend(warn);
    Ok(out)
}

/// Set the guest-side veth peers of `l`'s host ends up or down; warnings for failures.
fn carrier(plan: &Plan, l: &LinkImpair, up: bool) -> Vec<String> {
    let mut warn = Vec::new();
    for end in &l.ends {
        let Some(pl) = plan.links.iter().find(|x| x.names.contains(end)) else {
            continue;
        };
        let side = usize::from(pl.names[1] == *end);
        let (hn, _) = pl.ends[side];
        let (n, f) = pl.ends[1 - side];
        let (host, peer) = (&plan.nodes[hn], &plan.nodes[n]);
        if pl.kind != LinkType::Veth || host.kind != NodeKind::Host || !peer.kind.is_guest() {
            continue;
        }
        let Some(k) = peer.ifaces[f].kernel.clone() else {
            continue;
        };
        let what = format!("{k} in {}", peer.netns);
        let r = NetNs::existing(&peer.netns).rtnl(move |h| async move {
            let b = rtnetlink::LinkUnspec::new_with_name(&k);
            let msg = if up { b.up() } else { b.down() }.build();
            h.link()
                .set(msg)
                .execute()
                .await
                .map_err(|source| NetlinkError::Rtnl {
                    op: "setting the carrier of",
                    what: k,
                    source,
                })
        });
        match r {
            Ok(()) => {}
            Err(e) => warn.push(format!("warning: {end} keeps its carrier ({what}: {e})")),
        }
    }
    warn
}
