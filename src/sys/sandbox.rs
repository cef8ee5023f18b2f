//! Dropping privileges once a guest's transports are open.
//!
//! A guest needs CAP_NET_RAW (packet and raw IP sockets) and CAP_NET_ADMIN (creating
//! taps, SO_RCVBUFFORCE) only while it opens its transports. After that it clears its
//! effective, inheritable, ambient and bounding sets, sets `no_new_privs`, and runs the
//! data path unprivileged. Those two capabilities stay in the *permitted* set only,
//! because the control socket can reopen transports (`reboot`, `config vecN:...`):
//! [`with_net_capabilities`] raises them into the effective set for the duration of
//! that call and clears them again.

use std::io;

use capctl::{CapSet, CapState};

/// Clear the effective, permitted and inheritable sets, the ambient set and, when
/// allowed, the bounding set; then set `PR_SET_NO_NEW_PRIVS`.
pub fn drop_all_capabilities() -> io::Result<()> {
    let to_io = |e: capctl::Error| io::Error::from_raw_os_error(e.code());
    // The ambient set may be unsupported on old kernels; that is fine.
    let _ = capctl::ambient::clear();
    let bounding_allowed = CapState::get_current()
        .map_err(to_io)?
        .effective
        .has(capctl::Cap::SETPCAP);
    if bounding_allowed {
        capctl::bounding::clear().map_err(to_io)?;
    }
    let mut st = CapState::get_current().map_err(to_io)?;
    st.effective = CapSet::empty();
    st.permitted = CapSet::empty();
    st.inheritable = CapSet::empty();
    st.set_current().map_err(to_io)?;
    nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)?;
    Ok(())
}

/// The capabilities a guest keeps (permitted, not effective) for reopening transports.
pub fn net_capabilities() -> CapSet {
    let mut s = CapSet::empty();
    s.add(capctl::Cap::NET_RAW);
    s.add(capctl::Cap::NET_ADMIN);
    s
}

/// Like [`drop_all_capabilities`], but keep `keep ∩ permitted` in the permitted set
/// (effective stays empty).
pub fn drop_capabilities_keeping(keep: CapSet) -> io::Result<()> {
    let to_io = |e: capctl::Error| io::Error::from_raw_os_error(e.code());
    let _ = capctl::ambient::clear();
    let mut st = CapState::get_current().map_err(to_io)?;
    if st.effective.has(capctl::Cap::SETPCAP) {
        capctl::bounding::clear().map_err(to_io)?;
    }
    st.permitted &= keep;
    st.effective = CapSet::empty();
    st.inheritable = CapSet::empty();
    st.set_current().map_err(to_io)?;
    nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)?;
    Ok(())
}

/// Run `f` with the permitted network capabilities raised into the effective set, then
/// clear the effective set again (also when raising fails: `f` then runs without).
pub fn with_net_capabilities<T>(f: impl FnOnce() -> T) -> T {
    let raise = |on: bool| {
        if let Ok(mut st) = CapState::get_current() {
            st.effective = if on {
                st.permitted & net_capabilities()
            } else {
                CapSet::empty()
            };
            let _ = st.set_current();
        }
    };
    raise(true);
    let out = f();
    raise(false);
    out
}

/// The capabilities in the calling thread's effective set, as text (`cap_net_raw,...`).
pub fn effective_capabilities() -> String {
    match CapState::get_current() {
        Ok(st) => st
            .effective
            .iter()
            .map(|c| format!("{c:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(","),
        Err(_) => String::from("?"),
    }
}
