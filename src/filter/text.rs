//! Reading the text forms of classic BPF programs:
//! - `tcpdump -dd`: `{ 0x28, 0, 0, 0x0000000c },` per line (C initialisers);
//! - `tcpdump -ddd`: the instruction count, then `40 0 0 12` per line;
//! - `bpf_asm` output / `nfbpf_compile` / iptables `xt_bpf`: `4,40 0 0 12,21 0 1 2048,...`;
//! - `bpf_asm` source: `ldh [12]`, `jeq #0x800, ok, drop`, labels, `;` comments.
//!
//! Errors carry line and column. The result is not validated here (see
//! [`super::validate`]).

use super::SockFilter;
use super::insn::{self, *};

/// A syntax error at a position (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

fn err(line: usize, col: usize, msg: impl Into<String>) -> ParseError {
    ParseError {
        line,
        col,
        msg: msg.into(),
    }
}

/// Which text form a program is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextForm {
    /// `tcpdump -dd`
    Dd,
    /// `tcpdump -ddd`
    Ddd,
    /// `N,code jt jf k,...`
    Comma,
    /// `bpf_asm` source
    Asm,
}

fn strip_comment(line: &str) -> &str {
    let mut s = line;
    for marker in [";", "//"] {
        if let Some(i) = s.find(marker) {
            s = &s[..i];
        }
    }
    s
}

/// Lines with comments removed, as (1-based number, text), skipping blank ones.
fn lines(src: &str) -> impl Iterator<Item = (usize, &str)> {
    src.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, strip_comment(l)))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Guess the form from the first meaningful line.
pub fn detect(src: &str) -> TextForm {
    let Some((_, first)) = lines(src).next() else {
        return TextForm::Asm;
    };
    let t = first.trim();
    if t.starts_with('{') {
        TextForm::Dd
    } else if t.chars().all(|c| c.is_ascii_digit()) {
        TextForm::Ddd
    } else if t.contains(',')
        && t.split(',')
            .next()
            .is_some_and(|c| c.trim().chars().all(|c| c.is_ascii_digit()) && !c.trim().is_empty())
    {
        TextForm::Comma
    } else {
        TextForm::Asm
    }
}

/// Parse `src` in whichever form it is.
pub fn parse(src: &str) -> Result<Vec<SockFilter>, ParseError> {
    match detect(src) {
        TextForm::Dd => parse_dd(src),
        TextForm::Ddd => parse_ddd(src),
        TextForm::Comma => parse_comma(src),
        TextForm::Asm => parse_asm(src),
    }
}

/// A number in C syntax: decimal, `0x` hex, `0` octal, `0b` binary, optional `-`.
pub fn number(s: &str) -> Option<u32> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = s.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()?
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()?
    } else {
        s.parse::<u64>().ok()?
    };
    if neg {
        (v <= 1 << 31).then(|| (v as u32).wrapping_neg())
    } else {
        u32::try_from(v).ok()
    }
}

fn col_of(line: &str, part: &str) -> usize {
    // `part` is a subslice of `line`.
    (part.as_ptr() as usize).saturating_sub(line.as_ptr() as usize) + 1
}

fn four(line: &str, lno: usize, fields: &[&str]) -> Result<SockFilter, ParseError> {
    if fields.len() != 4 {
        return Err(err(
            lno,
            1,
            format!("expected 4 fields (code jt jf k), found {}", fields.len()),
        ));
    }
    let num = |f: &str, max: u32, what: &str| {
        number(f).filter(|v| *v <= max).ok_or_else(|| {
            err(
                lno,
                col_of(line, f.trim_start()),
                format!("{what} {:?} is not a number in 0..={max}", f.trim()),
            )
        })
    };
    Ok(SockFilter {
        code: num(fields[0], 0xffff, "code")? as u16,
        jt: num(fields[1], 0xff, "jt")? as u8,
        jf: num(fields[2], 0xff, "jf")? as u8,
        k: num(fields[3], u32::MAX, "k")?,
    })
}

/// `tcpdump -dd` output.
pub fn parse_dd(src: &str) -> Result<Vec<SockFilter>, ParseError> {
    let mut out = Vec::new();
    for (lno, raw) in lines(src) {
        let t = raw.trim();
        let inner = t
            .strip_prefix('{')
            .and_then(|r| {
                r.trim_end()
                    .trim_end_matches(',')
                    .trim_end()
                    .strip_suffix('}')
            })
            .ok_or_else(|| {
                err(
                    lno,
                    col_of(raw, t),
                    "expected `{ code, jt, jf, k },` (tcpdump -dd form)",
                )
            })?;
        let fields: Vec<&str> = inner.split(',').collect();
        out.push(four(raw, lno, &fields)?);
    }
    Ok(out)
}

