//! Link operations the lab runner needs: veth pairs whose ends are created directly in
//! two namespaces (so a name only has to be free where it ends up), ownership marking
//! through the interface alias, MTU, MAC, moving, enslaving, routes and counters.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::{NetlinkError, link_index, rtnl_err};

/// Create veth `a` (in the handle's namespace) with peer `b` placed directly in the
/// namespace `peer_ns`, both with `mtu` and the ownership alias `alias`.
pub async fn add_veth_across(
    h: &rtnetlink::Handle,
    a: &str,
    b: &str,
    peer_ns: &File,
    mtu: u32,
    alias: &str,
) -> Result<(), NetlinkError> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(b.to_string())
        .mtu(mtu)
        .setns_by_fd(peer_ns.as_raw_fd())
        .build();
    let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(a.to_string())
        .mtu(mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(rtnl_err("creating veth", format!("{a}/{b}")))?;
    set_alias(h, a, alias).await
}

/// Set the interface alias (`ip link set NAME alias ...`): vecbox writes
/// `vecbox:LAB` on everything it creates.
pub async fn set_alias(h: &rtnetlink::Handle, name: &str, alias: &str) -> Result<(), NetlinkError> {
    let msg = LinkUnspec::new_with_name(name).alias(alias).build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(rtnl_err("setting the alias of", name))
}

/// The alias of `name` (empty when none).
pub async fn alias(h: &rtnetlink::Handle, name: &str) -> Result<String, NetlinkError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfAlias(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default()),
        _ => Err(NetlinkError::NoLink(name.to_string())),
    }
}

/// Set the MTU of `name`.
pub async fn set_mtu(h: &rtnetlink::Handle, name: &str, mtu: u32) -> Result<(), NetlinkError> {
    let msg = LinkUnspec::new_with_name(name).mtu(mtu).build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(rtnl_err("setting the MTU of", name))
}

/// Set the MAC address of `name`.
pub async fn set_mac(h: &rtnetlink::Handle, name: &str, mac: [u8; 6]) -> Result<(), NetlinkError> {
    let msg = LinkUnspec::new_with_name(name)
        .address(mac.to_vec())
        .build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(rtnl_err("setting the MAC of", name))
}

/// Move `name` into the namespace `ns`.
pub async fn move_to(h: &rtnetlink::Handle, name: &str, ns: &File) -> Result<(), NetlinkError> {
    let msg = LinkUnspec::new_with_name(name)
        .setns_by_fd(ns.as_raw_fd())
        .build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(rtnl_err("moving", name))
}

/// Make `name` a port of `master` (a bridge or bond).
pub async fn set_master(
    h: &rtnetlink::Handle,
    name: &str,
    master: &str,
) -> Result<(), NetlinkError> {
    let idx = link_index(h, master).await?;
    let msg = LinkUnspec::new_with_name(name).controller(idx).build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(rtnl_err("setting the master of", name))
}

/// Add a route to `dst/plen` via `via` and/or out of `dev`.
pub async fn add_route(
    h: &rtnetlink::Handle,
    dst: IpAddr,
    plen: u8,
    via: Option<IpAddr>,
    dev: Option<&str>,
) -> Result<(), NetlinkError> {
    let what = format!("{dst}/{plen}");
    fn invalid_route(dst: IpAddr, plen: u8) -> impl Fn(&dyn std::fmt::Debug) -> NetlinkError {
        move |e| NetlinkError::Thread(format!("route to {dst}/{plen}: {e:?}"))
    }
    let bad = invalid_route(dst, plen);
    let invalid = |e| bad(&e);
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst, plen)
        .map_err(invalid)?;
    if let Some(gw) = via {
        b = b.gateway(gw).map_err(invalid)?;
    }
    if let Some(dev) = dev {
        b = b.output_interface(link_index(h, dev).await?);
    }
    h.route()
        .add(b.build())
        .execute()
        .await
        .map_err(rtnl_err("adding route", what))
}

/// Counters of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// Every interface of the handle's namespace: (name, alias, counters).
pub async fn dump_links(
    h: &rtnetlink::Handle,
) -> Result<Vec<(String, String, LinkCounters)>, NetlinkError> {
    let mut out = Vec::new();
    let mut links = h.link().get().execute();
    while let Some(msg) = links
        .try_next()
        .await
        .map_err(rtnl_err("listing", "links"))?
    {
        let mut name = String::new();
        let mut alias = String::new();
        let mut c = LinkCounters::default();
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::IfAlias(s) => alias = s.clone(),
                LinkAttribute::Stats64(s) => {
                    c = LinkCounters {
                        rx_packets: s.rx_packets,
                        tx_packets: s.tx_packets,
                        rx_bytes: s.rx_bytes,
                        tx_bytes: s.tx_bytes,
                        rx_dropped: s.rx_dropped,
                        tx_dropped: s.tx_dropped,
                    }
                }
                _ => {}
            }
        }
        out.push((name, alias, c));
    }
    Ok(out)
}

/// Create Linux bridge `name` (in the handle's namespace) with the ownership alias
/// `alias`; one that already exists is kept.
pub async fn add_bridge(
    h: &rtnetlink::Handle,
    name: &str,
    alias: &str,
) -> Result<(), NetlinkError> {
    if link_index(h, name).await.is_err() {
        h.link()
            .add(rtnetlink::LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(rtnl_err("creating bridge", name))?;
    }
    set_alias(h, name, alias).await
}

/// A permanent neighbour entry: `ip` is at `mac` on `dev` (replacing any entry for `ip`).
pub async fn add_neighbour(
    h: &rtnetlink::Handle,
    dev: &str,
    ip: IpAddr,
    mac: [u8; 6],
) -> Result<(), NetlinkError> {
    let idx = link_index(h, dev).await?;
    h.neighbours()
        .add(idx, ip)
        .link_layer_address(&mac)
        .replace()
        .execute()
        .await
        .map_err(rtnl_err(
            "adding the neighbour entry on",
            format!("{dev} for {ip}"),
        ))
}

/// The MAC address of `name`.
pub async fn mac_of(h: &rtnetlink::Handle, name: &str) -> Result<[u8; 6], NetlinkError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    if let Ok(Some(msg)) = links.try_next().await {
        for a in &msg.attributes {
            if let LinkAttribute::Address(m) = a
                && let Ok(mac) = <[u8; 6]>::try_from(m.as_slice())
            {
                return Ok(mac);
            }
        }
    }
    Err(NetlinkError::NoLink(name.to_string()))
}
