//! Launching real User Mode Linux kernels (lab nodes, interop tests, benchmark
//! baselines).
//!
//! Debian bookworm's `linux.uml` (6.1) cannot run guest processes on hosts whose XSAVE
//! area is larger than it expects (AVX-512, AMX): it sizes the XSTATE regset buffer for
//! AVX only, the host refuses every register restore, and init dies with "ptrace set fp
//! regs failed". vecbox launches UML with a seccomp filter that hides that regset
//! ([`crate::sys::seccomp::hide_xstate_regset`]), so UML falls back to FXSAVE-only
//! state. FXSAVE does not carry AVX registers, so guest programs must not use AVX: the
//! launcher also passes `GLIBC_TUNABLES` (which the kernel hands to init as an
//! environment variable) turning off glibc's AVX/AVX-512 string functions. Both are
//! applied only on hosts that need them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Default kernel, found on `PATH` (Debian's `user-mode-linux` package).
pub const DEFAULT_KERNEL: &str = "linux.uml";

/// Kernel argument keeping guest glibc off AVX (its state is not preserved by FXSAVE).
pub const GUEST_TUNABLES: &str = "GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-ERMS,-FSRM";

/// `true` when this host's CPU has XSAVE state beyond AVX (AVX-512 or AMX), which older
/// UML kernels cannot save and restore.
pub fn host_needs_shim() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines().find(|l| l.starts_with("flags")).is_some_and(|l| {
                l.split_whitespace()
                    .any(|f| f == "avx512f" || f == "amx_tile")
            })
        })
        .unwrap_or(false)
}

/// Resolve `kernel` (a path, or a name looked up on `PATH`).
pub fn find_kernel(kernel: &str) -> Option<PathBuf> {
    let p = Path::new(kernel);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(kernel))
            .find(|c| c.is_file())
    })
}

/// Kernel arguments for a hostfs root at `root` running `init`, console on stdio.
pub fn hostfs_args(root: &Path, init: &str, mem_mb: u32) -> Vec<String> {
    vec![
        "root=/dev/root".into(),
        "rootfstype=hostfs".into(),
        format!("rootflags={}", root.display()),
        "rw".into(),
        format!("init={init}"),
        format!("mem={mem_mb}M"),
        "con=null".into(),
        "con0=fd:0,fd:1".into(),
    ]
}

/// Make `cmd` (which executes a UML kernel, directly or through wrappers such as
/// `ip netns exec`, since the filter survives `execve`) work on this host, adding the
/// compatibility filter and guest tunables when the host needs them.
pub fn prepare(cmd: &mut Command) -> std::io::Result<()> {
    if host_needs_shim() {
        let prog = crate::sys::seccomp::hide_xstate_regset()?;
        crate::sys::seccomp::apply_in_child(cmd, prog);
        cmd.arg(GUEST_TUNABLES);
    }
    Ok(())
}
