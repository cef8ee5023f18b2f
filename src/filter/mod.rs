//! Classic BPF socket filters.
//!
//! This module holds the small programs vecbox builds itself (direction filters for
//! packet sockets) and the loader for UML's `bpffile=` format: a raw array of
//! `struct sock_filter` records (u16 code, u8 jt, u8 jf, u32 k) in host byte order,
//! no header, instruction count = file size / 8.

use std::path::Path;

pub use crate::sys::packet::SockFilter;

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

fn pkttype_filter(if_outgoing: u32, otherwise: u32) -> [SockFilter; 4] {
    let i = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    [
        i(LDB_ABS, 0, 0, AD_PKTTYPE),
        i(JEQ_K, 0, 1, PACKET_OUTGOING),
        i(RET_K, 0, 0, if_outgoing),
        i(RET_K, 0, 0, otherwise),
    ]
}

/// Errors reading a `bpffile=`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
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

#[cfg(test)]
mod tests {
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
