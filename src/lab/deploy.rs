//! Building a lab from its [`Plan`]: run directory and journal, namespaces, underlays,
//! veth pairs and taps, addresses and routes, guests and UML nodes, host commands.
//!
//! Every kernel object is journaled before it is created. When any step fails the
//! caller tears down from the journal ([`super::teardown`]); the error names the object
//! that failed.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use super::journal::{self, Entry, Journal};
use super::plan::{self, PNode, Plan};
use super::topology::{LinkType, NodeKind};
use super::validate::parse_cidr;
use super::{LabError, spawn};
use crate::netlink::{self, NetNs};

/// A deployed lab: what the supervisor needs to keep it running.
pub struct Deployment {
    pub plan: Plan,
    pub dir: PathBuf,
    pub journal: Journal,
    /// Host-side tap descriptors, by link index (the taps live as long as these do).
    pub taps: Vec<(usize, File)>,
    /// Process of each guest/UML node (index into `plan.nodes`), as started.
    pub children: Vec<(usize, Child)>,
}

/// Progress callback: (step, total, what).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// Create the run directory and journal of `plan`, recording this process as the
/// supervisor. Fails if the directory exists (the caller cleans up leftovers first).
pub fn begin(plan: &Plan) -> Result<Deployment, LabError> {
    let dir = plan.run_dir();
    std::fs::create_dir_all(plan::RUN_ROOT)
        .map_err(|e| LabError::object(format!("creating {}", plan::RUN_ROOT), e))?;
    std::fs::create_dir(&dir)
        .map_err(|e| LabError::object(format!("creating {}", dir.display()), e))?;
    let mut journal = Journal::open(&dir)
        .map_err(|e| LabError::object(format!("creating the journal in {}", dir.display()), e))?;
    let me = std::process::id() as i32;
    journal
        .record(&Entry::Run {
            pid: me,
            start: journal::start_time(me).unwrap_or(0),
            file: plan.file.clone(),
        })
        .map_err(|e| LabError::object("writing the journal", e))?;
    let text =
        serde_json::to_string_pretty(plan).map_err(|e| LabError::object("saving the plan", e))?;
    std::fs::write(dir.join("plan.json"), text)
        .map_err(|e| LabError::object("saving the plan", e))?;
    Ok(Deployment {
        plan: plan.clone(),
        dir,
        journal,
        taps: Vec::new(),
        children: Vec::new(),
    })
}

fn ns_file(name: &str) -> Result<File, LabError> {
    File::open(Path::new(netlink::NETNS_DIR).join(name))
        .map_err(|e| LabError::object(format!("opening namespace {name}"), e))
}

fn nl(what: impl Into<String>) -> impl FnOnce(netlink::NetlinkError) -> LabError {
    let what = what.into();
    move |e| LabError::object(what, e)
}

/// Write `value` to `/proc/sys/...` for `key` (dotted) in the calling thread's namespace.
fn sysctl(key: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(format!("/proc/sys/{}", key.replace('.', "/")), value)
}

impl Deployment {
    fn record(&mut self, e: Entry) -> Result<(), LabError> {
        self.journal
            .record(&e)
            .map_err(|e| LabError::object("writing the journal", e))
    }

