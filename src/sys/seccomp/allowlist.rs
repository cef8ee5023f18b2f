//! The system calls a guest may make once it is sandboxed, as data: one line per call
//! with the reason vecbox needs it. Everything else is fatal (`seccomp=kill`, the
//! default) or logged by the kernel (`seccomp=log`).
//!
//! Collected, not guessed: the integration tests (`tests/{forwarding,guest,tunnels,
//! uml_interop,bpf,router,firewall,console,metrics}.rs`) were run with each guest under
//! `strace -f`, and the calls made after `prctl(PR_SET_NO_NEW_PRIVS)` (the moment the
//! guest drops its privileges) were gathered; `tests/lab.rs` guests (started by the
//! supervisor, not traced) run the same code and pass under the filter. See
//! docs/guest.md, "Sandbox", to repeat that when a change needs a new call. Calls made
//! only while opening the transports before the sandbox are here when the console's
//! `reboot` or `config vecN:...` makes them again later (traced with
//! `tests/console.rs`'s test that reopens every transport kind). The last section lists
//! the few calls not seen in any trace, each for a path the tests do not reach.
//!
//! Arguments are restricted where that is cheap and exact: socket families, ioctl
//! requests, prctl options, the signals `kill` (0: a liveness probe) and `tgkill` may send.

/// Which calls of one system call are allowed.
#[derive(Clone, Copy, Debug)]
pub enum Args {
    /// Any arguments.
    Any,
    /// Only when argument `index` (its low 32 bits) is one of `values`.
    OneOf { index: u8, values: &'static [u64] },
}

/// One allowed system call.
#[derive(Clone, Copy, Debug)]
pub struct Allowed {
    /// `libc::SYS_*` constant name.
    pub sys: &'static str,
    pub nr: libc::c_long,
    pub args: Args,
    /// Why a guest needs it.
    pub why: &'static str,
}

impl Allowed {
    /// The call's name as in `man 2` (`read`, `recvmmsg`, ...).
    pub fn name(&self) -> &'static str {
        self.sys.trim_start_matches("SYS_")
    }
}

macro_rules! allow {
    ($($sys:ident $(($index:literal in [$($v:expr),+ $(,)?]))? => $why:literal,)*) => {
        &[$(Allowed {
            sys: stringify!($sys),
            nr: libc::$sys,
            args: allow!(@args $($index, [$($v),+])?),
            why: $why,
        },)*]
    };
    (@args) => { Args::Any };
    (@args $index:literal, [$($v:expr),+]) => {
        Args::OneOf { index: $index, values: &[$($v as u64),+] }
    };
}

/// Request numbers of `/dev/net/tun` (see `sys::tun`).
const TUNSETIFF: u64 = 0x4004_54ca;
const TUNGETFEATURES: u64 = 0x8004_54cf;
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
const TUNSETVNETHDRSZ: u64 = 0x4004_54d8;

