//! Topology → [`Plan`]: every rule `vecbox check` enforces. Nothing here touches the
//! kernel; the only host lookups are the UML kernel, root directory and image files.
//!
//! All problems are collected (not just the first), each with its position in the file.

mod links;
mod specs;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::alloc::{self, Lock};
use super::diag::{Diags, closest};
use super::plan::{self, GuestFile, MAX_LAB, MAX_NODE, PNode, PRoute, PUml, Plan};
use super::topology::{Node, NodeKind, Restart, Topology};

/// Validate `topo` read from `file` (as the user named it; `abs` is its absolute path,
/// relative paths in the file are relative to its directory). Generated names and
/// numbers are allocated from identity ([`alloc`]), keeping `prior`'s (the running lab's)
/// for every object that is still there.
pub fn validate(topo: &Topology, file: &str, abs: &Path, prior: &Lock) -> Result<Plan, Diags> {
    let mut d = Diags::new(file);
    let base = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let lab = topo.name.value.clone();
    if !plan::valid_name(&lab, MAX_LAB) {
        d.on(
            &topo.name,
            format!("lab name {lab:?} is not valid"),
            Some(format!(
                "use 1 to {MAX_LAB} characters of a-z A-Z 0-9 _ -, starting with a letter"
            )),
        );
    }
    let metrics = topo
        .metrics
        .as_ref()
        .and_then(|m| match m.value.parse::<SocketAddr>() {
            Ok(a) => Some(a.to_string()),
            Err(_) => {
                d.on(
                    m,
                    format!("metrics address {:?} is not ADDRESS:PORT", m.value),
                    Some("e.g. metrics: 127.0.0.1:9464".into()),
                );
                None
            }
        });
    if topo.nodes.is_empty() {
        d.at(
            topo.name.referenced,
            "the lab has no nodes",
            Some("add a `nodes:` map".into()),
        );
    }
    let hosts = super::hosts::hosts(&mut d, topo);
    let mut nodes = Vec::new();
    for (name, node) in topo.nodes.iter() {
        let mut n = self::node(&mut d, topo, &lab, name, node, &base);
        n.host = super::hosts::place(&mut d, topo, &hosts, name, node);
        nodes.push(n);
    }
    let mut p = Plan {
        tag: plan::lab_tag(&lab),
        lab,
        file: abs.to_path_buf(),
        metrics,
        nodes,
        links: Vec::new(),
        underlays: Vec::new(),
        lock: Lock::default(),
        hosts,
        local: None,
        impairs: Vec::new(),
    };
    let before = d.list.len();
    links::links(&mut d, topo, &mut p);
    // Counting ports and unused interfaces after a rejected link would only repeat it.
    let links_ok = d.list.len() == before;
    super::hosts::domain_mtu(&mut p);
    links::settings(&mut d, topo, &mut p, links_ok);
    alloc::assign(&mut p, prior);
    links::clashes(&mut d, topo, &p);
    links::finish_nodes(&mut d, topo, &mut p, links_ok);
    super::hostnet::validate(&mut d, topo, &mut p);
    super::impair::realise::plan(&mut d, topo, &mut p);
    if d.is_empty() { Ok(p) } else { Err(d) }
}

/// Which keys each kind accepts (besides `kind` and `interfaces`).
fn allowed(kind: NodeKind) -> &'static [&'static str] {
    match kind {
        NodeKind::Host => &["routes", "sysctls", "exec", "bridges", "neighbours"],
        NodeKind::Xconnect | NodeKind::Bridge => {
            &["options", "cpu", "depth", "restart", "ready_timeout"]
        }
        NodeKind::Router => &[
            "options",
            "cpu",
            "depth",
            "restart",
            "ready_timeout",
            "config",
        ],
        NodeKind::Firewall => &[
            "options",
            "cpu",
            "depth",
            "restart",
            "ready_timeout",
            "rules",
        ],
        NodeKind::Uml => &[
            "depth",
            "restart",
            "kernel",
            "mem",
            "root",
            "image",
            "init",
            "args",
            "ready",
            "ready_timeout",
        ],
    }
}

fn set_keys(n: &Node) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut add = |k, on: bool| {
        if on {
            v.push(k)
        }
    };
    add("routes", !n.routes.is_empty());
    add("sysctls", !n.sysctls.is_empty());
    add("exec", !n.exec.is_empty());
    add("bridges", !n.bridges.is_empty());
    add("neighbours", !n.neighbours.is_empty());
    add("options", !n.options.is_empty());
    add("config", n.config.is_some());
    add("rules", n.rules.is_some());
    add("cpu", n.cpu.is_some());
    add("depth", n.depth.is_some());
    add("restart", n.restart.is_some());
    add("kernel", n.kernel.is_some());
    add("mem", n.mem.is_some());
    add("root", n.root.is_some());
    add("image", n.image.is_some());
    add("init", n.init.is_some());
    add("args", !n.args.is_empty());
    add("ready", n.ready.is_some());
    add("ready_timeout", n.ready_timeout.is_some());
    v
}

