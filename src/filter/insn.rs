//! Classic BPF instruction encoding: opcode fields, the opcodes the kernel accepts, and
//! a disassembler into `bpf_asm` syntax (which [`super::text`] reads back).

use std::fmt::Write as _;

use super::SockFilter;

// Instruction classes.
pub const LD: u16 = 0x00;
pub const LDX: u16 = 0x01;
pub const ST: u16 = 0x02;
pub const STX: u16 = 0x03;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;
pub const MISC: u16 = 0x07;
// Sizes.
pub const W: u16 = 0x00;
pub const H: u16 = 0x08;
pub const B: u16 = 0x10;
// Modes.
pub const IMM: u16 = 0x00;
pub const ABS: u16 = 0x20;
pub const IND: u16 = 0x40;
pub const MEM: u16 = 0x60;
pub const LEN: u16 = 0x80;
pub const MSH: u16 = 0xa0;
// ALU / jump operations.
pub const ADD: u16 = 0x00;
pub const SUB: u16 = 0x10;
pub const MUL: u16 = 0x20;
pub const DIV: u16 = 0x30;
pub const OR: u16 = 0x40;
pub const AND: u16 = 0x50;
pub const LSH: u16 = 0x60;
pub const RSH: u16 = 0x70;
pub const NEG: u16 = 0x80;
pub const MOD: u16 = 0x90;
pub const XOR: u16 = 0xa0;
pub const JA: u16 = 0x00;
pub const JEQ: u16 = 0x10;
pub const JGT: u16 = 0x20;
pub const JGE: u16 = 0x30;
pub const JSET: u16 = 0x40;
// Sources.
pub const K: u16 = 0x00;
pub const X: u16 = 0x08;
pub const A: u16 = 0x10;
// MISC operations.
pub const TAX: u16 = 0x00;
pub const TXA: u16 = 0x80;

/// Number of scratch memory words (`BPF_MEMWORDS`).
pub const MEMWORDS: u32 = 16;
/// Largest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAXINSNS: usize = 4096;

/// `SKF_AD_OFF`: ancillary data loads start here.
pub const AD_OFF: u32 = 0xffff_f000;
/// `SKF_NET_OFF`: negative offsets from the network header.
pub const NET_OFF: i32 = -0x10_0000;
/// `SKF_LL_OFF`: negative offsets from the link-layer header.
pub const LL_OFF: i32 = -0x20_0000;

/// Ancillary loads (`SKF_AD_*` offsets) and their `bpf_asm` names.
pub const EXTENSIONS: &[(u32, &str)] = &[
    (0, "proto"),
    (4, "type"),
    (8, "ifidx"),
    (12, "nla"),
    (16, "nlan"),
    (20, "mark"),
    (24, "queue"),
    (28, "hatype"),
    (32, "rxhash"),
    (36, "cpu"),
    (40, "xor_x"),
    (44, "vlan_tci"),
    (48, "vlan_avail"),
    (52, "poff"),
    (56, "rand"),
    (60, "vlan_tpid"),
];

/// The class bits of `code`.
pub fn class(code: u16) -> u16 {
    code & 0x07
}

/// `true` if the kernel's classic BPF checker accepts opcode `code`
/// (`bpf_check_classic`'s table in net/core/filter.c).
pub fn known(code: u16) -> bool {
    const ALU_OPS: [u16; 10] = [ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, MOD, XOR];
    const JMP_OPS: [u16; 4] = [JEQ, JGT, JGE, JSET];
    if code > 0xff {
        return false;
    }
    let rest = code & !0x07;
    match class(code) {
        LD => [
            W | ABS,
            H | ABS,
            B | ABS,
            W | IND,
            H | IND,
            B | IND,
            W | LEN,
            IMM,
            MEM,
        ]
        .contains(&rest),
        LDX => [W | LEN, B | MSH, IMM, MEM].contains(&rest),
        ST | STX => rest == 0,
        ALU => rest == NEG || ALU_OPS.iter().any(|&op| rest == op | K || rest == op | X),
        JMP => rest == JA || JMP_OPS.iter().any(|&op| rest == op | K || rest == op | X),
        RET => rest == K || rest == A,
        _ => rest == TAX || rest == TXA,
    }
}

/// `true` for conditional jumps (which use `jt`/`jf`).
pub fn is_cond_jump(code: u16) -> bool {
    class(code) == JMP && code & 0xf0 != JA
}

fn extension_name(k: u32) -> Option<&'static str> {
    let off = k.checked_sub(AD_OFF)?;
    EXTENSIONS.iter().find(|(o, _)| *o == off).map(|(_, n)| *n)
}

fn alu_name(op: u16) -> &'static str {
    match op {
        ADD => "add",
        SUB => "sub",
        MUL => "mul",
        DIV => "div",
        OR => "or",
        AND => "and",
        LSH => "lsh",
        RSH => "rsh",
        NEG => "neg",
        MOD => "mod",
        XOR => "xor",
        _ => "alu?",
    }
}

