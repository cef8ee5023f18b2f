//! The kernel side of lab steps — namespaces, veth pairs, taps, interface settings,
//! routes, sysctls, host commands — each idempotent: it checks what is there and does
//! only what is missing, so a step repeated after a crash converges. Nothing here
//! touches an interface or namespace that does not carry the lab's marker.

use std::fs::File;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::journal::{Entry, Journal};
use super::plan::{self, PNode, PRoute};
use super::validate::parse_cidr;
use super::{LabError, spawn};
use crate::netlink::{self, Iface, NetNs};

fn nl(what: impl Into<String>) -> impl FnOnce(netlink::NetlinkError) -> LabError {
    let what = what.into();
    move |e| LabError::object(what, e)
}

fn record(j: &mut Journal, e: Entry) -> Result<(), LabError> {
    j.record(&e)
        .map_err(|e| LabError::object("writing the journal", e))
}

/// Open namespace `name`'s file.
pub fn ns_file(name: &str) -> Result<File, LabError> {
    File::open(Path::new(netlink::NETNS_DIR).join(name))
        .map_err(|e| LabError::object(format!("opening namespace {name}"), e))
}

/// The inode of namespace `name`, if it exists.
pub fn ns_inode(name: &str) -> Option<u64> {
    std::fs::metadata(Path::new(netlink::NETNS_DIR).join(name))
        .ok()
        .map(|m| m.ino())
}

/// Write `value` to `/proc/sys/...` for `key` (dotted) in the calling thread's namespace.
fn sysctl(key: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(format!("/proc/sys/{}", key.replace('.', "/")), value)
}

/// Create the namespace of `node` (marked on its `lo`; no IPv6 on guests and UML) and
/// journal the control directory of a guest or UML node. A namespace of this lab that
/// already exists is kept; one that is not the lab's is an error.
pub fn netns(j: &mut Journal, lab: &str, node: &PNode, ours: bool) -> Result<(), LabError> {
    let name = node.netns.clone();
    let exists = Path::new(netlink::NETNS_DIR).join(&name).exists();
    if exists && !ours {
        return Err(LabError::Busy {
            what: format!("network namespace {name} (node `{}`)", node.name),
            hint: format!("remove it (`ip netns del {name}`) or rename the lab"),
        });
    }
    if !exists {
        record(j, Entry::Netns { name: name.clone() })?;
        NetNs::create(&name)
            .map_err(nl(format!(
                "creating namespace {name} (node `{}`)",
                node.name
            )))?
            .persist();
        record(j, Entry::NetnsMade { name: name.clone() })?;
    }
    let marker = plan::marker(lab);
    let process = node.kind.is_process();
    NetNs::existing(&name)
        .run(move || -> Result<(), netlink::NetlinkError> {
            if process {
                // Guest and UML ports carry only what the nodes send: no IPv6 chatter
                // (router solicitations, DAD) from the kernel on them.
                let _ = sysctl("net.ipv6.conf.all.disable_ipv6", "1");
                let _ = sysctl("net.ipv6.conf.default.disable_ipv6", "1");
            }
            netlink::rtnl_here(|h| async move {
                netlink::set_alias(&h, "lo", &marker).await?;
                netlink::set_up(&h, "lo").await
            })
        })
        .and_then(|r| r)
        .map_err(nl(format!("setting up namespace {name}")))?;
    if process {
        let dir = spawn::umid_dir(&node.umid);
        if dir.exists() && !ours {
            return Err(LabError::Busy {
                what: format!("control directory {} (node `{}`)", dir.display(), node.name),
                hint: "another guest or UML kernel uses this umid; stop it or rename the lab"
                    .into(),
            });
        }
        record(j, Entry::Dir { path: dir })?;
    }
    Ok(())
}

