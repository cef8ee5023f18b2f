//! Why opening a tap failed, and what to do about it.
//!
//! Two different things refuse an unprivileged user a tap, and they need different fixes:
//! the *device's permissions* (`/dev/net/tun` is not readable and writable for the user:
//! `open` fails, and no capability vecbox asks for changes that) and a *missing
//! capability* (the device opened, but creating a tap — `TUNSETIFF` on a name that does
//! not exist — needs CAP_NET_ADMIN). The facts are gathered here ([`Facts::gather`]) and
//! turned into advice by a pure function ([`explain`]) that the unit tests drive.
//!
//! Gathering uses only what a sandboxed guest may still do when it reopens a tap (see
//! `sys::seccomp::allowlist`): `statx` on the device, reading `/proc/self/status`, and an
//! interface index lookup.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// The device node vecbox opens.
pub const TUN_PATH: &str = "/dev/net/tun";

/// `CAP_DAC_OVERRIDE` and `CAP_NET_ADMIN` bit numbers (linux/capability.h).
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_NET_ADMIN: u32 = 12;

/// The device node as `stat` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    /// Permission bits (`0o600`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub is_char: bool,
}

/// What the failure is judged against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `None`: the node does not exist.
    pub node: Option<Node>,
    /// File-system uid and gid (what the kernel checks a file's mode against).
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// In the effective capability set.
    pub net_admin: bool,
    pub dac_override: bool,
    /// An interface with the requested name exists in this network namespace.
    pub tap_exists: bool,
    /// How the user ran vecbox (`argv[0]`), for the `setcap` line.
    pub program: String,
}

impl Facts {
    /// Look at the device, this process and interface `ifname` (`None`: kernel-chosen).
    pub fn gather(ifname: Option<&str>) -> Facts {
        let node = std::fs::metadata(TUN_PATH).ok().map(|m| Node {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            is_char: m.file_type().is_char_device(),
        });
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |key: &str| -> Vec<&str> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.split_whitespace().collect())
                .unwrap_or_default()
        };
        // Uid:/Gid: are real, effective, saved, file-system.
        let fs_id = |key: &str| field(key).get(3).and_then(|v| v.parse().ok());
        let cap_eff = field("CapEff:")
            .first()
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or(0);
        let program = std::env::args_os()
            .next()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| p.contains('/'))
            .unwrap_or_else(|| "$(command -v vecbox)".into());
        Facts {
            node,
            uid: fs_id("Uid:").unwrap_or(u32::MAX),
            gid: fs_id("Gid:").unwrap_or(u32::MAX),
            groups: field("Groups:")
                .iter()
                .filter_map(|g| g.parse().ok())
                .collect(),
            net_admin: cap_eff & (1 << CAP_NET_ADMIN) != 0,
            dac_override: cap_eff & (1 << CAP_DAC_OVERRIDE) != 0,
            tap_exists: ifname.is_some_and(|n| super::super::sock::ifindex(n).is_ok()),
            program,
        }
    }

    /// Whether the node's mode grants this process read and write access.
    fn mode_allows(&self, n: &Node) -> bool {
        let bits = if n.uid == self.uid {
            n.mode >> 6
        } else if n.gid == self.gid || self.groups.contains(&n.gid) {
            n.mode >> 3
        } else {
            n.mode
        };
        bits & 0o6 == 0o6
    }
}