    /// Build everything and start every node; on error the caller tears down.
    pub fn build(&mut self, progress: Progress<'_>) -> Result<(), LabError> {
        let p = self.plan.clone();
        let total = p.nodes.len() * 2 + p.links.len() + p.underlays.len();
        let mut step = 0;
        self.write_files()?;
        for node in &p.nodes {
            step += 1;
            progress(step, total, &format!("namespace {}", node.netns));
            self.namespace(node)?;
        }
        for (i, u) in p.underlays.iter().enumerate() {
            step += 1;
            progress(step, total, &format!("underlay {i}"));
            let (a, b) = (&p.nodes[u.nodes[0]], &p.nodes[u.nodes[1]]);
            self.veth(
                a,
                &u.kernel[0],
                b,
                &u.kernel[1],
                u.mtu,
                &format!("underlay {}–{}", a.name, b.name),
            )?;
            for s in 0..2 {
                let n = &p.nodes[u.nodes[s]];
                let (k, addr) = (u.kernel[s].clone(), u.addr[s]);
                NetNs::existing(&n.netns)
                    .rtnl(move |h| async move {
                        netlink::add_address(&h, &k, IpAddr::V4(addr), 30).await?;
                        netlink::set_up(&h, &k).await
                    })
                    .map_err(nl(format!(
                        "configuring underlay {} in {}",
                        u.kernel[s], n.netns
                    )))?;
            }
        }
        for (li, l) in p.links.iter().enumerate() {
            step += 1;
            progress(
                step,
                total,
                &format!("link {} – {}", l.names[0], l.names[1]),
            );
            let (na, fa) = l.ends[0];
            let (nb, fb) = l.ends[1];
            let (a, b) = (&p.nodes[na], &p.nodes[nb]);
            let what = format!("link {} – {}", l.names[0], l.names[1]);
            match l.kind {
                LinkType::Veth => {
                    let (ka, kb) = (a.ifaces[fa].kernel.clone(), b.ifaces[fb].kernel.clone());
                    self.veth(
                        a,
                        &ka.unwrap_or_default(),
                        b,
                        &kb.unwrap_or_default(),
                        u32::from(l.mtu),
                        &what,
                    )?;
                }
                LinkType::Tap => {
                    let (host, f) = if a.kind == NodeKind::Host {
                        (a, fa)
                    } else {
                        (b, fb)
                    };
                    let file = self.tap(host, &host.ifaces[f].name, u32::from(l.mtu), &what)?;
                    self.taps.push((li, file));
                }
                _ => {}
            }
        }
        for node in &p.nodes {
            self.configure(node)?;
        }
        self.start_all(progress, &mut step, total)?;
        for node in p.nodes.iter().filter(|n| n.kind == NodeKind::Host) {
            for cmd in &node.exec {
                run_in(&node.name, &node.netns, cmd)?;
            }
        }
        Ok(())
    }

    fn write_files(&self) -> Result<(), LabError> {
        for node in &self.plan.nodes {
            if let Some(f) = &node.config {
                let path = spawn::guest_file(&self.dir, node);
                std::fs::write(&path, &f.text)
                    .map_err(|e| LabError::object(format!("writing {}", path.display()), e))?;
            }
        }
        Ok(())
    }

