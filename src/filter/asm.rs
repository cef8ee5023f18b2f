//! The `bpf_asm` instruction set: one mnemonic with its operands to an instruction
//! (jumps keep their labels until [`super::text::parse_asm`] resolves them).

use super::SockFilter;
use super::insn::{self, *};
use super::text::number;

pub(super) enum Asm {
    Insn(SockFilter),
    Jump {
        code: u16,
        k: u32,
        t: Option<String>,
        f: Option<String>,
    },
    Unknown,
}

fn ins(code: u16, k: u32) -> Asm {
    Asm::Insn(SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    })
}

fn imm(op: &str) -> Option<u32> {
    number(op.strip_prefix('#')?)
}

fn extension(op: &str) -> Option<u32> {
    let name = op.strip_prefix('#').unwrap_or(op);
    insn::EXTENSIONS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(o, _)| AD_OFF + o)
}

fn is_x(op: &str) -> bool {
    op == "x" || op == "%x"
}

fn is_len(op: &str) -> bool {
    op == "#len" || op == "len"
}

/// `M[k]`
fn mem_index(op: &str) -> Option<u32> {
    number(op.strip_prefix("M[")?.strip_suffix(']')?)
}

/// `[k]` → Ok(k, false); `[x + k]` → (k, true).
fn packet_ref(op: &str) -> Option<(u32, bool)> {
    let inner = op.strip_prefix('[')?.strip_suffix(']')?.trim();
    let no_space: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(k) = no_space
        .strip_prefix("x+")
        .or_else(|| no_space.strip_prefix("%x+"))
    {
        return Some((number(k)?, true));
    }
    if no_space == "x" || no_space == "%x" {
        return Some((0, true));
    }
    Some((number(inner)?, false))
}

/// `4*([k]&0xf)`
fn msh(op: &str) -> Option<u32> {
    let s: String = op.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = s.strip_prefix("4*([")?.strip_suffix("]&0xf)")?;
    number(inner)
}

pub(super) fn assemble(mn: &str, ops: &[&str], args: &str) -> Result<Asm, String> {
    let one = || -> Result<&str, String> {
        match ops {
            [o] => Ok(*o),
            _ => Err(format!("`{mn}` takes one operand, found {:?}", args)),
        }
    };
    let none = || -> Result<(), String> {
        if ops.is_empty() {
            Ok(())
        } else {
            Err(format!("`{mn}` takes no operand, found {args:?}"))
        }
    };
    let size = |mn: &str| match mn {
        "ldh" => H,
        "ldb" => B,
        _ => W,
    };
    Ok(match mn {
        "ld" | "ldh" | "ldb" | "ldi" => {
            let o = one()?;
            let sz = size(mn);
            if let Some(k) = imm(o).filter(|_| mn == "ld" || mn == "ldi") {
                ins(LD | IMM, k)
            } else if mn == "ldi" {
                match number(o) {
                    Some(k) => ins(LD | IMM, k),
                    None => return Err(format!("`ldi` needs #k, found {o:?}")),
                }
            } else if is_len(o) && mn == "ld" {
                ins(LD | W | LEN, 0)
            } else if let Some(k) = mem_index(o).filter(|_| mn == "ld") {
                ins(LD | MEM, k)
            } else if let Some((k, ind)) = packet_ref(o) {
                ins(LD | sz | if ind { IND } else { ABS }, k)
            } else if let Some(k) = extension(o) {
                ins(LD | sz | ABS, k)
            } else {
                return Err(format!(
                    "`{mn}` operand {o:?} not understood; expected [k], [x + k]{}, or an extension (#proto, #type, #ifidx, ...)",
                    if mn == "ld" { ", #k, #len, M[k]" } else { "" }
                ));
            }
        }
        "ldx" | "ldxi" | "ldxb" => {
            let o = one()?;
            if let Some(k) = msh(o) {
                ins(LDX | B | MSH, k)
            } else if let Some(k) = imm(o).or_else(|| (mn == "ldxi").then(|| number(o)).flatten()) {
                ins(LDX | IMM, k)
            } else if is_len(o) {
                ins(LDX | W | LEN, 0)
            } else if let Some(k) = mem_index(o) {
                ins(LDX | MEM, k)
            } else {
                return Err(format!(
                    "`{mn}` operand {o:?} not understood; expected #k, #len, M[k] or 4*([k]&0xf)"
                ));
            }
        }
        "st" | "stx" => {
            let o = one()?;
            let k = mem_index(o).ok_or_else(|| format!("`{mn}` needs M[k], found {o:?}"))?;
            ins(if mn == "st" { ST } else { STX }, k)
        }
        "add" | "sub" | "mul" | "div" | "mod" | "and" | "or" | "xor" | "lsh" | "rsh" => {
            let op = match mn {
                "add" => ADD,
                "sub" => SUB,
                "mul" => MUL,
                "div" => DIV,
                "mod" => MOD,
                "and" => AND,
                "or" => OR,
                "xor" => XOR,
                "lsh" => LSH,
                _ => RSH,
            };
            let o = one()?;
            if is_x(o) {
                ins(ALU | op | X, 0)
            } else {
                let k = imm(o)
                    .or_else(|| number(o))
                    .ok_or_else(|| format!("`{mn}` needs #k or x, found {o:?}"))?;
                ins(ALU | op | K, k)
            }
        }
        "neg" => {
            none()?;
            ins(ALU | NEG, 0)
        }
        "tax" => {
            none()?;
            ins(MISC | TAX, 0)
        }
        "txa" => {
            none()?;
            ins(MISC | TXA, 0)
        }
        "ret" => {
            let o = one()?;
            if o == "a" || o == "%a" {
                ins(RET | A, 0)
            } else if is_x(o) {
                return Err("`ret x` is not accepted by the kernel; use `txa` then `ret a`".into());
            } else {
                let k = imm(o)
                    .or_else(|| number(o))
                    .ok_or_else(|| format!("`ret` needs #k or a, found {o:?}"))?;
                ins(RET | K, k)
            }
        }
        "ja" | "jmp" => {
            let o = one()?;
            Asm::Jump {
                code: JMP | JA,
                k: 0,
                t: Some(o.to_string()),
                f: None,
            }
        }
        "jeq" | "jneq" | "jne" | "jlt" | "jle" | "jgt" | "jge" | "jset" => {
            if ops.len() < 2 || ops.len() > 3 {
                return Err(format!(
                    "`{mn}` needs a value and one or two labels (`{mn} #k, Ltrue, Lfalse`), found {args:?}"
                ));
            }
            let (src, k) = if is_x(ops[0]) {
                (X, 0)
            } else {
                let k = imm(ops[0])
                    .ok_or_else(|| format!("`{mn}` compares with #k or x, found {:?}", ops[0]))?;
                (K, k)
            };
            let l1 = Some(ops[1].to_string());
            let l2 = ops.get(2).map(|s| s.to_string());
            // Negated forms swap the branches of the kernel's positive tests.
            let (op, t, f) = match mn {
                "jeq" => (JEQ, l1, l2),
                "jneq" | "jne" => (JEQ, l2, l1),
                "jlt" => (JGE, l2, l1),
                "jle" => (JGT, l2, l1),
                "jgt" => (JGT, l1, l2),
                "jge" => (JGE, l1, l2),
                _ => (JSET, l1, l2),
            };
            Asm::Jump {
                code: JMP | op | src,
                k,
                t,
                f,
            }
        }
        _ => Asm::Unknown,
    })
}
