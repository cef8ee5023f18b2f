//! Child processes of the lab supervisor: entering a network namespace, inheriting
//! descriptors at fixed numbers, leaving the controlling session, and a private `/sys`
//! for `vecbox exec`. Everything that runs between `fork` and `exec` is a plain system
//! call on data prepared before the fork (no allocation, no locks).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::cvt;

/// Lowest descriptor number used for the parent-side copies of passed descriptors, so
/// they cannot collide with the target numbers (which are small).
const HIGH_FD: RawFd = 100;

/// Make the child of `cmd` enter the network namespace `ns` (an open `/run/netns/NAME`)
/// before it executes.
pub fn enter_netns(cmd: &mut Command, ns: OwnedFd) {
    let raw = ns.as_raw_fd();
    // SAFETY: the closure only calls setns(2) on a descriptor owned by the closure (kept
    // alive by moving `ns` into it); async-signal-safe, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &ns;
            cvt(libc::setns(raw, libc::CLONE_NEWNET)).map(drop)
        });
    }
}

/// Give the child of `cmd` each descriptor at the paired number (e.g. a tap at 3), open
/// across `exec`.
pub fn pass_fds(cmd: &mut Command, fds: Vec<(OwnedFd, RawFd)>) -> io::Result<()> {
    let mut high = Vec::with_capacity(fds.len());
    for (fd, target) in fds {
        // SAFETY: F_DUPFD_CLOEXEC on a valid descriptor returns a new descriptor or -1.
        let dup = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) })?;
        // SAFETY: `dup` was just returned by fcntl and is owned by nothing else.
        high.push((unsafe { OwnedFd::from_raw_fd(dup) }, target));
    }
    // SAFETY: dup2(2) only, on descriptors kept alive by the closure; async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for (fd, target) in &high {
                cvt(libc::dup2(fd.as_raw_fd(), *target))?;
            }
            Ok(())
        });
    }
    Ok(())
}

/// Start the child of `cmd` in a new session (no controlling terminal, not hit by the
/// terminal's SIGINT/SIGHUP).
pub fn new_session(cmd: &mut Command) {
    // SAFETY: setsid(2) only; async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// For `vecbox exec`: enter the network namespace `ns`, then give the child its own
/// mount namespace with `/sys` remounted, so that `/sys/class/net` shows the namespace's
/// interfaces (as `ip netns exec` does). Failing to remount `/sys` is not fatal.
pub fn enter_netns_with_sys(cmd: &mut Command, ns: OwnedFd) -> io::Result<()> {
    let raw = ns.as_raw_fd();
    let root = CString::new("/").map_err(io::Error::other)?;
    let sys = CString::new("/sys").map_err(io::Error::other)?;
    let sysfs = CString::new("sysfs").map_err(io::Error::other)?;
    // SAFETY: only system calls (setns, unshare, mount, umount2) on data prepared before
    // the fork and kept alive by the closure; async-signal-safe, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &ns;
            cvt(libc::setns(raw, libc::CLONE_NEWNET))?;
            if libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_SLAVE | libc::MS_REC,
                    std::ptr::null(),
                ) == 0
            {
                libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
                libc::mount(
                    sysfs.as_ptr(),
                    sys.as_ptr(),
                    sysfs.as_ptr(),
                    0,
                    std::ptr::null(),
                );
            }
            Ok(())
        });
    }
    Ok(())
}

/// Point descriptors 0, 1 and 2 of this process at `out` (stdin at /dev/null): used by
/// the detached supervisor once it has reported readiness to the terminal.
pub fn redirect_stdio(out: &std::fs::File) -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2(2) on valid descriptors owned by this function's arguments.
    unsafe {
        cvt(libc::dup2(null.as_raw_fd(), 0))?;
        cvt(libc::dup2(out.as_raw_fd(), 1))?;
        cvt(libc::dup2(out.as_raw_fd(), 2))?;
    }
    Ok(())
}

/// Give `sig` its default disposition again. A non-interactive shell starts background
/// jobs with SIGINT ignored, and an ignored signal is discarded before `sigwait` can
/// take it; a program that waits for SIGINT to clean up needs it back.
pub fn restore_default_signal(sig: nix::sys::signal::Signal) -> io::Result<()> {
    // SAFETY: installing SIG_DFL registers no handler code, so nothing here can run in
    // signal context.
    unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) }
        .map(|_| ())
        .map_err(io::Error::from)
}
