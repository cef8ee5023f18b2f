use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use super::*;
use std::sync::atomic::{AtomicI32, Ordering};

/// The test process, for children that signal it (`getppid` is not on the allowlist).
static PARENT: AtomicI32 = AtomicI32::new(0);

/// Fork; in the child install `prog` and exit with `body()`'s value. Only plain
/// system calls run in the child (the test harness has other threads).
fn in_child(prog: &BpfProgram, body: fn() -> i32) -> WaitStatus {
    PARENT.store(std::process::id() as i32, Ordering::Relaxed);
    // SAFETY: the child only issues system calls on data prepared before the fork
    // (`prog`, constants) and leaves with `_exit`; it does not allocate or take locks.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = if seccompiler::apply_filter(prog).is_ok() {
                body()
            } else {
                99
            };
            // SAFETY: `_exit` ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).unwrap(),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn mount_nothing() -> i32 {
    // SAFETY: mount(2) with null pointers only reads them as absent/invalid.
    let r = unsafe { libc::syscall(libc::SYS_mount, 0usize, 0usize, 0usize, 0usize, 0usize) };
    if r == -1 { 3 } else { 4 }
}

fn allowed_calls() -> i32 {
    // SAFETY: plain system calls on constants; the socket is closed before returning.
    unsafe {
        if libc::getpid() <= 0 {
            return 5;
        }
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return 6;
        }
        libc::close(s);
    }
    0
}

fn bluetooth_socket() -> i32 {
    // SAFETY: socket(2) on constants; a descriptor that opens is closed.
    let s = unsafe { libc::socket(libc::AF_BLUETOOTH, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if s >= 0 {
        // SAFETY: `s` is a descriptor this function owns.
        unsafe { libc::close(s) };
    }
    7
}

fn tty_ioctl() -> i32 {
    let mut ws = [0u16; 4];
    // SAFETY: TIOCGWINSZ writes a `struct winsize` (4 u16) into `ws`.
    let _ = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, ws.as_mut_ptr()) };
    8
}

fn kill_parent_with_sigusr1() -> i32 {
    // SAFETY: kill(2) on plain integers; the filter stops the call before delivery.
    unsafe { libc::kill(PARENT.load(Ordering::Relaxed), libc::SIGUSR1) };
    10
}

fn probe_parent() -> i32 {
    // SAFETY: signal 0 delivers nothing; it only checks that the process exists.
    if unsafe { libc::kill(PARENT.load(Ordering::Relaxed), 0) } == 0 {
        0
    } else {
        11
    }
}

fn execve_true() -> i32 {
    let path = c"/bin/true";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: NUL-terminated path and null-terminated argv/envp arrays that outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    9 + errno().min(1)
}

#[test]
fn allowlist_is_well_formed() {
    let mut names: Vec<&str> = allowlist::ALLOWLIST.iter().map(|a| a.name()).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "a system call is listed twice");
    for a in allowlist::ALLOWLIST {
        assert!(a.why.len() > 8, "{}: say why vecbox needs it", a.name());
        assert!(a.sys.starts_with("SYS_"), "{}", a.sys);
    }
    for bad in [
        "execve", "execveat", "ptrace", "mount", "fork", "vfork", "chmod", "setuid",
    ] {
        assert!(!names.contains(&bad), "{bad} must not be allowed");
    }
    // kill(2) only probes whether a process exists.
    let kill = allowlist::ALLOWLIST.iter().find(|a| a.name() == "kill");
    assert!(
        matches!(
            kill.unwrap().args,
            allowlist::Args::OneOf {
                index: 1,
                values: [0]
            }
        ),
        "{kill:?}"
    );
}

#[test]
fn off_compiles_nothing() {
    assert!(guest_filter(Mode::Off).unwrap().is_none());
    for m in ["kill", "log", "off"] {
        assert_eq!(m.parse::<Mode>().unwrap().as_str(), m);
    }
    assert!("KILL".parse::<Mode>().is_err());
}

#[test]
fn kill_mode_allows_the_list_and_kills_on_anything_else() {
    let prog = guest_filter(Mode::Kill).unwrap().unwrap();
    assert_eq!(code(in_child(&prog, allowed_calls)), exited(0));
    assert_eq!(code(in_child(&prog, probe_parent)), exited(0));
    for body in [
        mount_nothing,
        bluetooth_socket,
        tty_ioctl,
        execve_true,
        kill_parent_with_sigusr1,
    ] {
        match in_child(&prog, body) {
            WaitStatus::Signaled(_, Signal::SIGSYS, _) => {}
            other => panic!("expected death by SIGSYS, got {other:?}"),
        }
    }
}

#[test]
fn log_mode_lets_the_call_through() {
    let prog = guest_filter(Mode::Log).unwrap().unwrap();
    // mount(NULL, ...) reaches the kernel and fails there (EFAULT), instead of SIGSYS.
    assert_eq!(code(in_child(&prog, mount_nothing)), exited(3));
    assert_eq!(code(in_child(&prog, allowed_calls)), exited(0));
}

fn exited(code: i32) -> Option<i32> {
    Some(code)
}

fn code(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, c) => Some(c),
        _ => None,
    }
}
