//! Capture filters in libpcap's syntax (`icmp`, `tcp port 80 and host 10.0.0.2`),
//! compiled by libpcap itself (`pcap_compile` on a dead Ethernet handle, optimised)
//! into classic BPF, then checked as the kernel would and run by vecbox's interpreter.
//! A bad expression gets libpcap's own message.

use crate::filter::{Program, SockFilter, ValidateError};

/// `BPF_RET | BPF_K`.
const RET_K: u16 = 0x06;

/// Why an expression did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("bad capture filter {expr:?}: {msg}")]
    Syntax { expr: String, msg: String },
    #[error("capture filter {expr:?}: libpcap's program does not pass vecbox's checks: {source}")]
    Invalid {
        expr: String,
        #[source]
        source: ValidateError,
    },
}

/// Compile `expr` for Ethernet frames.
pub fn compile(expr: &str) -> Result<Program, CompileError> {
    let syntax = |msg: String| CompileError::Syntax {
        expr: expr.to_string(),
        msg,
    };
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| syntax(message(e)))?;
    let prog = dead.compile(expr, true).map_err(|e| syntax(message(e)))?;
    let insns = prog
        .get_instructions()
        .iter()
        .map(|i| parse_insn(&i.to_string()))
        .collect::<Option<Vec<SockFilter>>>()
        .ok_or_else(|| syntax("libpcap produced an instruction vecbox cannot read".into()))?;
    // Which frames is the filter's business; how much of each, the capture's snap
    // length (libpcap returns the dead handle's 65535 for "accept").
    let insns = insns
        .into_iter()
        .map(|mut i| {
            if i.code == RET_K && i.k != 0 {
                i.k = crate::filter::ACCEPT;
            }
            i
        })
        .collect();
    Program::new(insns).map_err(|source| CompileError::Invalid {
        expr: expr.to_string(),
        source,
    })
}

/// libpcap's text without the crate's prefix.
fn message(e: pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m,
        pcap::Error::InvalidInputString => "the expression contains a NUL byte".into(),
        other => other.to_string(),
    }
}

/// `code jt jf k` as the pcap crate prints one instruction.
fn parse_insn(s: &str) -> Option<SockFilter> {
    let mut w = s.split_whitespace();
    let f = SockFilter {
        code: w.next()?.parse().ok()?,
        jt: w.next()?.parse().ok()?,
        jf: w.next()?.parse().ok()?,
        k: w.next()?.parse().ok()?,
    };
    w.next().is_none().then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Meta;

    fn ipv4(proto: u8, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = proto;
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn libpcap_programs_run_in_vecbox() {
        let icmp = compile("icmp").unwrap();
        let m = Meta::ethernet(&ipv4(1, 0), 0);
        assert_ne!(icmp.run(&ipv4(1, 0), &m), 0);
        assert_eq!(icmp.run(&ipv4(6, 80), &m), 0);
        let http = compile("tcp port 80 and host 0.0.0.0").unwrap();
        assert_ne!(http.run(&ipv4(6, 80), &m), 0);
        assert_eq!(http.run(&ipv4(6, 81), &m), 0);
        assert_eq!(http.run(&ipv4(17, 80), &m), 0);
    }

    #[test]
    fn bad_expressions_carry_libpcaps_message() {
        let e = compile("tcp prot 80").unwrap_err().to_string();
        assert!(e.starts_with("bad capture filter \"tcp prot 80\": "), "{e}");
        assert!(e.contains("syntax error"), "{e}");
        let e = compile("a\0b").unwrap_err().to_string();
        assert!(e.contains("NUL"), "{e}");
        assert_eq!(parse_insn("1 2 3"), None);
        assert_eq!(parse_insn("6 0 0 65535 9"), None);
    }
}