/// `crw-------` from a mode.
fn mode_string(n: &Node) -> String {
    let mut s = String::from(if n.is_char { "c" } else { "?" });
    for shift in [6, 3, 0] {
        let b = n.mode >> shift;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// The step that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `open("/dev/net/tun")`.
    Open,
    /// `ioctl(TUNSETIFF)`: create or attach to the tap.
    SetIff,
}

/// What is wrong and what to do, for `err` at `step` on tap `ifname` (empty when there
/// is nothing more to say than the error itself). Starts with "; ".
pub fn explain(step: Step, err: &io::Error, ifname: &str, f: &Facts) -> String {
    let errno = err.raw_os_error().unwrap_or(0);
    let setcap = format!(
        "give the binary the capability (as root: `setcap cap_net_raw,cap_net_admin+ep {}`) or run vecbox as root",
        f.program
    );
    let own_tap = format!(
        "or have root create the tap for this user once (`ip tuntap add dev {ifname} mode tap user {}`): vecbox attaches to a tap its user owns without any capability",
        f.uid
    );
    match (step, errno) {
        (Step::Open, libc::ENOENT) => format!(
            "; {TUN_PATH} does not exist: load the tun driver (`modprobe tun`) or create the node as root (`mkdir -p /dev/net && mknod -m 0666 {TUN_PATH} c 10 200`)"
        ),
        (Step::Open, libc::ENODEV | libc::ENXIO) => {
            "; the tun driver is not in this kernel or not loaded: `modprobe tun` as root".into()
        }
        (Step::Open, libc::EACCES | libc::EPERM) => match &f.node {
            Some(n) if !f.mode_allows(n) && !f.dac_override => {
                let mut s = format!(
                    "; the device's permissions refuse this user, whatever its capabilities: {TUN_PATH} is {} (mode {:04o}, owner uid {}, group gid {}) and vecbox runs as uid {} gid {} (file capabilities do not open files). Fix the device, as root: `chmod 0666 {TUN_PATH}`, its usual mode (creating a tap still needs CAP_NET_ADMIN; a udev rule `KERNEL==\"tun\", MODE=\"0666\"` keeps it across reboots), or `chgrp GROUP {TUN_PATH} && chmod 0660 {TUN_PATH}` with the user in GROUP; or run vecbox as root",
                    mode_string(n),
                    n.mode,
                    n.uid,
                    n.gid,
                    f.uid,
                    f.gid
                );
                if !f.net_admin && !f.tap_exists {
                    s.push_str(&format!(
                        ". Creating tap {ifname} will then also need CAP_NET_ADMIN, which this process lacks: {setcap}"
                    ));
                }
                s
            }
            Some(n) => format!(
                "; the device's mode ({}, {:04o}) lets this user open it, so something else refuses it: a device cgroup (a container must allow character device 10:200) or a security module (AppArmor, SELinux; see `dmesg`)",
                mode_string(n),
                n.mode
            ),
            None => String::new(),
        },
        (Step::SetIff, libc::EPERM) if f.net_admin => format!(
            "; this process has CAP_NET_ADMIN, but the kernel still refused tap {ifname}: the network namespace belongs to another user namespace, or a security module refused it (see `dmesg`)"
        ),
        (Step::SetIff, libc::EPERM) if f.tap_exists => format!(
            "; a missing capability is the problem, not the device ({TUN_PATH} opened fine): tap {ifname} exists and belongs to another user or group, and attaching to it needs CAP_NET_ADMIN. Either {setcap}; or have root give the tap to this user (`ip tuntap del dev {ifname} mode tap && ip tuntap add dev {ifname} mode tap user {}`)",
            f.uid
        ),
        (Step::SetIff, libc::EPERM) => format!(
            "; a missing capability is the problem, not the device ({TUN_PATH} opened fine): creating tap {ifname} needs CAP_NET_ADMIN, which this process does not have. Either {setcap}; {own_tap}"
        ),
        (Step::SetIff, libc::EBUSY) => format!(
            "; tap {ifname} is already attached to another process (a single-queue tap has one owner): stop that process or choose another ifname="
        ),
        (Step::SetIff, libc::EINVAL) if f.tap_exists => format!(
            "; interface {ifname} exists and is not a tap vecbox can attach to (another kind of interface, or a tun/tap made with other flags): choose another ifname= or delete it"
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(mode: u32, net_admin: bool) -> Facts {
        Facts {
            node: Some(Node {
                mode,
                uid: 0,
                gid: 0,
                is_char: true,
            }),
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
            net_admin,
            dac_override: false,
            tap_exists: false,
            program: "/usr/local/bin/vecbox".into(),
        }
    }

    fn err(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    #[test]
    fn a_0600_device_blames_the_device_and_says_how_to_fix_it() {
        let s = explain(Step::Open, &err(libc::EACCES), "tapz", &facts(0o600, true));
        assert!(s.contains("device's permissions refuse this user"), "{s}");
        assert!(s.contains("crw-------") && s.contains("0600"), "{s}");
        assert!(s.contains("uid 65534") && s.contains("chmod 0666"), "{s}");
        assert!(!s.contains("setcap"), "capabilities are present: {s}");
        // Without the capability as well: both problems named, device first.
        let s = explain(Step::Open, &err(libc::EACCES), "tapz", &facts(0o600, false));
        let (dev, cap) = (s.find("chmod").unwrap(), s.find("setcap").unwrap());
        assert!(dev < cap, "{s}");
    }

    #[test]
    fn group_and_owner_bits_are_read_as_the_kernel_does() {
        let mut f = facts(0o660, true);
        assert!(!f.mode_allows(f.node.as_ref().unwrap()));
        f.groups.push(0);
        assert!(f.mode_allows(f.node.as_ref().unwrap()));
        let mut f = facts(0o600, true);
        f.uid = 0;
        assert!(f.mode_allows(f.node.as_ref().unwrap()));
        let f = facts(0o666, true);
        assert!(f.mode_allows(f.node.as_ref().unwrap()));
        // The mode allows it, yet open was refused: not the mode's fault.
        let s = explain(Step::Open, &err(libc::EPERM), "t", &f);
        assert!(s.contains("device cgroup"), "{s}");
    }

    #[test]
    fn a_missing_capability_is_named_with_both_ways_out() {
        let s = explain(
            Step::SetIff,
            &err(libc::EPERM),
            "tapz",
            &facts(0o666, false),
        );
        assert!(
            s.contains("missing capability is the problem, not the device"),
            "{s}"
        );
        assert!(s.contains("CAP_NET_ADMIN"), "{s}");
        assert!(
            s.contains("setcap cap_net_raw,cap_net_admin+ep /usr/local/bin/vecbox"),
            "{s}"
        );
        assert!(
            s.contains("ip tuntap add dev tapz mode tap user 65534"),
            "{s}"
        );
        let mut f = facts(0o666, false);
        f.tap_exists = true;
        let s = explain(Step::SetIff, &err(libc::EPERM), "tapz", &f);
        assert!(s.contains("exists and belongs to another user"), "{s}");
        let s = explain(Step::SetIff, &err(libc::EPERM), "tapz", &facts(0o666, true));
        assert!(s.contains("has CAP_NET_ADMIN"), "{s}");
    }

    #[test]
    fn other_failures() {
        let f = facts(0o666, true);
        let s = explain(Step::Open, &err(libc::ENOENT), "t", &f);
        assert!(s.contains("modprobe tun") && s.contains("mknod"), "{s}");
        let s = explain(Step::SetIff, &err(libc::EBUSY), "t", &f);
        assert!(s.contains("already attached"), "{s}");
        assert_eq!(explain(Step::SetIff, &err(libc::EIO), "t", &f), "");
    }

    #[test]
    fn this_process_is_described() {
        let f = Facts::gather(Some("lo"));
        assert_eq!(f.uid, nix::unistd::getuid().as_raw());
        assert!(f.tap_exists, "lo exists");
        assert_eq!(f.node.is_some(), std::path::Path::new(TUN_PATH).exists());
    }
}
