//! The kernel's acceptance rules for classic BPF (`bpf_check_classic` and
//! `check_load_and_stores` in net/core/filter.c), with errors that name the instruction.

use std::fmt;

use super::SockFilter;
use super::insn::{
    self, ALU, DIV, JA, JMP, K, LD, LDX, LSH, MEM, MEMWORDS, MOD, RET, RSH, ST, STX,
};

/// What is wrong with a program, as the kernel would refuse it (`EINVAL`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    #[error("the program is empty; the kernel needs 1 to 4096 instructions")]
    Empty,
    #[error("{0} instructions; the kernel accepts at most 4096")]
    TooLong(usize),
    #[error("{}", .0)]
    At(Problem),
}

/// A problem at one instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Index of the instruction (0-based, as `tcpdump -d` numbers them).
    pub index: usize,
    /// The instruction itself.
    pub insn: SockFilter,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.insn;
        write!(
            f,
            "instruction {} ({{ {:#04x}, {}, {}, {:#010x} }}): {}",
            self.index, i.code, i.jt, i.jf, i.k, self.what
        )
    }
}

fn at(index: usize, insn: SockFilter, what: impl Into<String>) -> ValidateError {
    ValidateError::At(Problem {
        index,
        insn,
        what: what.into(),
    })
}

/// Check `prog` as the kernel does before attaching it.
pub fn validate(prog: &[SockFilter]) -> Result<(), ValidateError> {
    let len = prog.len();
    if len == 0 {
        return Err(ValidateError::Empty);
    }
    if len > insn::MAXINSNS {
        return Err(ValidateError::TooLong(len));
    }
    for (pc, &i) in prog.iter().enumerate() {
        if !insn::known(i.code) {
            return Err(at(
                pc,
                i,
                format!(
                    "unknown opcode {:#04x} (not a classic BPF instruction the kernel accepts)",
                    i.code
                ),
            ));
        }
        let class = insn::class(i.code);
        let mode = i.code & 0xe0;
        let op = i.code & 0xf0;
        if (class == ST || class == STX || ((class == LD || class == LDX) && mode == MEM))
            && i.k >= MEMWORDS
        {
            return Err(at(
                pc,
                i,
                format!("scratch memory M[{}] does not exist; M[0] to M[15] do", i.k),
            ));
        }
        if class == LD
            && i.code & 0xe0 == insn::ABS
            && i.k >= insn::AD_OFF
            && !insn::EXTENSIONS
                .iter()
                .any(|(o, _)| insn::AD_OFF + o == i.k)
        {
            return Err(at(
                pc,
                i,
                format!(
                    "unknown ancillary load SKF_AD_OFF+{} (known: {})",
                    i.k - insn::AD_OFF,
                    insn::EXTENSIONS
                        .iter()
                        .map(|(o, n)| format!("{n}={o}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
        }
        if class == ALU && i.code & 0x08 == K {
            if (op == DIV || op == MOD) && i.k == 0 {
                return Err(at(pc, i, "division by the constant 0"));
            }
            if (op == LSH || op == RSH) && i.k >= 32 {
                return Err(at(pc, i, format!("shift by {} bits; at most 31", i.k)));
            }
        }
        if class == JMP {
            let left = len - pc - 1;
            if op == JA {
                if i.k as usize >= left {
                    return Err(at(
                        pc,
                        i,
                        format!(
                            "jump of {} goes past the end of the program ({len} instructions)",
                            i.k
                        ),
                    ));
                }
            } else {
                for (name, off) in [("true", i.jt), ("false", i.jf)] {
                    if usize::from(off) >= left {
                        return Err(at(
                            pc,
                            i,
                            format!(
                                "{name} branch to instruction {} is past the end of the program ({len} instructions)",
                                pc + 1 + usize::from(off)
                            ),
                        ));
                    }
                }
            }
        }
    }
    let last = prog[len - 1];
    if insn::class(last.code) != RET {
        return Err(at(
            len - 1,
            last,
            "the last instruction must be a return (ret #k or ret a)",
        ));
    }
    check_memory(prog)
}

/// Every scratch-memory load must follow a store on every path (kernel:
/// `check_load_and_stores`).
fn check_memory(prog: &[SockFilter]) -> Result<(), ValidateError> {
    let mut masks = [0xffffu16; insn::MAXINSNS];
    let mut valid: u16 = 0;
    for (pc, &i) in prog.iter().enumerate() {
        valid &= masks[pc];
        let class = insn::class(i.code);
        let mode = i.code & 0xe0;
        match class {
            ST | STX => valid |= 1 << i.k,
            LD | LDX if mode == MEM && valid & (1 << i.k) == 0 => {
                return Err(at(
                    pc,
                    i,
                    format!("M[{}] is read before anything is stored there", i.k),
                ));
            }
            JMP => {
                if i.code & 0xf0 == JA {
                    masks[pc + 1 + i.k as usize] &= valid;
                } else {
                    masks[pc + 1 + usize::from(i.jt)] &= valid;
                    masks[pc + 1 + usize::from(i.jf)] &= valid;
                }
                valid = !0;
            }
            _ => {}
        }
    }
    Ok(())
}