/// `tcpdump -ddd` output.
pub fn parse_ddd(src: &str) -> Result<Vec<SockFilter>, ParseError> {
    let mut it = lines(src);
    let (lno, first) = it.next().ok_or_else(|| err(1, 1, "empty file"))?;
    let count = number(first).ok_or_else(|| err(lno, 1, "expected the instruction count"))?;
    let mut out = Vec::new();
    for (lno, raw) in it {
        let fields: Vec<&str> = raw.split_whitespace().collect();
        out.push(four(raw, lno, &fields)?);
    }
    if out.len() != count as usize {
        return Err(err(
            lno,
            1,
            format!(
                "the count line says {count} instructions but {} follow",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// `N,code jt jf k,...` (bpf_asm's default output).
pub fn parse_comma(src: &str) -> Result<Vec<SockFilter>, ParseError> {
    let mut items = Vec::new();
    for (lno, raw) in lines(src) {
        for part in raw.split(',') {
            if !part.trim().is_empty() {
                items.push((lno, raw, part));
            }
        }
    }
    let Some(&(lno, raw, first)) = items.first() else {
        return Err(err(1, 1, "empty file"));
    };
    let count = number(first)
        .ok_or_else(|| err(lno, col_of(raw, first), "expected the instruction count"))?;
    let mut out = Vec::new();
    for &(lno, raw, part) in &items[1..] {
        let fields: Vec<&str> = part.split_whitespace().collect();
        out.push(four(raw, lno, &fields)?);
    }
    if out.len() != count as usize {
        return Err(err(
            lno,
            1,
            format!(
                "the count says {count} instructions but {} follow",
                out.len()
            ),
        ));
    }
    Ok(out)
}

const MNEMONICS: &[&str] = &[
    "ld", "ldi", "ldh", "ldb", "ldx", "ldxi", "ldxb", "st", "stx", "jmp", "ja", "jeq", "jneq",
    "jne", "jlt", "jle", "jgt", "jge", "jset", "add", "sub", "mul", "div", "mod", "neg", "and",
    "or", "xor", "lsh", "rsh", "tax", "txa", "ret",
];

/// The closest known word to `w` (edit distance ≤ 2), for "did you mean" hints.
pub fn nearest<'a>(w: &str, words: &[&'a str]) -> Option<&'a str> {
    words
        .iter()
        .map(|c| (edit_distance(w, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A jump whose targets are labels, resolved after all labels are known.
struct PendingJump {
    index: usize,
    lno: usize,
    col: usize,
    /// Label for the true branch (or the only one for `ja`), and the false branch.
    t: Option<String>,
    f: Option<String>,
}

/// `bpf_asm` source.
pub fn parse_asm(src: &str) -> Result<Vec<SockFilter>, ParseError> {
    let mut out: Vec<SockFilter> = Vec::new();
    let mut labels: Vec<(String, usize)> = Vec::new();
    let mut jumps: Vec<PendingJump> = Vec::new();
    for (lno, raw) in lines(src) {
        let mut rest = raw;
        // Labels: `name:` before the instruction (several allowed).
        loop {
            let t = rest.trim_start();
            let word_end = t
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(t.len());
            if word_end > 0 && t[word_end..].starts_with(':') {
                let name = &t[..word_end];
                if labels.iter().any(|(l, _)| l == name) {
                    return Err(err(
                        lno,
                        col_of(raw, t),
                        format!("label {name:?} is defined twice"),
                    ));
                }
                labels.push((name.to_string(), out.len()));
                rest = &t[word_end + 1..];
            } else {
                break;
            }
        }
        let t = rest.trim();
        if t.is_empty() {
            continue;
        }
        let col = col_of(raw, t);
        let (mn, args) = match t.find(char::is_whitespace) {
            Some(i) => (&t[..i], t[i..].trim()),
            None => (t, ""),
        };
        let mn_l = mn.to_ascii_lowercase();
        let ops: Vec<&str> = if args.is_empty() {
            Vec::new()
        } else {
            args.split(',').map(str::trim).collect()
        };
        let bad = |msg: String| err(lno, col, msg);
        let index = out.len();
        let i = assemble(&mn_l, &ops, args).map_err(&bad)?;
        match i {
            Asm::Insn(i) => out.push(i),
            Asm::Jump { code, k, t, f } => {
                jumps.push(PendingJump {
                    index,
                    lno,
                    col,
                    t,
                    f,
                });
                out.push(SockFilter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                });
            }
            Asm::Unknown => {
                let hint = nearest(&mn_l, MNEMONICS)
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                return Err(bad(format!("unknown instruction `{mn}`{hint}")));
            }
        }
    }
    for j in jumps {
        let find = |name: &Option<String>| -> Result<usize, ParseError> {
            let Some(name) = name else {
                return Ok(0);
            };
            let target = labels
                .iter()
                .find(|(l, _)| l == name)
                .map(|(_, at)| *at)
                .ok_or_else(|| {
                    let names: Vec<&str> = labels.iter().map(|(l, _)| l.as_str()).collect();
                    let hint = nearest(name, &names)
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                    err(j.lno, j.col, format!("no label `{name}`{hint}"))
                })?;
            if target <= j.index {
                return Err(err(
                    j.lno,
                    j.col,
                    format!("jump to `{name}` goes backwards; classic BPF jumps only forward"),
                ));
            }
            Ok(target - j.index - 1)
        };
        let t = find(&j.t)?;
        let f = find(&j.f)?;
        let ins = &mut out[j.index];
        if ins.code & 0xf0 == JA && class(ins.code) == JMP {
            ins.k = t as u32;
        } else {
            let fit = |v: usize| {
                u8::try_from(v).map_err(|_| {
                    err(
                        j.lno,
                        j.col,
                        format!(
                            "conditional jump of {v} instructions; at most 255 fit (use ja for longer jumps)"
                        ),
                    )
                })
            };
            ins.jt = fit(t)?;
            ins.jf = fit(f)?;
        }
    }
    Ok(out)
}

enum Asm {
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

fn assemble(mn: &str, ops: &[&str], args: &str) -> Result<Asm, String> {
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
