//! Classic BPF socket filters.
//!
//! - Reading programs in every form users have: UML's `bpffile=` binary (a raw array of
//!   `struct sock_filter` records — u16 code, u8 jt, u8 jf, u32 k — in host byte order,
//!   no header, instruction count = file size / 8), `tcpdump -dd`/`-ddd` output,
//!   `bpf_asm`'s `N,code jt jf k,...` output and `bpf_asm` source ([`text`]).
//! - Checking them as the kernel does ([`validate`]), with errors naming the instruction.
//! - Running them in vecbox's own interpreter ([`interp`]) where there is no socket to
//!   attach to (tap ports), with the kernel's semantics.
//! - The small programs vecbox builds itself (direction filters for packet sockets).
//! - A capture reader ([`pcap`]) for `vecbox bpf test`.

mod asm;
pub mod insn;
pub mod interp;
pub mod pcap;
pub mod text;
pub mod validate;

use std::path::Path;

pub use crate::sys::packet::SockFilter;
pub use interp::Meta;
pub use validate::ValidateError;

/// `BPF_LD | BPF_B | BPF_ABS`
const LDB_ABS: u16 = 0x30;
/// `BPF_JMP | BPF_JEQ | BPF_K`
const JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`
const RET_K: u16 = 0x06;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: the ancillary load of `skb->pkt_type`.
const AD_PKTTYPE: u32 = 0xffff_f000 + 4;
/// `PACKET_OUTGOING`
const PACKET_OUTGOING: u32 = 4;
/// Snap length of an accepting filter (as UML's default filter).
pub const ACCEPT: u32 = 0x40000;

/// Drop frames the host transmits on the interface; accept the rest.
pub fn drop_outgoing() -> [SockFilter; 4] {
    pkttype_filter(0, ACCEPT)
}

/// Accept only frames the host transmits on the interface (the hybrid transport reads
/// what the host sends into the tap, not what vecbox wrote into it).
pub fn only_outgoing() -> [SockFilter; 4] {
    pkttype_filter(ACCEPT, 0)
}

/// `prog` behind a direction check: frames the host did not transmit into the interface
/// are dropped first, the rest go through `prog` unchanged (its jumps are relative).
/// Used on hybrid ports so that a `bpffile=` does not also see vecbox's own writes.
pub fn only_outgoing_then(prog: &Program) -> Result<Program, ValidateError> {
    let i = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let mut v = vec![
        i(LDB_ABS, 0, 0, AD_PKTTYPE),
        i(JEQ_K, 1, 0, PACKET_OUTGOING),
        i(RET_K, 0, 0, 0),
    ];
    v.extend_from_slice(prog.insns());
    Program::new(v)
}

fn pkttype_filter(if_outgoing: u32, otherwise: u32) -> [SockFilter; 4] {
    let i = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    [
        i(LDB_ABS, 0, 0, AD_PKTTYPE),
        i(JEQ_K, 0, 1, PACKET_OUTGOING),
        i(RET_K, 0, 0, if_outgoing),
        i(RET_K, 0, 0, otherwise),
    ]
}

/// Errors reading a filter file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bpffile {path}:{source}")]
    Parse {
        path: String,
        #[source]
        source: text::ParseError,
    },
    #[error("bpffile {path}: {source}")]
    Invalid {
        path: String,
        #[source]
        source: ValidateError,
    },
    #[error("bpffile {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "bpffile {path}: {len} bytes is not a whole number of 8-byte sock_filter records (UML's raw binary format)"
    )]
    Size { path: String, len: usize },
    #[error("bpffile {path}: {count} instructions; the kernel accepts 1 to 4096")]
    Count { path: String, count: usize },
}

/// Decode UML's raw binary filter format (host byte order).
pub fn decode_uml_binary(bytes: &[u8]) -> Option<Vec<SockFilter>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| SockFilter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// `true` if `bytes` look like a binary program rather than one of the text forms
/// (text never holds NUL or other control bytes; a binary program almost always does).
pub fn looks_binary(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|&b| b == 0 || b > 0x7e || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')))
}

/// A program the kernel would accept, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    insns: Vec<SockFilter>,
}

impl Program {
    /// Validate `insns` as the kernel does.
    pub fn new(insns: Vec<SockFilter>) -> Result<Program, ValidateError> {
        validate::validate(&insns)?;
        Ok(Program { insns })
    }

    /// The instructions.
    pub fn insns(&self) -> &[SockFilter] {
        &self.insns
    }

    /// The kernel's verdict for `frame`: 0 = drop, else the bytes to keep.
    #[inline]
    pub fn run(&self, frame: &[u8], meta: &Meta) -> u32 {
        interp::run(&self.insns, frame, meta)
    }

    /// Read and validate a program from `path`, in UML's binary form or any text form.
    pub fn load(path: &Path) -> Result<Program, LoadError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: p.clone(),
            source,
        })?;
        let insns = if looks_binary(&bytes) || bytes.is_empty() {
            decode_binary_checked(&p, &bytes)?
        } else {
            let src = String::from_utf8_lossy(&bytes);
            text::parse(&src).map_err(|source| LoadError::Parse {
                path: p.clone(),
                source,
            })?
        };
        Program::new(insns).map_err(|source| LoadError::Invalid { path: p, source })
    }
}

fn decode_binary_checked(p: &str, bytes: &[u8]) -> Result<Vec<SockFilter>, LoadError> {
    let prog = decode_uml_binary(bytes).ok_or(LoadError::Size {
        path: p.to_string(),
        len: bytes.len(),
    })?;
    if prog.is_empty() || prog.len() > insn::MAXINSNS {
        return Err(LoadError::Count {
            path: p.to_string(),
            count: prog.len(),
        });
    }
    Ok(prog)
}

/// Read a filter in UML's `bpffile=` format.
pub fn load_uml_binary(path: &Path) -> Result<Vec<SockFilter>, LoadError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: p.clone(),
        source,
    })?;
    let prog = decode_uml_binary(&bytes).ok_or(LoadError::Size {
        path: p.clone(),
        len: bytes.len(),
    })?;
    if prog.is_empty() || prog.len() > 4096 {
        return Err(LoadError::Count {
            path: p,
            count: prog.len(),
        });
    }
    Ok(prog)
}

/// UML's default receive filter for an interface with MAC `mac` (vector_user.c): drop
/// frames whose source MAC is `mac` (the echo of the guest's own transmissions).
pub fn own_mac_filter(mac: [u8; 6]) -> [SockFilter; 6] {
    let i = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let hi = u32::from(u16::from_be_bytes([mac[0], mac[1]]));
    let lo = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    [
        i(insn::LD | insn::W | insn::ABS, 0, 0, 8),
        i(JEQ_K, 0, 3, lo),
        i(insn::LD | insn::H | insn::ABS, 0, 0, 6),
        i(JEQ_K, 0, 1, hi),
        i(RET_K, 0, 0, 0),
        i(RET_K, 0, 0, ACCEPT),
    ]
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod legacy_tests {
    use super::*;

    #[test]
    fn direction_filters_have_the_expected_shape() {
        let d = drop_outgoing();
        assert_eq!(d[0].k, 0xffff_f004);
        assert_eq!((d[2].k, d[3].k), (0, ACCEPT));
        let o = only_outgoing();
        assert_eq!((o[2].k, o[3].k), (ACCEPT, 0));
    }

    #[test]
    fn uml_binary_round_trip_and_errors() {
        let mut bytes = Vec::new();
        for f in drop_outgoing() {
            bytes.extend_from_slice(&f.code.to_ne_bytes());
            bytes.push(f.jt);
            bytes.push(f.jf);
            bytes.extend_from_slice(&f.k.to_ne_bytes());
        }
        assert_eq!(decode_uml_binary(&bytes).unwrap(), drop_outgoing().to_vec());
        assert!(decode_uml_binary(&bytes[..7]).is_none());
        let dir = std::env::temp_dir().join(format!("vecbox-bpf-{}", std::process::id()));
        std::fs::write(&dir, &bytes[..12]).unwrap();
        let e = load_uml_binary(&dir).unwrap_err().to_string();
        assert!(e.contains("12 bytes"), "{e}");
        std::fs::write(&dir, b"").unwrap();
        assert!(matches!(
            load_uml_binary(&dir),
            Err(LoadError::Count { count: 0, .. })
        ));
        std::fs::remove_file(&dir).unwrap();
    }
}
