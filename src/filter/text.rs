//! Reading the text forms of classic BPF programs:
//! - `tcpdump -dd`: `{ 0x28, 0, 0, 0x0000000c },` per line (C initialisers);
//! - `tcpdump -ddd`: the instruction count, then `40 0 0 12` per line;
//! - `bpf_asm` output / `nfbpf_compile` / iptables `xt_bpf`: `4,40 0 0 12,21 0 1 2048,...`;
//! - `bpf_asm` source: `ldh [12]`, `jeq #0x800, ok, drop`, labels, `;` comments.
//!
//! Errors carry line and column. The result is not validated here (see
//! [`super::validate`]).

use super::SockFilter;
use super::asm::{Asm, assemble};
use super::insn::{JA, JMP, class};

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
