//! What changing a running lab needs besides creating: interfaces listed with their
//! index, alias and MTU; addresses and routes removed; and whether an error only says
//! the work is already done (so that every change can be made idempotent).

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;

use super::{NetlinkError, link_index, rtnl_err};

/// One interface of a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    /// The alias (`vecbox:LAB` on what vecbox made), empty when none.
    pub alias: String,
    pub mtu: u32,
}

/// Every interface of the handle's namespace.
pub async fn list_ifaces(h: &rtnetlink::Handle) -> Result<Vec<Iface>, NetlinkError> {
    let mut out = Vec::new();
    let mut links = h.link().get().execute();
    while let Some(msg) = links
        .try_next()
        .await
        .map_err(rtnl_err("listing", "links"))?
    {
        let mut i = Iface {
            name: String::new(),
            index: msg.header.index,
            alias: String::new(),
            mtu: 0,
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => i.name = n.clone(),
                LinkAttribute::IfAlias(s) => i.alias = s.clone(),
                LinkAttribute::Mtu(m) => i.mtu = *m,
                _ => {}
            }
        }
        out.push(i);
    }
    Ok(out)
}

/// `true` when `e` is the kernel answering errno `code` (e.g. `libc::EEXIST`).
pub fn is_errno(e: &NetlinkError, code: i32) -> bool {
    match e {
        NetlinkError::Rtnl {
            source: rtnetlink::Error::NetlinkError(m),
            ..
        } => m.raw_code().abs() == code,
        _ => false,
    }
}

/// Remove `addr/prefix` from link `name`; an address that is not there is not an error.
pub async fn del_address(
    h: &rtnetlink::Handle,
    name: &str,
    addr: IpAddr,
    prefix: u8,
) -> Result<(), NetlinkError> {
    let idx = link_index(h, name).await?;
    let mut found = h
        .address()
        .get()
        .set_link_index_filter(idx)
        .set_prefix_length_filter(prefix)
        .set_address_filter(addr)
        .execute();
    while let Some(msg) = found
        .try_next()
        .await
        .map_err(rtnl_err("listing addresses of", name))?
    {
        let same = msg.header.prefix_len == prefix
            && msg.attributes.iter().any(|a| match a {
                AddressAttribute::Address(a) | AddressAttribute::Local(a) => *a == addr,
                _ => false,
            });
        if same {
            h.address()
                .del(msg)
                .execute()
                .await
                .map_err(rtnl_err("deleting address from", name))?;
            return Ok(());
        }
    }
    Ok(())
}

/// Delete the route to `dst/plen` (via `via`, out of `dev`); a route that is not there
/// is not an error.
pub async fn del_route(
    h: &rtnetlink::Handle,
    dst: IpAddr,
    plen: u8,
    via: Option<IpAddr>,
    dev: Option<&str>,
) -> Result<(), NetlinkError> {
    let what = format!("{dst}/{plen}");
    let invalid = |e: &dyn std::fmt::Debug| NetlinkError::Thread(format!("route to {what}: {e:?}"));
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst, plen)
        .map_err(|e| invalid(&e))?;
    if let Some(gw) = via {
        b = b.gateway(gw).map_err(|e| invalid(&e))?;
    }
    if let Some(dev) = dev {
        match link_index(h, dev).await {
            Ok(i) => b = b.output_interface(i),
            // The device went, and its routes with it.
            Err(NetlinkError::NoLink(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    match h
        .route()
        .del(b.build())
        .execute()
        .await
        .map_err(rtnl_err("deleting route", what.clone()))
    {
        Err(e) if is_errno(&e, libc::ESRCH) || is_errno(&e, libc::ENOENT) => Ok(()),
        other => other,
    }
}
