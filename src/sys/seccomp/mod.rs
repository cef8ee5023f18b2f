//! Seccomp filters: the guest's own allowlist ([`guest_filter`], [`install`]), and a
//! filter applied to child processes ([`hide_xstate_regset`], for UML).
//!
//! A child's filter is compiled before `fork` (it allocates) and installed in the child
//! right before `execve` (no allocation there); it survives the `execve`.

pub mod allowlist;

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

const PTRACE_GETREGSET: u64 = 0x4204;
const PTRACE_SETREGSET: u64 = 0x4205;
const NT_X86_XSTATE: u64 = 0x202;

fn target_arch() -> io::Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "seccomp filters need x86_64, aarch64 or riscv64",
        )
    })
}

fn to_io(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// What a sandboxed guest's filter does with a system call that is not on the allowlist
/// (guest setting `seccomp=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Kill the whole process (`SECCOMP_RET_KILL_PROCESS`): it dies with SIGSYS.
    #[default]
    Kill,
    /// Allow the call and have the kernel log it (`SECCOMP_RET_LOG`, see `dmesg` or
    /// the audit log): to find a missing call.
    Log,
    /// No filter (debugging only).
    Off,
}

impl Mode {
    /// The setting's value: `kill`, `log`, `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Kill => "kill",
            Mode::Log => "log",
            Mode::Off => "off",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = ();
    fn from_str(s: &str) -> Result<Mode, ()> {
        match s {
            "kill" => Ok(Mode::Kill),
            "log" => Ok(Mode::Log),
            "off" => Ok(Mode::Off),
            _ => Err(()),
        }
    }
}

/// Compile the guest allowlist ([`allowlist::ALLOWLIST`]); `None` for [`Mode::Off`].
pub fn guest_filter(mode: Mode) -> io::Result<Option<BpfProgram>> {
    let otherwise = match mode {
        Mode::Kill => SeccompAction::KillProcess,
        Mode::Log => SeccompAction::Log,
        Mode::Off => return Ok(None),
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for a in allowlist::ALLOWLIST {
        let list = match a.args {
            allowlist::Args::Any => Vec::new(),
            allowlist::Args::OneOf { index, values } => values
                .iter()
                .map(|&v| {
                    let c = SeccompCondition::new(
                        index,
                        SeccompCmpArgLen::Dword,
                        SeccompCmpOp::Eq,
                        v & 0xffff_ffff,
                    )
                    .map_err(to_io)?;
                    SeccompRule::new(vec![c]).map_err(to_io)
                })
                .collect::<io::Result<_>>()?,
        };
        if rules.insert(a.nr, list).is_some() {
            return Err(io::Error::other(format!(
                "seccomp allowlist names {} twice",
                a.name()
            )));
        }
    }
    let filter = SeccompFilter::new(rules, otherwise, SeccompAction::Allow, target_arch()?)
        .map_err(to_io)?;
    BpfProgram::try_from(filter).map(Some).map_err(to_io)
}

/// Install `prog` on every thread of the calling process (`SECCOMP_FILTER_FLAG_TSYNC`);
/// threads started later inherit it. Sets no_new_privs, which the kernel requires.
pub fn install(prog: &BpfProgram) -> io::Result<()> {
    seccompiler::apply_filter_all_threads(prog).map_err(to_io)
}

/// A filter that makes `ptrace(PTRACE_GETREGSET/SETREGSET, pid, NT_X86_XSTATE, ...)`
/// fail with EIO and allows everything else.
///
/// UML kernels before the fix for large XSAVE areas probe the XSTATE regset with a
/// buffer sized for x87/SSE/AVX only; on hosts with AVX-512 or AMX the host kernel then
/// refuses every `SETREGSET` (EFAULT) and the first guest process dies ("ptrace set fp
/// regs failed"). Without the regset UML falls back to `PTRACE_GETFPREGS`, which works
/// on every x86_64 host.
pub fn hide_xstate_regset() -> io::Result<BpfProgram> {
    let cond =
        |arg, value| SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, value);
    let rule = |req| -> io::Result<SeccompRule> {
        SeccompRule::new(vec![
            cond(0, req).map_err(to_io)?,
            cond(2, NT_X86_XSTATE).map_err(to_io)?,
        ])
        .map_err(to_io)
    };
    let rules = BTreeMap::from([(
        libc::SYS_ptrace,
        vec![rule(PTRACE_GETREGSET)?, rule(PTRACE_SETREGSET)?],
    )]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EIO as u32),
        target_arch()?,
    )
    .map_err(to_io)?;
    BpfProgram::try_from(filter).map_err(to_io)
}

/// Install `prog` in the child `cmd` spawns, just before it executes.
pub fn apply_in_child(cmd: &mut Command, prog: BpfProgram) {
    // SAFETY: the closure runs in the forked child before execve. It only calls
    // `seccompiler::apply_filter`, which issues prctl(2)/seccomp(2) on a program compiled
    // before the fork and does not allocate, lock or touch other threads' state.
    unsafe {
        cmd.pre_exec(move || {
            seccompiler::apply_filter(&prog).map_err(|e| io::Error::other(e.to_string()))
        });
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod xstate_tests {
    use super::*;

    #[test]
    fn filter_compiles_and_lets_normal_programs_run() {
        let prog = hide_xstate_regset().unwrap();
        assert!(
            prog.len() > 4 && prog.len() < 64,
            "{} instructions",
            prog.len()
        );
        let mut cmd = Command::new("true");
        apply_in_child(&mut cmd, prog);
        assert!(cmd.status().unwrap().success());
    }
}