fn kinds_taking(key: &str) -> String {
    let all = [
        NodeKind::Host,
        NodeKind::Xconnect,
        NodeKind::Bridge,
        NodeKind::Router,
        NodeKind::Firewall,
        NodeKind::Uml,
    ];
    all.iter()
        .filter(|k| allowed(**k).contains(&key))
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn node(
    d: &mut Diags,
    topo: &Topology,
    lab: &str,
    name: &Spanned<String>,
    n: &Node,
    base: &Path,
) -> PNode {
    let kind = n.kind.value;
    if !plan::valid_name(&name.value, MAX_NODE) {
        d.on(
            name,
            format!("node name {:?} is not valid", name.value),
            Some(format!(
                "use 1 to {MAX_NODE} characters of a-z A-Z 0-9 _ -, starting with a letter"
            )),
        );
    }
    for key in set_keys(n) {
        if !allowed(kind).contains(&key) {
            d.on(
                name,
                format!(
                    "node `{}` is a {kind} node; `{key}` does not apply to it",
                    name.value
                ),
                Some(format!(
                    "`{key}` is for {} nodes; remove it",
                    kinds_taking(key)
                )),
            );
        }
    }
    let defaults = &topo.defaults;
    let restart = n.restart.or(defaults.restart).unwrap_or(Restart::OnFailure);
    let mut routes = Vec::new();
    for r in &n.routes {
        routes.push(route(d, r));
    }
    let sysctls = n
        .sysctls
        .iter()
        .map(|(k, v)| {
            if k.value.is_empty() || k.value.contains(['/', ' ']) || k.value.contains("..") {
                d.on(
                    k,
                    format!("sysctl name {:?} is not valid", k.value),
                    Some("write it with dots, e.g. net.ipv4.ip_forward".into()),
                );
            }
            (k.value.clone(), v.to_string())
        })
        .collect();
    let options = n
        .options
        .iter()
        .map(|(k, v)| (k.value.clone(), v.to_string()))
        .collect();
    for (k, v) in n.options.iter() {
        if k.value == "seccomp" {
            if v.to_string().parse::<crate::sys::seccomp::Mode>().is_err() {
                d.on(
                    k,
                    format!("seccomp: {:?} is not a seccomp mode", v.to_string()),
                    Some("use kill (default), log (find a missing call in the kernel log) or off (debugging)".into()),
                );
            }
        } else if crate::guest::GUEST_KEYS.contains(&k.value.as_str())
            || k.value.contains(['=', ' '])
        {
            d.on(
                k,
                format!("`{}` cannot be a function option", k.value),
                Some("umid, cpu and stats are set by vecbox (use `cpu:` on the node)".into()),
            );
        }
    }
    let config = match (&n.config, &n.rules) {
        (Some(c), _) => Some((c, "config")),
        (None, Some(r)) => Some((r, "rules")),
        _ => None,
    }
    .map(|(v, key)| GuestFile {
        key: key.to_string(),
        // A string is the file itself (the firewall's rule language); a mapping is
        // written as JSON, which is YAML (the router's configuration).
        text: match &v.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    });
    if kind == NodeKind::Router && n.config.is_none() {
        d.on(
            name,
            format!("router `{}` has no `config`", name.value),
            Some("add `config:` with `interfaces:` (addresses per port) and `routes:`".into()),
        );
    }
    let uml = (kind == NodeKind::Uml).then(|| uml(d, topo, name, n, base));
    let ready_timeout = n
        .ready_timeout
        .unwrap_or(if kind == NodeKind::Uml { 60 } else { 10 });
    PNode {
        name: name.value.clone(),
        kind,
        host: String::new(),
        netns: format!("{lab}.{}", name.value),
        umid: format!("{lab}.{}", name.value),
        ifaces: Vec::new(),
        routes,
        sysctls,
        exec: n.exec.iter().map(|e| e.value.clone()).collect(),
        net: Default::default(),
        restart,
        options,
        cpu: n.cpu.as_ref().map(|c| c.value),
        config,
        uml,
        ready: n.ready.clone(),
        ready_timeout,
    }
}

fn route(d: &mut Diags, r: &Spanned<super::topology::Route>) -> PRoute {
    let v = &r.value;
    let to = if v.to == "default" {
        "0.0.0.0/0".to_string()
    } else {
        v.to.clone()
    };
    if parse_cidr(&to).is_none() {
        d.on(
            r,
            format!("route destination {:?} is not ADDRESS/PREFIX", v.to),
            Some("e.g. `to: 10.2.0.0/24` or `to: default`".into()),
        );
    }
    if let Some(via) = &v.via
        && via.parse::<IpAddr>().is_err()
    {
        d.on(
            r,
            format!("route gateway {via:?} is not an IP address"),
            None,
        );
    }
    if v.via.is_none() && v.dev.is_none() {
        d.on(
            r,
            format!("route to {} has neither `via` nor `dev`", v.to),
            Some("add `via: GATEWAY` or `dev: INTERFACE`".into()),
        );
    }
    PRoute {
        to,
        via: v.via.clone(),
        dev: v.dev.clone(),
    }
}

/// `ADDR/PREFIX` → (address, prefix length).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    let addr: IpAddr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn uml(d: &mut Diags, topo: &Topology, name: &Spanned<String>, n: &Node, base: &Path) -> PUml {
    let kernel_s = n.kernel.as_ref().or(topo.defaults.kernel.as_ref());
    let kernel_name = kernel_s
        .map(|k| k.value.as_str())
        .unwrap_or(crate::uml::DEFAULT_KERNEL);
    let kernel_path = if kernel_name.contains('/') {
        resolve(base, kernel_name)
    } else {
        PathBuf::from(kernel_name)
    };
    let kernel = crate::uml::find_kernel(&kernel_path.to_string_lossy());
    if kernel.is_none() {
        let at = kernel_s.map(|k| k.referenced).unwrap_or(name.referenced);
        d.at(
            at,
            format!("UML kernel {kernel_name:?} of node `{}` not found", name.value),
            Some(
                "install Debian's user-mode-linux (linux.uml) or set `kernel:` to the path of a UML kernel"
                    .into(),
            ),
        );
    }
    let mem_s = n.mem.as_ref().or(topo.defaults.mem.as_ref());
    let mem = mem_s
        .map(|m| m.value.clone())
        .unwrap_or_else(|| "64M".into());
    let mem_ok = {
        let digits = mem.trim_end_matches(['K', 'M', 'G', 'k', 'm', 'g']);
        !digits.is_empty()
            && digits.len() + 1 >= mem.len()
            && digits.parse::<u32>().is_ok_and(|v| v > 0)
    };
    if !mem_ok && let Some(m) = mem_s {
        d.on(
            m,
            format!("mem {:?} is not a size", m.value),
            Some("e.g. mem: 64M".into()),
        );
    }
    let root = n.root.as_ref().map(|r| (r, resolve(base, &r.value)));
    let image = n.image.as_ref().map(|i| (i, resolve(base, &i.value)));
    match (&root, &image) {
        (None, None) => d.on(
            name,
            format!("UML node `{}` has neither `root` nor `image`", name.value),
            Some("set `root: DIR` (booted through hostfs) or `image: FILE` (ubd0 with a copy-on-write file)".into()),
        ),
        (Some((r, _)), Some(_)) => d.on(
            r,
            format!("UML node `{}` has both `root` and `image`", name.value),
            Some("keep one of them".into()),
        ),
        (Some((r, p)), None) if !p.is_dir() => d.on(
            r,
            format!("root directory {} of node `{}` does not exist", p.display(), name.value),
            Some("point `root:` at a directory holding the guest's file system".into()),
        ),
        (None, Some((i, p))) if !p.is_file() => d.on(
            i,
            format!("disk image {} of node `{}` does not exist", p.display(), name.value),
            Some("point `image:` at a file system image".into()),
        ),
        _ => {}
    }
    for a in &n.args {
        if a.value.starts_with("vec") || a.value.starts_with("umid=") || a.value.starts_with("ubd0")
        {
            d.on(
                a,
                format!("kernel argument {:?} is set by vecbox", a.value),
                Some("describe interfaces as links; vecbox sets umid= and ubd0=".into()),
            );
        }
    }
    // With the host's own root (`root: /`) guest paths are host paths: a relative
    // `init` is taken relative to the topology file, like every other path in it.
    let host_root = root.as_ref().is_some_and(|(_, p)| p == Path::new("/"));
    let init = n.init.clone().map(|i| {
        if host_root && !i.starts_with('/') {
            resolve(base, &i).display().to_string()
        } else {
            i
        }
    });
    PUml {
        kernel: kernel.unwrap_or(kernel_path),
        mem,
        root: root.map(|(_, p)| p),
        image: image.map(|(_, p)| p),
        init,
        args: n.args.iter().map(|a| a.value.clone()).collect(),
    }
}

/// The node names, for suggestions.
fn node_names(topo: &Topology) -> Vec<&str> {
    topo.nodes.iter().map(|(k, _)| k.value.as_str()).collect()
}

/// "did you mean" over node names.
fn suggest_node(topo: &Topology, word: &str) -> Option<String> {
    let names = node_names(topo);
    match closest(word, &names) {
        Some(c) => Some(format!("did you mean `{c}`? (nodes: {})", names.join(", "))),
        None => Some(format!("nodes: {}", names.join(", "))),
    }
}

#[cfg(test)]
mod tests;