    fn namespace(&mut self, node: &PNode) -> Result<(), LabError> {
        let name = node.netns.clone();
        if Path::new(netlink::NETNS_DIR).join(&name).exists() {
            return Err(LabError::Busy {
                what: format!("network namespace {name} (node `{}`)", node.name),
                hint: format!("remove it (`ip netns del {name}`) or rename the lab"),
            });
        }
        self.record(Entry::Netns { name: name.clone() })?;
        let ns = NetNs::create(&name).map_err(nl(format!(
            "creating namespace {name} (node `{}`)",
            node.name
        )))?;
        let ns = ns.persist();
        self.record(Entry::NetnsMade { name: name.clone() })?;
        let marker = plan::marker(&self.plan.lab);
        let process = node.kind.is_process();
        ns.run(move || -> Result<(), netlink::NetlinkError> {
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
        if node.kind.is_process() {
            let dir = spawn::umid_dir(&node.umid);
            if dir.exists() {
                return Err(LabError::Busy {
                    what: format!("control directory {} (node `{}`)", dir.display(), node.name),
                    hint: "another guest or UML kernel uses this umid; stop it or rename the lab"
                        .into(),
                });
            }
            self.record(Entry::Dir { path: dir })?;
        }
        Ok(())
    }

    fn veth(
        &mut self,
        a: &PNode,
        ka: &str,
        b: &PNode,
        kb: &str,
        mtu: u32,
        what: &str,
    ) -> Result<(), LabError> {
        let peer = ns_file(&b.netns)?;
        let marker = plan::marker(&self.plan.lab);
        let (ka2, kb2) = (ka.to_string(), kb.to_string());
        NetNs::existing(&a.netns)
            .rtnl(move |h| async move {
                netlink::add_veth_across(&h, &ka2, &kb2, &peer, mtu, &marker).await
            })
            .map_err(nl(format!(
                "{what}: creating veth {}:{ka} / {}:{kb}",
                a.name, b.name
            )))?;
        let (kb3, marker) = (kb.to_string(), plan::marker(&self.plan.lab));
        NetNs::existing(&b.netns)
            .rtnl(move |h| async move { netlink::set_alias(&h, &kb3, &marker).await })
            .map_err(nl(format!("{what}: marking {}:{kb}", b.name)))
    }

    fn tap(&mut self, host: &PNode, name: &str, mtu: u32, what: &str) -> Result<File, LabError> {
        let (n, marker) = (name.to_string(), plan::marker(&self.plan.lab));
        let what2 = format!("{what}: creating tap {}:{name}", host.name);
        NetNs::existing(&host.netns)
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
            .map_err(nl(what.to_string()))?
    }

    /// Interfaces up, MACs and addresses, then routes and sysctls.
    fn configure(&mut self, node: &PNode) -> Result<(), LabError> {
        let n = node.clone();
        let what = format!("configuring node `{}`", node.name);
        NetNs::existing(&node.netns)
            .run(move || -> Result<(), LabError> {
                for (k, v) in &n.sysctls {
                    sysctl(k, v).map_err(|e| {
                        LabError::object(format!("host `{}`: sysctl {k}={v}", n.name), e)
                    })?;
                }
                let n2 = n.clone();
                netlink::rtnl_here(|h| async move {
                    for f in &n2.ifaces {
                        let Some(k) = &f.kernel else { continue };
                        if let Some(mac) = f
                            .mac
                            .as_ref()
                            .and_then(|m| m.parse::<crate::transport::spec::MacAddr>().ok())
                            && n2.kind == NodeKind::Host
                        {
                            netlink::set_mac(&h, k, mac.0).await?;
                        }
                        for a in &f.addresses {
                            if let Some((ip, len)) = parse_cidr(a) {
                                netlink::add_address(&h, k, ip, len).await?;
                            }
                        }
                        netlink::set_up(&h, k).await?;
                    }
                    for r in &n2.routes {
                        let Some((dst, len)) = parse_cidr(&r.to) else {
                            continue;
                        };
                        let via = r.via.as_ref().and_then(|v| v.parse().ok());
                        netlink::add_route(&h, dst, len, via, r.dev.as_deref()).await?;
                    }
                    Ok(())
                })
                .map_err(nl(format!("host `{}`: interfaces and routes", n.name)))
            })
            .map_err(nl(what))?
    }

    /// Start every guest and UML node (bess listeners first) and wait until all are ready.
    fn start_all(
        &mut self,
        progress: Progress<'_>,
        step: &mut usize,
        total: usize,
    ) -> Result<(), LabError> {
        let p = self.plan.clone();
        let listeners: Vec<usize> = p
            .links
            .iter()
            .filter_map(|l| l.listener.map(|s| l.ends[s].0))
            .collect();
        let first: Vec<usize> = (0..p.nodes.len())
            .filter(|i| listeners.contains(i))
            .collect();
        let rest: Vec<usize> = (0..p.nodes.len())
            .filter(|i| !listeners.contains(i) && p.nodes[*i].kind.is_process())
            .collect();
        for group in [first, rest] {
            let mut waiting = Vec::new();
            for ni in group {
                let node = &p.nodes[ni];
                *step += 1;
                progress(
                    *step,
                    total,
                    &format!("starting {} ({})", node.name, node.kind),
                );
                let since = spawn::log_len(&self.dir, &node.name);
                let child = self.spawn(ni)?;
                self.children.push((ni, child));
                waiting.push((ni, since));
            }
            self.wait_ready(&waiting)?;
        }
        Ok(())
    }

    /// Start node `ni`'s process and journal it.
    pub fn spawn(&mut self, ni: usize) -> Result<Child, LabError> {
        let node = self.plan.nodes[ni].clone();
        let taps: Vec<(i32, &File)> = node
            .ifaces
            .iter()
            .filter_map(|f| {
                let fd = f.tap_fd?;
                let file = self
                    .taps
                    .iter()
                    .find(|(li, _)| *li == f.link)
                    .map(|(_, file)| file)?;
                Some((fd, file))
            })
            .collect();
        let child = spawn::start(&self.plan, &node, &taps)?;
        let pid = child.id() as i32;
        self.record(Entry::Proc {
            node: node.name.clone(),
            pid,
            start: journal::start_time(pid).unwrap_or(0),
        })?;
        Ok(child)
    }

    fn wait_ready(&mut self, nodes: &[(usize, usize)]) -> Result<(), LabError> {
        let t0 = Instant::now();
        let mut pending: Vec<(usize, usize)> = nodes.to_vec();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for &(ni, since) in &pending {
                let node = &self.plan.nodes[ni];
                if spawn::is_ready(&self.dir, node, since) {
                    continue;
                }
                if let Some((_, c)) = self.children.iter_mut().find(|(i, _)| *i == ni)
                    && let Ok(Some(st)) = c.try_wait()
                {
                    return Err(LabError::Died {
                        node: node.name.clone(),
                        status: st.to_string(),
                        log: spawn::log_tail(&self.dir, &node.name, 8),
                    });
                }
                if t0.elapsed() > Duration::from_secs(u64::from(node.ready_timeout)) {
                    return Err(LabError::NotReady {
                        node: node.name.clone(),
                        secs: node.ready_timeout,
                        log: spawn::log_tail(&self.dir, &node.name, 8),
                    });
                }
                still.push((ni, since));
            }
            pending = still;
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }
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
