//! Capturing an interface that no vecbox guest carries (a host↔host veth of a lab):
//! an AF_PACKET socket bound to it inside its network namespace, with the capture
//! filter attached in the kernel. Needs CAP_NET_RAW in that namespace (root).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::filter::Program;
use crate::netlink::NetNs;
use crate::sys::packet::{self, ETH_P_ALL, Received};

/// Receive buffer asked for (frames queue here while the writer is busy).
const RCVBUF: usize = 8 << 20;

/// Errors opening a host capture.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("capturing {ifname} in namespace {netns}: {source}")]
    Open {
        netns: String,
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error("entering namespace {netns} to capture {ifname}: {msg}")]
    Netns {
        netns: String,
        ifname: String,
        msg: String,
    },
}

/// A packet socket on one interface.
pub struct HostCapture {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// Frames read.
    pub received: u64,
    /// Frames the kernel dropped for want of buffer space.
    pub dropped: u64,
}

fn open_here(ifname: &str, filter: Option<Vec<packet::SockFilter>>) -> io::Result<OwnedFd> {
    let index = crate::sys::sock::ifindex(ifname).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("no interface {ifname} here ({e}); is the lab up?"),
        )
    })?;
    let fd = packet::unbound()?;
    if let Some(f) = filter {
        packet::attach_filter(fd.as_fd(), &f)?;
    }
    let _ = packet::set_rcvbuf(fd.as_fd(), RCVBUF);
    // Bound last: nothing is queued before the filter is on.
    packet::bind(fd.as_fd(), index, ETH_P_ALL)?;
    Ok(fd)
}

impl HostCapture {
    /// Capture `ifname` in namespace `netns` (`None`: this process's namespace),
    /// keeping frames `filter` accepts, at most `snaplen` bytes of each.
    pub fn open(
        netns: Option<&str>,
        ifname: &str,
        filter: Option<&Program>,
        snaplen: u32,
    ) -> Result<HostCapture, HostError> {
        let insns = filter.map(|p| p.insns().to_vec());
        let name = ifname.to_string();
        let ns_name = netns.unwrap_or("(this namespace)").to_string();
        let fd = match netns {
            None => open_here(ifname, insns),
            Some(ns) => NetNs::existing(ns)
                .run(move || open_here(&name, insns))
                .map_err(|e| HostError::Netns {
                    netns: ns_name.clone(),
                    ifname: ifname.to_string(),
                    msg: e.to_string(),
                })?,
        }
        .map_err(|source| HostError::Open {
            netns: ns_name,
            ifname: ifname.to_string(),
            source,
        })?;
        Ok(HostCapture {
            fd,
            buf: vec![0u8; (snaplen as usize).clamp(64, 1 << 18)],
            received: 0,
            dropped: 0,
        })
    }

    /// Descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The next frame, if one is waiting.
    pub fn recv(&mut self) -> io::Result<Option<(Received, &[u8])>> {
        match packet::recv_frame(self.fd.as_fd(), &mut self.buf)? {
            Some(r) => {
                self.received += 1;
                Ok(Some((r, &self.buf[..r.len])))
            }
            None => Ok(None),
        }
    }

    /// Bring `dropped` up to date with the kernel's counter (which resets on read).
    pub fn update_drops(&mut self) {
        if let Ok(s) = crate::sys::ring::take_stats(self.fd.as_fd()) {
            self.dropped += u64::from(s.drops);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_is_named() {
        // Unprivileged runs fail at the socket; privileged ones at the name: either way
        // the message names the interface.
        let e = HostCapture::open(None, "vbnosuchif0", None, 100)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("vbnosuchif0"), "{e}");
        let e = HostCapture::open(Some("vbt-no-such-ns"), "eth0", None, 100)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("vbt-no-such-ns"), "{e}");
    }
}
