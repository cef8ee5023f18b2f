//! `transport=fd`: an inherited, already-open descriptor (`fd=N`).
//!
//! Bare Ethernet frames, one per datagram. With vector I/O (the default) the descriptor
//! must be a socket (an AF_UNIX datagram/seqpacket socketpair end, an AF_PACKET socket);
//! with `vec=0` any descriptor that keeps message boundaries works, e.g. a tap opened by
//! a parent process (then without a vnet header).

use std::os::fd::AsFd;

use crate::sys::sock;

use super::port::{Caps, Opened, RxMode, TxMode};
use super::{OpenError, Spec, framing::Framing, max_tx_frame, rx_slot};

/// Adopt descriptor `fd`.
pub fn open(name: &str, spec: &Spec, fd: i32) -> Result<Opened, OpenError> {
    let bad = |why: String| OpenError::BadFd {
        port: name.to_string(),
        fd,
        why,
    };
    let owned =
        sock::adopt_inherited(fd).map_err(|e| bad(format!("not an open descriptor ({e})")))?;
    let is_socket = sock::is_socket(owned.as_fd()).map_err(|e| bad(e.to_string()))?;
    let vector = spec.common.vector;
    if vector && !is_socket {
        return Err(bad(String::from(
            "not a socket; vector I/O (recvmmsg/sendmmsg) needs one; add vec=0 for pipes or tap descriptors",
        )));
    }
    if is_socket {
        super::attach_bpffile(name, spec, owned.as_fd())?;
    }
    let (rx_mode, tx_mode) = match (vector, is_socket) {
        (true, _) => (RxMode::Mmsg, TxMode::Mmsg),
        (false, true) => (RxMode::Single, TxMode::Single),
        (false, false) => (RxMode::Read, TxMode::Write),
    };
    Ok(Opened {
        rx_fd: owned,
        tx_fd: None,
        rx_mode,
        tx_mode,
        framing: Framing::Bare,
        caps: Caps {
            rx_slot: rx_slot(spec, 0, false),
            vnet: false,
            tx_gso: false,
            max_tx_frame: max_tx_frame(spec),
            depth: usize::from(spec.common.depth),
        },
        host_if: None,
        fallbacks: 0,
        dest: None,
        ring: None,
    })
}
