//! A pcapng writer for live streams (IETF draft-ietf-opsawg-pcapng): one section whose
//! length is unknown (−1), interface description blocks that may be added at any time,
//! enhanced packet blocks with direction, packet id and comment, and interface
//! statistics blocks. Always little-endian; every block is padded to 32 bits.
//!
//! Blocks are built in place in the writer's own buffer (no per-block allocation, a
//! frame is copied once, straight from its source into the buffer), which goes out in
//! one `write` when it passes [`FLUSH_BYTES`] or at [`Writer::flush`]: call that after
//! each batch so that a reader on a pipe sees frames promptly. No `BufWriter` needed.

use std::io::{self, Write};

/// Block types.
pub const SHB: u32 = 0x0A0D_0D0A;
pub const IDB: u32 = 1;
pub const ISB: u32 = 5;
pub const EPB: u32 = 6;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u16 = 1;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

// Option codes.
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_HARDWARE: u16 = 2;
const SHB_OS: u16 = 3;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const IF_FILTER: u16 = 11;
const EPB_FLAGS: u16 = 2;
const EPB_PACKETID: u16 = 5;
const ISB_STARTTIME: u16 = 2;
const ISB_ENDTIME: u16 = 3;
const ISB_IFRECV: u16 = 4;
const ISB_IFDROP: u16 = 5;
const ISB_FILTERACCEPT: u16 = 6;
const ISB_USRDELIV: u16 = 8;

/// The section header's descriptive options.
#[derive(Clone, Copy, Debug, Default)]
pub struct Section<'a> {
    pub hardware: Option<&'a str>,
    pub os: Option<&'a str>,
    pub application: Option<&'a str>,
}

/// One captured interface.
#[derive(Clone, Copy, Debug)]
pub struct Interface<'a> {
    pub name: &'a str,
    pub description: &'a str,
    /// Largest number of bytes kept per frame (0: no limit).
    pub snaplen: u32,
    /// The capture filter as the user wrote it (libpcap syntax).
    pub filter: Option<&'a str>,
}

/// Direction of a frame relative to the captured interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// One frame.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Interface id (order of [`Writer::add_interface`] calls).
    pub iface: u32,
    /// Nanoseconds since the Unix epoch (interfaces are written with `if_tsresol` = 9).
    pub ts_ns: u64,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Length of the frame before it was cut to the snap length.
    pub orig_len: u32,
    pub direction: Option<Direction>,
    /// The same id marks one frame seen at several points.
    pub id: Option<u64>,
    pub comment: Option<&'a str>,
}

/// Cumulative counters of one interface.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats<'a> {
    pub iface: u32,
    pub ts_ns: u64,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    /// Frames that reached the capture point (`isb_ifrecv`).
    pub received: u64,
    /// Frames that passed the filter but were lost for want of room (`isb_ifdrop`).
    pub dropped: u64,
    /// Frames that passed the filter (`isb_filteraccept`).
    pub accepted: Option<u64>,
    /// Frames written to this stream (`isb_usrdeliv`).
    pub delivered: Option<u64>,
    pub comment: Option<&'a str>,
}

/// Buffered bytes that make the writer pass its buffer on without waiting for a flush.
pub const FLUSH_BYTES: usize = 1 << 20;

/// Writes one pcapng section to `out`.
pub struct Writer<W: Write> {
    out: W,
    /// Whole blocks not yet written to `out`.
    buf: Vec<u8>,
    interfaces: u32,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Builds one block at the end of the output buffer.
struct Block<'b> {
    b: &'b mut Vec<u8>,
    /// Where the block starts in `b`.
    at: usize,
    options: bool,
}

impl<'b> Block<'b> {
    fn start(b: &'b mut Vec<u8>, kind: u32) -> Block<'b> {
        let at = b.len();
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        Block {
            b,
            at,
            options: false,
        }
    }

    /// `n` bytes filled by `fill`, then padding to 32 bits.
    fn filled_padded(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) {
        let from = self.b.len();
        self.b.resize(from + n + pad4(n), 0);
        fill(&mut self.b[from..from + n]);
    }

    fn u16(&mut self, v: u16) {
        self.b.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.b.extend_from_slice(&v.to_le_bytes());
    }

    /// A timestamp as pcapng stores it: high 32 bits, then low 32 bits.
    fn ts(&mut self, ns: u64) {
        self.u32((ns >> 32) as u32);
        self.u32(ns as u32);
    }

    fn bytes_padded(&mut self, data: &[u8]) {
        self.b.extend_from_slice(data);
        self.b.resize(self.b.len() + pad4(data.len()), 0);
    }

    fn option(&mut self, code: u16, value: &[u8]) {
        // Option values are at most 65535 bytes; longer text is cut.
        let value = &value[..value.len().min(0xfffc)];
        self.options = true;
        self.u16(code);
        self.u16(value.len() as u16);
        self.bytes_padded(value);
    }

    fn option_ts(&mut self, code: u16, ns: u64) {
        let mut v = [0u8; 8];
        v[..4].copy_from_slice(&((ns >> 32) as u32).to_le_bytes());
        v[4..].copy_from_slice(&(ns as u32).to_le_bytes());
        self.option(code, &v);
    }

    fn finish(self) {
        if self.options {
            self.b.extend_from_slice(&OPT_END.to_le_bytes());
            self.b.extend_from_slice(&0u16.to_le_bytes());
        }
        let total = (self.b.len() - self.at + 4) as u32;
        self.b.extend_from_slice(&total.to_le_bytes());
        self.b[self.at + 4..self.at + 8].copy_from_slice(&total.to_le_bytes());
    }
}

impl<W: Write> Writer<W> {
    /// Start a section: the section header block, with an unknown section length so
    /// that the stream can be read while it is written.
    pub fn new(out: W, section: &Section<'_>) -> io::Result<Writer<W>> {
        let mut buf = Vec::with_capacity(FLUSH_BYTES + (64 << 10));
        let mut b = Block::start(&mut buf, SHB);
        b.u32(BYTE_ORDER_MAGIC);
        b.u16(1);
        b.u16(0);
        b.b.extend_from_slice(&(-1i64).to_le_bytes());
        for (code, v) in [
            (SHB_HARDWARE, section.hardware),
            (SHB_OS, section.os),
            (SHB_USERAPPL, section.application),
        ] {
            if let Some(v) = v {
                b.option(code, v.as_bytes());
            }
        }
        b.finish();
        Ok(Writer {
            out,
            buf,
            interfaces: 0,
        })
    }