/// One instruction in `bpf_asm` syntax; jump targets are written with `label(index)`.
pub fn format(i: &SockFilter, pc: usize, label: &dyn Fn(usize) -> String) -> String {
    let k = i.k;
    let size = |c: u16| match c & 0x18 {
        W => "ld",
        H => "ldh",
        B => "ldb",
        _ => "ld?",
    };
    let target = |off: u32| label(pc + 1 + off as usize);
    match class(i.code) {
        LD => match i.code & 0xe0 {
            ABS => match extension_name(k) {
                Some(n) => format!("{} #{n}", size(i.code)),
                None => format!("{} [{}]", size(i.code), k as i32),
            },
            IND => format!("{} [x + {}]", size(i.code), k as i32),
            LEN => "ld #len".to_string(),
            IMM => format!("ld #{k:#x}"),
            MEM => format!("ld M[{k}]"),
            _ => unknown(i),
        },
        LDX => match i.code & 0xe0 {
            LEN => "ldx #len".to_string(),
            IMM => format!("ldx #{k:#x}"),
            MEM => format!("ldx M[{k}]"),
            MSH => format!("ldxb 4*([{k}]&0xf)"),
            _ => unknown(i),
        },
        ST => format!("st M[{k}]"),
        STX => format!("stx M[{k}]"),
        ALU => {
            let op = i.code & 0xf0;
            if op == NEG {
                "neg".to_string()
            } else if i.code & X != 0 {
                format!("{} x", alu_name(op))
            } else {
                format!("{} #{k:#x}", alu_name(op))
            }
        }
        JMP => {
            let op = i.code & 0xf0;
            if op == JA {
                return format!("ja {}", target(k));
            }
            let name = match op {
                JEQ => "jeq",
                JGT => "jgt",
                JGE => "jge",
                _ => "jset",
            };
            let src = if i.code & X != 0 {
                "x".to_string()
            } else {
                format!("#{k:#x}")
            };
            format!(
                "{name} {src}, {}, {}",
                target(u32::from(i.jt)),
                target(u32::from(i.jf))
            )
        }
        RET => {
            if i.code & 0x18 == A {
                "ret a".to_string()
            } else {
                format!("ret #{k}")
            }
        }
        MISC => {
            if i.code & 0xf8 == TXA {
                "txa".to_string()
            } else {
                "tax".to_string()
            }
        }
        _ => unknown(i),
    }
}

fn unknown(i: &SockFilter) -> String {
    format!(
        "; unknown opcode {:#06x} jt {} jf {} k {:#x}",
        i.code, i.jt, i.jf, i.k
    )
}

/// Label name used by [`disassemble`] for instruction `index`.
pub fn label_name(index: usize) -> String {
    format!("l{index}")
}

/// The whole program in `bpf_asm` syntax, with a label on every jump target and the
/// instruction index as a comment. [`super::text::parse`] reads it back unchanged.
pub fn disassemble(prog: &[SockFilter]) -> String {
    let mut targeted = vec![false; prog.len() + 256];
    for (pc, i) in prog.iter().enumerate() {
        if class(i.code) == JMP {
            if i.code & 0xf0 == JA {
                if let Some(t) = targeted.get_mut(pc + 1 + i.k as usize) {
                    *t = true;
                }
            } else {
                targeted[pc + 1 + usize::from(i.jt)] = true;
                targeted[pc + 1 + usize::from(i.jf)] = true;
            }
        }
    }
    let mut out = String::new();
    for (pc, i) in prog.iter().enumerate() {
        let lbl = if targeted[pc] {
            format!("{}:", label_name(pc))
        } else {
            String::new()
        };
        let text = format(i, pc, &label_name);
        let _ = writeln!(out, "{lbl:<7} {text:<34} ; {pc}");
    }
    out
}

/// `tcpdump -dd` form: one C initialiser per instruction.
pub fn to_dd(prog: &[SockFilter]) -> String {
    prog.iter().fold(String::new(), |mut s, i| {
        let _ = writeln!(
            s,
            "{{ {:#04x}, {}, {}, {:#010x} }},",
            i.code, i.jt, i.jf, i.k
        );
        s
    })
}

/// `tcpdump -ddd` form: the count, then `code jt jf k` in decimal.
pub fn to_ddd(prog: &[SockFilter]) -> String {
    prog.iter().fold(format!("{}\n", prog.len()), |mut s, i| {
        let _ = writeln!(s, "{} {} {} {}", i.code, i.jt, i.jf, i.k);
        s
    })
}

/// `bpf_asm` default output: `N,code jt jf k,...` on one line (also read by iptables'
/// `xt_bpf` and `nfbpf_compile`).
pub fn to_comma(prog: &[SockFilter]) -> String {
    let mut s = prog.len().to_string();
    for i in prog {
        let _ = write!(s, ",{} {} {} {}", i.code, i.jt, i.jf, i.k);
    }
    s.push('\n');
    s
}

/// UML's `bpffile=` binary: `struct sock_filter` records in host byte order.
pub fn to_uml_binary(prog: &[SockFilter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}
