//! Network namespaces and links, configured over rtnetlink (never by running `ip`).
//!
//! Namespaces are named the way iproute2 names them (a bind mount of the namespace file
//! at `/run/netns/NAME`), so `ip netns exec NAME ...` works on what vecbox builds.
//! `setns` moves only the calling thread, so every operation inside a namespace runs on
//! a short-lived dedicated thread ([`NetNs::run`]) with its own single-threaded tokio
//! runtime for rtnetlink; sockets opened there stay in that namespace.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

mod edit;
mod links;
pub use edit::{Iface, del_address, del_route, is_errno, list_ifaces};
pub use links::{
    LinkCounters, add_bridge, add_neighbour, add_route, add_veth_across, alias, dump_links, mac_of,
    move_to, set_alias, set_mac, set_master, set_mtu,
};

/// Where named network namespaces live (as iproute2).
pub const NETNS_DIR: &str = "/run/netns";

/// Errors of namespace and link operations.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("network namespace {name}: {op}: {source}")]
    Netns {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{op} {what}: {source}")]
    Rtnl {
        op: &'static str,
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("interface {0} not found")]
    NoLink(String),
    #[error("namespace thread failed: {0}")]
    Thread(String),
}

fn ns_err<'a>(name: &'a str, op: &'static str) -> impl FnOnce(io::Error) -> NetlinkError + 'a {
    move |source| NetlinkError::Netns {
        name: name.to_string(),
        op,
        source,
    }
}

/// A named network namespace that this process created. Removed on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    path: PathBuf,
    owned: bool,
}

fn ensure_netns_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_DIR)?;
    // Make /run/netns a shared mount point, as `ip netns add` does, so that namespace
    // mounts propagate to other mount namespaces.
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    if nix::mount::mount(None::<&str>, NETNS_DIR, Some("none"), shared, None::<&str>).is_err() {
        nix::mount::mount(
            Some(NETNS_DIR),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(io::Error::from)?;
        nix::mount::mount(None::<&str>, NETNS_DIR, Some("none"), shared, None::<&str>)
            .map_err(io::Error::from)?;
    }
    Ok(())
}

impl NetNs {
    /// Create namespace `name` (fails if it exists).
    pub fn create(name: &str) -> Result<NetNs, NetlinkError> {
        if name.is_empty() || name.contains('/') || name.len() > 200 {
            return Err(ns_err(name, "create")(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a namespace name is a non-empty file name",
            )));
        }
        ensure_netns_dir().map_err(ns_err(name, "preparing /run/netns"))?;
        let path = Path::new(NETNS_DIR).join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(ns_err(name, "create"))?;
        let ns = NetNs {
            name: name.to_string(),
            path: path.clone(),
            owned: true,
        };
        let mounted = std::thread::spawn(move || -> io::Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)
        })
        .join()
        .map_err(|_| NetlinkError::Thread("unshare thread panicked".into()))?;
        // On failure `ns` is dropped here and removes the placeholder file.
        mounted.map_err(ns_err(name, "unshare/mount"))?;
        Ok(ns)
    }

    /// Refer to an existing namespace without taking ownership (not removed on drop).
    pub fn existing(name: &str) -> NetNs {
        NetNs {
            name: name.to_string(),
            path: Path::new(NETNS_DIR).join(name),
            owned: false,
        }
    }

    /// Keep the namespace when this handle is dropped (its removal is someone else's
    /// job, e.g. a lab's journal).
    pub fn persist(mut self) -> NetNs {
        self.owned = false;
        self
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Open the namespace file (for `setns` or `IFLA_NET_NS_FD`).
    pub fn open(&self) -> Result<File, NetlinkError> {
        File::open(&self.path).map_err(ns_err(&self.name, "open"))
    }

    /// Run `f` on a new thread that has entered this namespace; return its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NetlinkError> {
        self.spawn(f)?
            .join()
            .map_err(|_| NetlinkError::Thread(format!("thread in {} panicked", self.name)))?
    }

    /// Start `f` on a new thread inside this namespace without waiting for it.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T, NetlinkError>>, NetlinkError> {
        let file = self.open()?;
        let name = self.name.clone();
        Ok(std::thread::spawn(move || -> Result<T, NetlinkError> {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| ns_err(&name, "setns")(e.into()))?;
            Ok(f())
        }))
    }

    /// Run an rtnetlink conversation inside this namespace.
    pub fn rtnl<T, F, Fut>(&self, f: F) -> Result<T, NetlinkError>
    where
        T: Send + 'static,
        F: FnOnce(rtnetlink::Handle) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, NetlinkError>>,
    {
        self.run(move || rtnl_here(f))?
    }

    /// Remove the namespace (unmount and unlink). Processes still inside keep it alive
    /// until they exit.
    pub fn delete(mut self) -> Result<(), NetlinkError> {
        self.owned = false;
        remove_ns_file(&self.name, &self.path)
    }
}