    /// Describe an Ethernet interface with nanosecond timestamps; returns its id.
    pub fn add_interface(&mut self, i: &Interface<'_>) -> io::Result<u32> {
        let mut b = Block::start(&mut self.buf, IDB);
        b.u16(LINKTYPE_ETHERNET);
        b.u16(0);
        b.u32(i.snaplen);
        b.option(IF_NAME, i.name.as_bytes());
        if !i.description.is_empty() {
            b.option(IF_DESCRIPTION, i.description.as_bytes());
        }
        b.option(IF_TSRESOL, &[9]);
        if let Some(f) = i.filter {
            // First byte 0: a libpcap filter string.
            let mut v = Vec::with_capacity(f.len() + 1);
            v.push(0);
            v.extend_from_slice(f.as_bytes());
            b.option(IF_FILTER, &v);
        }
        b.finish();
        self.spill()?;
        self.interfaces += 1;
        Ok(self.interfaces - 1)
    }

    /// Interfaces described so far.
    pub fn interfaces(&self) -> u32 {
        self.interfaces
    }

    /// One enhanced packet block.
    pub fn packet(&mut self, p: &Packet<'_>) -> io::Result<()> {
        let caplen = p.data.len().min(u32::MAX as usize - 64);
        self.packet_with(p, caplen, |dst| dst.copy_from_slice(&p.data[..caplen]))
    }

    /// One enhanced packet block whose `caplen` frame bytes `fill` writes into the
    /// buffer (`p.data` is not used): the frame is copied once, from where it lies.
    pub fn packet_with(
        &mut self,
        p: &Packet<'_>,
        caplen: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> io::Result<()> {
        let caplen = caplen.min(u32::MAX as usize - 64);
        let mut b = Block::start(&mut self.buf, EPB);
        b.u32(p.iface);
        b.ts(p.ts_ns);
        b.u32(caplen as u32);
        b.u32(p.orig_len.max(caplen as u32));
        b.filled_padded(caplen, fill);
        if let Some(c) = p.comment {
            b.option(OPT_COMMENT, c.as_bytes());
        }
        if let Some(d) = p.direction {
            let flags: u32 = match d {
                Direction::Inbound => 1,
                Direction::Outbound => 2,
            };
            b.option(EPB_FLAGS, &flags.to_le_bytes());
        }
        if let Some(id) = p.id {
            b.option(EPB_PACKETID, &id.to_le_bytes());
        }
        b.finish();
        self.spill()
    }

    /// One interface statistics block.
    pub fn stats(&mut self, s: &Stats<'_>) -> io::Result<()> {
        let mut b = Block::start(&mut self.buf, ISB);
        b.u32(s.iface);
        b.ts(s.ts_ns);
        if let Some(c) = s.comment {
            b.option(OPT_COMMENT, c.as_bytes());
        }
        if let Some(t) = s.start_ns {
            b.option_ts(ISB_STARTTIME, t);
        }
        if let Some(t) = s.end_ns {
            b.option_ts(ISB_ENDTIME, t);
        }
        b.option(ISB_IFRECV, &s.received.to_le_bytes());
        b.option(ISB_IFDROP, &s.dropped.to_le_bytes());
        if let Some(a) = s.accepted {
            b.option(ISB_FILTERACCEPT, &a.to_le_bytes());
        }
        if let Some(d) = s.delivered {
            b.option(ISB_USRDELIV, &d.to_le_bytes());
        }
        b.finish();
        self.spill()
    }

    /// Pass the buffer on once it holds [`FLUSH_BYTES`].
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            // On an error the buffer is dropped as well: a block must not be written
            // twice, and the stream is over anyway.
            let r = self.out.write_all(&self.buf);
            self.buf.clear();
            r?;
        }
        Ok(())
    }

    /// Push everything written so far to the reader: one `write` for the whole buffer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.out.flush()
    }

    /// Bytes waiting in the buffer.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The output (without what is still buffered: [`Writer::flush`] first).
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flush, then give back the output.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests;