/// Delete namespace `netns` (killing what still runs in it) if it is this lab's, with
/// the control directory of `umid`; gone already is fine.
pub fn netns_delete(j: &mut Journal, lab: &str, netns: &str, umid: &str) -> Result<(), LabError> {
    if Path::new(netlink::NETNS_DIR).join(netns).exists() {
        if !super::teardown::marked(netns, lab) {
            return Err(LabError::Busy {
                what: format!("network namespace {netns}"),
                hint: format!(
                    "it does not carry the marker of lab `{lab}`; vecbox leaves it alone"
                ),
            });
        }
        super::teardown::remove_namespace(netns).map_err(nl(format!("deleting {netns}")))?;
    }
    record(
        j,
        Entry::NetnsGone {
            name: netns.to_string(),
        },
    )?;
    let dir = spawn::umid_dir(umid);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// The interfaces of namespace `netns`.
pub fn list(netns: &str) -> Result<Vec<Iface>, LabError> {
    NetNs::existing(netns)
        .rtnl(|h| async move { netlink::list_ifaces(&h).await })
        .map_err(nl(format!("listing the interfaces of {netns}")))
}

/// The interfaces of each namespace, listed in parallel (`None`: it could not be read).
pub fn list_all(names: &[String]) -> Vec<Option<Vec<Iface>>> {
    let handles: Vec<_> = names
        .iter()
        .map(|n| {
            NetNs::existing(n)
                .spawn(|| netlink::rtnl_here(|h| async move { netlink::list_ifaces(&h).await }))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.ok()?.join().ok()?.ok()?.ok())
        .collect()
}

/// Is interface `name` in `netns` there, and the lab's? (`Some(false)`: someone else's.)
fn owned(lab: &str, netns: &str, name: &str) -> Result<Option<bool>, LabError> {
    let want = plan::marker(lab);
    Ok(list(netns)?
        .into_iter()
        .find(|i| i.name == name)
        .map(|i| i.alias == want))
}

/// A veth pair `kernel[0]` in `netns[0]` – `kernel[1]` in `netns[1]`, marked, with
/// `mtu`. One that exists already (the lab's) is kept.
pub fn veth(
    lab: &str,
    netns: &[String; 2],
    kernel: &[String; 2],
    mtu: u32,
) -> Result<(), LabError> {
    let what = format!(
        "veth {}/{} – {}/{}",
        netns[0], kernel[0], netns[1], kernel[1]
    );
    match owned(lab, &netns[0], &kernel[0])? {
        Some(true) => return Ok(()),
        Some(false) => {
            return Err(LabError::Busy {
                what: format!("interface {} in {}", kernel[0], netns[0]),
                hint: "it was not made by this lab; rename or remove it".into(),
            });
        }
        None => {}
    }
    // A half of an earlier pair cannot be left at the other end: a veth end only exists
    // with its peer.
    let peer = ns_file(&netns[1])?;
    let marker = plan::marker(lab);
    let (a, b) = (kernel[0].clone(), kernel[1].clone());
    let m2 = marker.clone();
    NetNs::existing(&netns[0])
        .rtnl(move |h| async move { netlink::add_veth_across(&h, &a, &b, &peer, mtu, &m2).await })
        .map_err(nl(format!("creating {what}")))?;
    let b = kernel[1].clone();
    NetNs::existing(&netns[1])
        .rtnl(move |h| async move { netlink::set_alias(&h, &b, &marker).await })
        .map_err(nl(format!("marking {what}")))
}

/// Delete the veth pair (from whichever end is still there and the lab's).
pub fn veth_delete(lab: &str, netns: &[String; 2], kernel: &[String; 2]) -> Result<(), LabError> {
    for s in 0..2 {
        if !Path::new(netlink::NETNS_DIR).join(&netns[s]).exists() {
            continue;
        }
        if owned(lab, &netns[s], &kernel[s])? == Some(true) {
            return iface_delete(lab, &netns[s], &kernel[s]);
        }
    }
    Ok(())
}

/// Delete interface `kernel` of `netns` if it is there and the lab's.
pub fn iface_delete(lab: &str, netns: &str, kernel: &str) -> Result<(), LabError> {
    if !Path::new(netlink::NETNS_DIR).join(netns).exists()
        || owned(lab, netns, kernel)? != Some(true)
    {
        return Ok(());
    }
    let k = kernel.to_string();
    match NetNs::existing(netns).rtnl(move |h| async move { netlink::delete_link(&h, &k).await }) {
        Ok(()) | Err(netlink::NetlinkError::NoLink(_)) => Ok(()),
        Err(e) => Err(LabError::object(format!("deleting {netns}/{kernel}"), e)),
    }
}

/// A tap `name` in `netns` (marked, `mtu`); the returned descriptor keeps it alive.
pub fn tap(lab: &str, netns: &str, name: &str, mtu: u32) -> Result<File, LabError> {
    let (n, marker) = (name.to_string(), plan::marker(lab));
    let what = format!("creating tap {netns}/{name}");
    let what2 = what.clone();
    NetNs::existing(netns)
        .run(move || -> Result<File, LabError> {
            let (fd, _) = crate::sys::tun::open_tap(Some(&n), false)
                .map_err(|e| LabError::object(what2.clone(), e))?;
            netlink::rtnl_here(|h| async move {
                netlink::set_alias(&h, &n, &marker).await?;
                netlink::set_mtu(&h, &n, mtu).await
            })
            .map_err(nl(what2))?;
            Ok(File::from(fd))
        })
        .map_err(nl(what))?
}

/// Interface settings: MAC, MTU, addresses to remove and to add, then up. Addresses
/// already there (or already gone) are fine.
pub fn iface(
    netns: &str,
    kernel: &str,
    mac: Option<&str>,
    mtu: Option<u32>,
    add: &[String],
    del: &[String],
) -> Result<(), LabError> {
    let k = kernel.to_string();
    let mac = mac
        .map(|m| {
            m.parse::<crate::transport::spec::MacAddr>()
                .map(|m| m.0)
                .map_err(|e| LabError::object(format!("MAC of {netns}/{kernel}"), e))
        })
        .transpose()?;
    let parse =
        |v: &[String]| -> Vec<(IpAddr, u8)> { v.iter().filter_map(|a| parse_cidr(a)).collect() };
    let (add, del) = (parse(add), parse(del));
    NetNs::existing(netns)
        .rtnl(move |h| async move {
            if let Some(m) = mac {
                netlink::set_mac(&h, &k, m).await?;
            }
            if let Some(m) = mtu {
                netlink::set_mtu(&h, &k, m).await?;
            }
            for (ip, len) in del {
                netlink::del_address(&h, &k, ip, len).await?;
            }
            for (ip, len) in add {
                match netlink::add_address(&h, &k, ip, len).await {
                    Err(e) if netlink::is_errno(&e, libc::EEXIST) => {}
                    other => other?,
                }
            }
            netlink::set_up(&h, &k).await
        })
        .map_err(nl(format!("configuring {netns}/{kernel}")))
}

/// Set sysctls in `netns`.
pub fn sysctls(node: &str, netns: &str, set: &[(String, String)]) -> Result<(), LabError> {
    let (set, node) = (set.to_vec(), node.to_string());
    NetNs::existing(netns)
        .run(move || -> Result<(), LabError> {
            for (k, v) in &set {
                sysctl(k, v)
                    .map_err(|e| LabError::object(format!("host `{node}`: sysctl {k}={v}"), e))?;
            }
            Ok(())
        })
        .map_err(nl(format!("sysctls in {netns}")))?
}

/// Add (or delete) route `r` in `netns`; one that is already there (or gone) is fine.
pub fn route(node: &str, netns: &str, r: &PRoute, add: bool) -> Result<(), LabError> {
    let Some((dst, len)) = parse_cidr(&r.to) else {
        return Ok(());
    };
    let via = r.via.as_ref().and_then(|v| v.parse().ok());
    let dev = r.dev.clone();
    NetNs::existing(netns)
        .rtnl(move |h| async move {
            if add {
                match netlink::add_route(&h, dst, len, via, dev.as_deref()).await {
                    Err(e) if netlink::is_errno(&e, libc::EEXIST) => Ok(()),
                    other => other,
                }
            } else {
                netlink::del_route(&h, dst, len, via, dev.as_deref()).await
            }
        })
        .map_err(nl(format!("host `{node}`: route to {}", r.to)))
}

/// Run `sh -c cmd` in namespace `netns` for host `node`; fail with its output.
pub fn run_in(node: &str, netns: &str, cmd: &str) -> Result<(), LabError> {
    let mut c = std::process::Command::new("sh");
    c.args(["-c", cmd]);
    let ns = ns_file(netns)?;
    crate::sys::process::enter_netns_with_sys(&mut c, ns.into())
        .map_err(|e| LabError::object(format!("host `{node}`: {cmd:?}"), e))?;
    let out = c
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| LabError::object(format!("host `{node}`: running {cmd:?}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Err(LabError::Exec {
        node: node.to_string(),
        cmd: cmd.to_string(),
        status: out.status.to_string(),
        output: if text.trim().is_empty() {
            String::new()
        } else {
            format!(":\n    {}", text.trim().replace('\n', "\n    "))
        },
    })
}