fn remove_ns_file(name: &str, path: &Path) -> Result<(), NetlinkError> {
    let _ = nix::mount::umount2(path, MntFlags::MNT_DETACH);
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ns_err(name, "remove")(e)),
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.owned {
            let _ = remove_ns_file(&self.name, &self.path);
        }
    }
}

/// Run an rtnetlink conversation in the calling thread's namespace.
pub fn rtnl_here<T, F, Fut>(f: F) -> Result<T, NetlinkError>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: std::future::Future<Output = Result<T, NetlinkError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| NetlinkError::Thread(e.to_string()))?;
    rt.block_on(async move {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| NetlinkError::Thread(e.to_string()))?;
        tokio::spawn(conn);
        f(handle).await
    })
}

fn rtnl_err(
    op: &'static str,
    what: impl Into<String>,
) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Rtnl { op, what, source }
}

/// Index of link `name` in the handle's namespace.
pub async fn link_index(h: &rtnetlink::Handle, name: &str) -> Result<u32, NetlinkError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(msg.header.index),
        _ => Err(NetlinkError::NoLink(name.to_string())),
    }
}

/// Create veth pair `a`–`b` in the handle's namespace; `b` is moved into `peer_ns`
/// (an open namespace file) when given.
pub async fn add_veth(
    h: &rtnetlink::Handle,
    a: &str,
    b: &str,
    peer_ns: Option<&File>,
) -> Result<(), NetlinkError> {
    h.link()
        .add(rtnetlink::LinkVeth::new(a, b).build())
        .execute()
        .await
        .map_err(rtnl_err("creating veth", format!("{a}/{b}")))?;
    if let Some(ns) = peer_ns {
        let msg = rtnetlink::LinkUnspec::new_with_name(b)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        h.link()
            .set(msg)
            .execute()
            .await
            .map_err(rtnl_err("moving", b))?;
    }
    Ok(())
}

/// Bring link `name` up.
pub async fn set_up(h: &rtnetlink::Handle, name: &str) -> Result<(), NetlinkError> {
    let msg = rtnetlink::LinkUnspec::new_with_name(name).up().build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(rtnl_err("bringing up", name))
}

/// Add `addr/prefix` to link `name`, usable at once.
///
/// IPv6 addresses are added with `IFA_F_NODAD` (as `ip address add ... nodad`): the
/// kernel skips duplicate address detection, so the address is never *tentative* and a
/// program may bind to it or send from it as soon as this returns (with DAD it could
/// not for a second or two: "Cannot assign requested address"). The addresses vecbox
/// adds are chosen by whoever wrote the lab, so there is nobody to detect.
pub async fn add_address(
    h: &rtnetlink::Handle,
    name: &str,
    addr: IpAddr,
    prefix: u8,
) -> Result<(), NetlinkError> {
    let idx = link_index(h, name).await?;
    let mut req = h.address().add(idx, addr, prefix);
    if addr.is_ipv6() {
        no_dad(req.message_mut());
    }
    req.execute()
        .await
        .map_err(rtnl_err("adding address to", name))
}

/// Mark an address message `IFA_F_NODAD`, in the header's 8-bit flags and in the
/// 32-bit `IFA_FLAGS` attribute (which the kernel prefers when present).
fn no_dad(msg: &mut rtnetlink::packet_route::address::AddressMessage) {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
    msg.header.flags |= AddressHeaderFlags::Nodad;
    msg.attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
}

/// Delete link `name` (a veth takes its peer with it).
pub async fn delete_link(h: &rtnetlink::Handle, name: &str) -> Result<(), NetlinkError> {
    let idx = link_index(h, name).await?;
    h.link()
        .del(idx)
        .execute()
        .await
        .map_err(rtnl_err("deleting", name))
}
