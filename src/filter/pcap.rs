//! A small reader for capture files (classic pcap in either byte order and with micro-
//! or nanosecond stamps, and pcapng's enhanced/simple packet blocks), for
//! `vecbox bpf test`. Only Ethernet captures (link type 1) are accepted.

/// Errors reading a capture.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    Magic(u32),
    #[error("truncated {what} at byte {offset}")]
    Truncated { what: &'static str, offset: usize },
    #[error("link type {0} is not Ethernet (1); capture on an Ethernet interface")]
    LinkType(u32),
    #[error("block at byte {offset} has an impossible length {len}")]
    BlockLength { offset: usize, len: u32 },
}

const LINKTYPE_ETHERNET: u32 = 1;

fn u32_at(b: &[u8], off: usize, le: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(s)
    } else {
        u32::from_be_bytes(s)
    })
}

/// Frames of a capture, in order (slices into `data`).
pub fn frames(data: &[u8]) -> Result<Vec<&[u8]>, PcapError> {
    let magic = u32_at(data, 0, true).ok_or(PcapError::Truncated {
        what: "file header",
        offset: 0,
    })?;
    match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => classic(data, true),
        0xd4c3_b2a1 | 0x4d3c_b2a1 => classic(data, false),
        0x0a0d_0d0a => pcapng(data),
        m => Err(PcapError::Magic(m)),
    }
}

fn classic(data: &[u8], le: bool) -> Result<Vec<&[u8]>, PcapError> {
    let link = u32_at(data, 20, le).ok_or(PcapError::Truncated {
        what: "file header",
        offset: 0,
    })?;
    if link & 0xffff != LINKTYPE_ETHERNET {
        return Err(PcapError::LinkType(link & 0xffff));
    }
    let mut out = Vec::new();
    let mut off = 24;
    while off < data.len() {
        let caplen = u32_at(data, off + 8, le).ok_or(PcapError::Truncated {
            what: "record header",
            offset: off,
        })? as usize;
        let start = off + 16;
        let frame = data
            .get(start..start.saturating_add(caplen))
            .ok_or(PcapError::Truncated {
                what: "record",
                offset: off,
            })?;
        out.push(frame);
        off = start + caplen;
    }
    Ok(out)
}

fn pcapng(data: &[u8]) -> Result<Vec<&[u8]>, PcapError> {
    // The section header's byte-order magic tells the endianness.
    let le = match u32_at(data, 8, true) {
        Some(0x1a2b_3c4d) => true,
        Some(_) => false,
        None => {
            return Err(PcapError::Truncated {
                what: "section header",
                offset: 0,
            });
        }
    };
    let mut out = Vec::new();
    let mut links: Vec<u32> = Vec::new();
    let mut off = 0;
    while off < data.len() {
        let trunc = PcapError::Truncated {
            what: "block",
            offset: off,
        };
        let btype = u32_at(data, off, le).ok_or(trunc.clone())?;
        let blen = u32_at(data, off + 4, le).ok_or(trunc.clone())?;
        if blen < 12 || blen % 4 != 0 {
            return Err(PcapError::BlockLength {
                offset: off,
                len: blen,
            });
        }
        let block = data
            .get(off..off.saturating_add(blen as usize))
            .ok_or(trunc.clone())?;
        match btype {
            0x0a0d_0d0a => links.clear(),
            1 => {
                let lt = u32_at(block, 8, le).ok_or(trunc.clone())? & 0xffff;
                links.push(lt);
            }
            6 => {
                let iface = u32_at(block, 8, le).ok_or(trunc.clone())?;
                let caplen = u32_at(block, 20, le).ok_or(trunc.clone())? as usize;
                check_link(&links, iface)?;
                out.push(
                    block
                        .get(28..28usize.saturating_add(caplen))
                        .ok_or(trunc.clone())?,
                );
            }
            3 => {
                check_link(&links, 0)?;
                let orig = u32_at(block, 8, le).ok_or(trunc.clone())? as usize;
                let caplen = orig.min(block.len().saturating_sub(16));
                out.push(&block[12..12 + caplen]);
            }
            _ => {}
        }
        off += blen as usize;
    }
    Ok(out)
}

fn check_link(links: &[u32], iface: u32) -> Result<(), PcapError> {
    match links.get(iface as usize) {
        Some(&LINKTYPE_ETHERNET) => Ok(()),
        Some(&other) => Err(PcapError::LinkType(other)),
        None => Err(PcapError::LinkType(u32::MAX)),
    }
}

/// A classic little-endian pcap file holding `frames` (for tests and examples).
pub fn write(frames: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    for f in frames {
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}
