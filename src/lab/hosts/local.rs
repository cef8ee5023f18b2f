//! The machine-local side of a multi-host lab: the lock file beside the topology, the
//! underlay sockets handed to tunnel ends, and the placement summary `check` prints.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::super::LabError;
use super::super::alloc::Lock;
use super::super::plan::Plan;
use super::super::topology::LinkType;

/// `true` for the spec of a tunnel end whose socket the lab hands over (`fd=`).
pub fn is_handed_socket(spec: &str) -> bool {
    spec.parse::<crate::transport::Spec>()
        .is_ok_and(|s| s.common.sock_fd.is_some())
}

/// The socket of cross-host link `link` for its local end `spec`: UDP bound to `src`
/// and `srcport` (L2TPv3) or raw IP protocol 47 bound to `src` (GRE), in this
/// process's network namespace (the machine's underlay).
pub fn bind_socket(link: &str, spec: &str) -> Result<std::fs::File, LabError> {
    use crate::transport::Kind;
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let what = |s: &str| format!("the underlay socket of link {link} ({s})");
    let spec: crate::transport::Spec = spec
        .parse()
        .map_err(|e| LabError::object(what("spec"), e))?;
    let (src, port, v6, ty, proto) = match &spec.kind {
        Kind::L2tpv3 {
            src, srcport, v6, ..
        } => (src, srcport.unwrap_or(0), *v6, Type::DGRAM, Protocol::UDP),
        Kind::Gre { src, v6, .. } => (src, 0, *v6, Type::RAW, Protocol::from(47)),
        _ => return Err(LabError::Unsupported(what("not a tunnel"))),
    };
    let ip: IpAddr = src
        .parse()
        .map_err(|e| LabError::object(what(&format!("src {src}")), e))?;
    let local = std::net::SocketAddr::new(ip, port);
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let sock = Socket::new(domain, ty.cloexec(), Some(proto))
        .map_err(|e| LabError::object(what("socket"), e))?;
    sock.bind(&SockAddr::from(local)).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                " — the port is taken (another lab or program on this host)".to_string()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                format!(" — {ip} is not an address of this host; check `address:` in `hosts:`")
            }
            _ => String::new(),
        };
        LabError::object(what(&format!("binding {local}{hint}")), e)
    })?;
    Ok(std::fs::File::from(std::os::fd::OwnedFd::from(sock)))
}

/// `DIR/STEM.lock.json` for the topology file `file` (`lab.yaml` → `lab.lock.json`).
pub fn lock_path(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "lab".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}.lock.json"))
}

/// The lock file beside `file`, if there is one and it reads.
pub fn read_lock(file: &Path) -> Option<Lock> {
    let text = std::fs::read_to_string(lock_path(file)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Write `p`'s lock beside its topology file when it differs from what is there
/// (written whole and renamed into place, so a reader never sees half of it).
pub fn write_lock(p: &Plan) -> std::io::Result<bool> {
    if p.hosts.is_empty() {
        return Ok(false);
    }
    let path = lock_path(&p.file);
    let text = serde_json::to_string_pretty(&p.lock).unwrap_or_default() + "\n";
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(true)
}

/// What `vecbox check` prints about placement and cross-host links (empty without
/// hosts).
pub fn summary(p: &Plan) -> String {
    let mut s = String::new();
    for h in &p.hosts {
        let nodes: Vec<&str> = p
            .nodes
            .iter()
            .filter(|n| n.host == h.name)
            .map(|n| n.name.as_str())
            .collect();
        s.push_str(&format!(
            "host {} ({}, underlay MTU {}{}): {}\n",
            h.name,
            h.address,
            h.underlay_mtu,
            h.ssh
                .as_ref()
                .map_or(String::new(), |x| format!(", ssh {x}")),
            if nodes.is_empty() {
                "no nodes".to_string()
            } else {
                nodes.join(", ")
            }
        ));
    }
    for l in &p.links {
        let Some(c) = &l.cross else { continue };
        let clamp = if u32::from(l.mtu) < c.requested {
            format!(
                " (clamped from {}: underlay {} − {} overhead)",
                c.requested, c.underlay_mtu, c.overhead
            )
        } else {
            String::new()
        };
        s.push_str(&format!(
            "cross-host link {} ({}) – {} ({}): {} mtu {}{}\n",
            l.names[0],
            c.hosts[0],
            l.names[1],
            c.hosts[1],
            if c.kind == LinkType::Gre {
                "gre"
            } else {
                "l2tpv3/udp"
            },
            l.mtu,
            clamp
        ));
    }
    s
}

/// Make `p` the plan of host `host`'s part of the lab (`vecbox up FILE --host NAME`):
/// the nodes placed there, the links between them, and the local ends of the links to
/// other hosts.
pub fn project(p: &mut Plan, host: &str) -> Result<(), LabError> {
    if p.hosts.is_empty() {
        return Err(LabError::Unsupported(format!(
            "--host {host}: lab `{}` has no `hosts:`; it runs on one machine (leave out --host)",
            p.lab
        )));
    }
    if !p.hosts.iter().any(|h| h.name == host) {
        let names: Vec<&str> = p.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(LabError::Unsupported(format!(
            "--host {host}: lab `{}` has no host `{host}` (hosts: {})",
            p.lab,
            names.join(", ")
        )));
    }
    p.local = Some(host.to_string());
    Ok(())
}