/// The allowlist.
pub const ALLOWLIST: &[Allowed] = allow! {
    // The data path and the event loop (seen in the traces).
    SYS_epoll_create1 => "the event loop's epoll set, created at the start of run()",
    SYS_epoll_ctl => "ports join/leave the epoll set (stop/go, hot-add, EPOLLOUT on a full queue)",
    SYS_epoll_wait => "the event loop waits on ports, console, signalfd and timerfd",
    SYS_recvmmsg => "batched receive on packet, tunnel and bess sockets (vec=1)",
    SYS_sendmmsg => "batched transmit on packet, tunnel and bess sockets (vec=1)",
    SYS_recvmsg => "single-frame receive (vec=0, fd transport); console requests and the descriptors passed with them (capture start)",
    SYS_sendmsg => "single-frame transmit (vec=0)",
    SYS_recvfrom => "metrics= HTTP requests; what a new raw tunnel socket queued before its filter",
    SYS_sendto => "console replies; metrics= HTTP responses",
    SYS_read => "tap receive, signalfd and timerfd reads, BPF files (bpffile=, console bpf)",
    SYS_write => "stderr logs (tracing), the exit report, stats= file",
    SYS_writev => "tap transmit (vnet header + frame)",
    SYS_rt_sigprocmask => "blocking SIGINT/SIGTERM for the signalfd; thread start",
    SYS_signalfd4 => "SIGINT/SIGTERM end the guest cleanly through a signalfd",
    SYS_timerfd_create => "the function tick timer and the impairment timer",
    SYS_timerfd_settime => "arming the function tick timer and the impairment timer (absolute deadlines)",
    SYS_close => "sockets of removed or reopened ports, files, HTTP connections",
    SYS_fcntl => "O_NONBLOCK/FD_CLOEXEC on new descriptors (hot-add, run-dir removal)",
    SYS_getpid => "run-directory removal checks the pid file is ours",
    SYS_exit_group => "the guest exiting (halt, SIGTERM, errors)",
    // Memory (seen).
    SYS_brk => "heap growth (hot-added ports, console text, reports)",
    SYS_mmap => "allocations, the metrics thread's stack and its view of the region, capture rings",
    SYS_munmap => "freeing allocations, rings of removed ports, rings of ended captures",
    SYS_mprotect => "the metrics thread's stack guard and heap arena",
    // The metrics= HTTP thread, started after the sandbox; it inherits the filter (seen).
    SYS_clone3 => "starting the metrics= HTTP thread",
    SYS_set_robust_list => "thread start",
    SYS_rseq => "thread start (restartable sequences registration)",
    SYS_sigaltstack => "thread start/exit: Rust's stack-overflow guard stack",
    SYS_sched_getaffinity => "thread start (glibc sizes the thread's CPU set)",
    SYS_gettid => "thread start",
    SYS_rt_sigaction => "thread start: glibc's internal signal handlers",
    SYS_prctl(0 in [libc::PR_SET_NAME, libc::PR_SET_TIMERSLACK]) =>
        "naming the metrics thread; timer slack 1 ns for the impairment timer (run() start)",
    SYS_kill(1 in [0]) => "metrics thread: is the guest (pid of the region) alive? (signal 0 only)",
    SYS_accept4 => "metrics= HTTP connections; bess listen= peers",
    SYS_poll => "std's checks on accepted HTTP connections; is a capture's reader still there (its pipe)",
    // Reopening transports: console reboot, config vecN:..., bess reconnects (seen).
    SYS_capget => "raising the kept network capabilities to reopen transports",
    SYS_capset => "raising and clearing them again",
    SYS_socket(0 in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_PACKET]) =>
        "reopened or hot-added ports (packet, GRE/L2TPv3, bess), interface lookups",
    SYS_bind => "binding reopened packet, tunnel and bess sockets",
    SYS_connect => "bess connecting (and reconnecting to a peer that went away), tunnel peers",
    SYS_listen => "bess listen= on reopen",
    SYS_eventfd2 => "bess connect placeholder while the peer is not there (reopen, hot-add)",
    SYS_setsockopt =>
        "buffers, PACKET_VNET_HDR, PACKET_RX_RING, UDP_SEGMENT/GRO, SO_ATTACH_FILTER (bpf), HTTP timeouts",
    SYS_getsockopt => "PACKET_STATISTICS of receive rings (ring_full drops), each tick and at exit",
    SYS_ioctl(1 in [
        libc::SIOCGIFINDEX, libc::FIONBIO, libc::SIOCETHTOOL,
        TUNSETIFF, TUNGETFEATURES, TUNSETOFFLOAD, TUNSETVNETHDRSZ,
    ]) => "interface index lookups, non-blocking mode, an interface's TSO setting (raw gro default), tap setup on reopen or hot-add",
    // Files (seen).
    SYS_openat => "/dev/net/tun on reopen, BPF programs (console bpf), stats= file",
    SYS_newfstatat => "file metadata (run-directory removal)",
    SYS_statx => "file metadata as Rust's std asks for it (BPF files, stats= file, a capture ring's size)",
    SYS_getdents64 => "removing the run directory at exit",
    SYS_unlinkat => "removing the run directory at exit",
    SYS_unlink => "removing a stale bess listen= socket path on reopen",
    // Not seen in the traces, allowed for paths the tests do not reach.
    SYS_futex => "a contended lock or once-cell between the main and metrics threads",
    SYS_sched_yield => "the metrics thread waiting for a consistent region snapshot",
    SYS_clock_nanosleep => "the metrics thread backing off after an accept error",
    SYS_getrandom => "hash-map keys if a thread builds its first HashMap",
    SYS_mremap => "the allocator growing a large allocation (big console replies)",
    SYS_madvise => "the allocator returning memory to the kernel",
    SYS_rt_sigreturn => "return from a signal handler, so a crash ends with its own signal",
    SYS_tgkill(2 in [libc::SIGABRT]) => "abort() after a panic, so it ends with SIGABRT",
    SYS_exit => "a thread exiting",
    SYS_clone => "thread start where the kernel or libc has no clone3",
    SYS_epoll_pwait => "epoll_wait as libc versions without the plain call issue it",
    SYS_fstat => "fd= transport type check as older libc versions issue it",
    SYS_clock_gettime => "CLOCK_MONOTONIC for impairment deadlines when the vDSO falls back to the system call (a clocksource without vDSO support)",
};
