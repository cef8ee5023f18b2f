//! The capture ring: one shared memory file (a memfd made by the capturing process and
//! handed to the guest over its control socket) holding a header, the capture's
//! configuration and a single-producer, single-consumer byte ring of frame records.
//!
//! Layout (native byte order; words are 64-bit atomics):
//!
//! | bytes | content |
//! |---|---|
//! | 0..4096 | header: magic `VBXCAPT1`, ring capacity, state, close reason, guest pid, session id; the write position (word 8, its own cache line), the read position (word 16), then per slot and side (pre/post) the counters `seen`, `accepted`, `dropped` |
//! | 4096..40960 | configuration ([`super::config`]) |
//! | 40960.. | the ring: records of a 40-byte header and the frame, each padded to 8 bytes |
//!
//! The guest ([`Producer`]) copies a record in, then publishes the write position with
//! a release store; the reader ([`Consumer`]) loads it with acquire, copies records
//! out and publishes its read position the same way. A record never straddles the end:
//! the producer fills the tail with a padding record and starts again at offset 0. When
//! a record does not fit in the free space the copy is dropped and counted — the guest
//! never waits for the reader.

use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;

use super::{Note, Point};
use crate::sys::shm::SharedWords;

/// `b"VBXCAPT1"` as a little-endian word.
pub const MAGIC: u64 = u64::from_le_bytes(*b"VBXCAPT1");
/// Bytes before the configuration.
pub const HEADER_BYTES: usize = 4096;
/// Where the configuration starts, and its size.
pub const CONFIG_OFF: usize = HEADER_BYTES;
pub const CONFIG_BYTES: usize = 36 << 10;
/// Where the ring starts.
pub const DATA_OFF: usize = CONFIG_OFF + CONFIG_BYTES;
/// Smallest ring a guest gets unless asked otherwise.
pub const DEFAULT_BYTES: usize = 8 << 20;
/// Ring memory of one capture unless asked otherwise, shared out over its guests: a
/// single guest gets 64 MiB, about 0.4 s of 1500-byte frames at 100 kpps, so that a
/// writer the scheduler keeps off the CPU for a while loses no copies.
pub const AUTO_TOTAL_BYTES: usize = 64 << 20;
/// Smallest and largest ring sizes accepted.
pub const MIN_BYTES: usize = 64 << 10;
pub const MAX_BYTES: usize = 1 << 30;
/// Most ports one capture can take from one guest.
pub const MAX_SLOTS: usize = 64;
/// Bytes of a record's header.
pub const RECORD_HEADER: usize = 40;

const W_MAGIC: usize = 0;
const W_CAP: usize = 1;
const W_STATE: usize = 2;
const W_REASON: usize = 3;
const W_PID: usize = 4;
const W_SESSION: usize = 5;
const W_WRITE: usize = 8;
const W_READ: usize = 16;
const W_COUNTERS: usize = 24;

const KIND_FRAME: u16 = 1;
const KIND_PAD: u16 = 2;

/// Life of a capture, as the guest reports it in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Made by the reader, not yet taken by a guest.
    Offered,
    Running,
    /// The guest stopped copying; the reason says why.
    Closed(CloseReason),
}

/// Why a guest stopped a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The console's `capture stop` (the reader is done).
    Stopped = 1,
    /// The guest is exiting (halt, SIGTERM, its lab going down).
    GuestExit = 2,
    /// Every captured interface was removed from the guest.
    PortsRemoved = 3,
    /// The reader went away without stopping the capture.
    ReaderGone = 4,
    Unknown = 0,
}

impl CloseReason {
    fn from_u64(v: u64) -> CloseReason {
        match v {
            1 => CloseReason::Stopped,
            2 => CloseReason::GuestExit,
            3 => CloseReason::PortsRemoved,
            4 => CloseReason::ReaderGone,
            _ => CloseReason::Unknown,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            CloseReason::Stopped => "capture stopped",
            CloseReason::GuestExit => "the guest exited",
            CloseReason::PortsRemoved => "the captured interfaces were removed from the guest",
            CloseReason::ReaderGone => "the reader went away",
            CloseReason::Unknown => "closed by the guest",
        }
    }
}

/// Counters of one slot and side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames that reached the capture point.
    pub seen: u64,
    /// Frames that passed the filter.
    pub accepted: u64,
    /// Accepted frames whose copy did not fit in the ring.
    pub dropped: u64,
}

impl Counters {
    /// Copies written into the ring.
    pub fn captured(&self) -> u64 {
        self.accepted.saturating_sub(self.dropped)
    }
}

/// Index of the counters of `slot` on the `post` side or not.
pub fn counter_index(slot: usize, post: bool) -> usize {
    slot * 2 + usize::from(post)
}

/// What a record says about its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Index of the port in the capture's configuration.
    pub slot: u16,
    pub point: Point,
    pub note: Note,
    /// Frame length before the snap length cut it.
    pub orig_len: u32,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The same for every copy of one frame (pre/post).
    pub id: u64,
}

/// Errors of a ring mapping.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("capture ring: {0}")]
    Io(#[from] io::Error),
    #[error("capture ring: not a capture ring of this vecbox ({0})")]
    Layout(&'static str),
    #[error("capture ring: record at position {pos} is damaged ({what})")]
    Corrupt { pos: u64, what: &'static str },
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// The ring of each guest of a capture of `guests` guests when none was asked for:
/// [`AUTO_TOTAL_BYTES`] shared out, at least [`DEFAULT_BYTES`] each.
pub fn auto_bytes(guests: usize) -> usize {
    (AUTO_TOTAL_BYTES / guests.max(1)).clamp(DEFAULT_BYTES, AUTO_TOTAL_BYTES)
}

/// Check that `map` is a capture ring; its ring capacity.
fn check(map: &SharedWords) -> Result<u64, RingError> {
    let w = map.words();
    if w.len() * 8 < DATA_OFF || w[W_MAGIC].load(Ordering::Acquire) != MAGIC {
        return Err(RingError::Layout("bad magic or size"));
    }
    let cap = w[W_CAP].load(Ordering::Relaxed);
    let fits = usize::try_from(cap)
        .ok()
        .filter(|c| (MIN_BYTES..=MAX_BYTES).contains(c) && c % 8 == 0)
        .is_some_and(|c| DATA_OFF + c == map.byte_len());
    if !fits {
        return Err(RingError::Layout("capacity does not match the mapping"));
    }
    Ok(cap)
}

/// Make a ring of `bytes` (rounded to 8, within [`MIN_BYTES`]..=[`MAX_BYTES`]) in a new
/// memfd; returns the file (to pass to the guest) and the reader's mapping.
pub fn create(bytes: usize) -> Result<(File, SharedWords), RingError> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let cap = align8(bytes.clamp(MIN_BYTES, MAX_BYTES));
    let fd = memfd_create("vecbox-capture", MFdFlags::MFD_CLOEXEC).map_err(io::Error::from)?;
    let file = File::from(fd);
    file.set_len((DATA_OFF + cap) as u64)?;
    let map = SharedWords::map(&file, true)?;
    let w = map.words();
    w[W_CAP].store(cap as u64, Ordering::Relaxed);
    w[W_MAGIC].store(MAGIC, Ordering::Release);
    Ok((file, map))
}

/// Copy the configuration area out of a ring (checked to be one).
pub fn read_config(map: &SharedWords) -> Result<Vec<u8>, RingError> {
    check(map)?;
    let mut v = vec![0u8; CONFIG_BYTES];
    map.read_bytes(CONFIG_OFF, &mut v);
    Ok(v)
}

/// The guest's side: copies records in, counts what it drops.
pub struct Producer {
    map: SharedWords,
    cap: u64,
    wpos: u64,
    /// Read position last loaded (refreshed only when the ring looks full).
    rpos: u64,
    counters: Vec<Counters>,
    scratch: [u8; RECORD_HEADER],
}

impl Producer {
    /// Take over a ring (mapped read-write) for `slots` ports, as session `session`.
    pub fn attach(map: SharedWords, slots: usize, session: u32) -> Result<Producer, RingError> {
        let cap = check(&map)?;
        if slots == 0 || slots > MAX_SLOTS {
            return Err(RingError::Layout("slot count"));
        }
        let w = map.words();
        if w[W_STATE].load(Ordering::Acquire) != 0 {
            return Err(RingError::Layout("the ring is already in use"));
        }
        let wpos = w[W_WRITE].load(Ordering::Relaxed);
        w[W_PID].store(u64::from(std::process::id()), Ordering::Relaxed);
        w[W_SESSION].store(u64::from(session), Ordering::Relaxed);
        w[W_STATE].store(1, Ordering::Release);
        Ok(Producer {
            rpos: w[W_READ].load(Ordering::Acquire),
            map,
            cap,
            wpos,
            counters: vec![Counters::default(); slots * 2],
            scratch: [0; RECORD_HEADER],
        })
    }

    /// Record that a frame reached counter `idx`; `accepted` if it passed the filter,
    /// in which case `data` (already cut to the snap length) is copied.
    #[inline]
    pub fn offer(&mut self, idx: usize, accepted: bool, meta: &Meta, data: &[u8]) {
        let Some(c) = self.counters.get_mut(idx) else {
            return;
        };
        c.seen += 1;
        if !accepted {
            return;
        }
        c.accepted += 1;
        if !self.push(meta, data)
            && let Some(c) = self.counters.get_mut(idx)
        {
            c.dropped += 1;
        }
    }

    /// Copy one record in; `false` (nothing written) when it does not fit.
    pub fn push(&mut self, meta: &Meta, data: &[u8]) -> bool {
        let need = align8(RECORD_HEADER + data.len()) as u64;
        if need > self.cap {
            return false;
        }
        let off = self.wpos % self.cap;
        let to_end = self.cap - off;
        let total = if need <= to_end { need } else { to_end + need };
        if !self.has_room(total) {
            self.rpos = self.map.words()[W_READ].load(Ordering::Acquire);
            if !self.has_room(total) {
                return false;
            }
        }
        if need > to_end {
            let mut pad = [0u8; 8];
            pad[..4].copy_from_slice(&(to_end as u32).to_ne_bytes());
            pad[4..6].copy_from_slice(&KIND_PAD.to_ne_bytes());
            self.map.write_bytes(DATA_OFF + off as usize, &pad);
            self.wpos += to_end;
        }
        let at = DATA_OFF + (self.wpos % self.cap) as usize;
        encode(&mut self.scratch, need as u32, meta, data.len() as u32);
        self.map.write_bytes(at, &self.scratch);
        self.map.write_bytes(at + RECORD_HEADER, data);
        self.wpos += need;
        self.map.words()[W_WRITE].store(self.wpos, Ordering::Release);
        true
    }

    fn has_room(&self, total: u64) -> bool {
        // A reader that wrote nonsense makes the ring look full: only its own capture
        // suffers.
        let used = self.wpos.wrapping_sub(self.rpos);
        used <= self.cap && used + total <= self.cap
    }

    /// Publish counter `idx` to the header.
    pub fn publish(&self, idx: usize) {
        if let Some(c) = self.counters.get(idx) {
            let w = self.map.words();
            let base = W_COUNTERS + idx * 3;
            w[base].store(c.seen, Ordering::Relaxed);
            w[base + 1].store(c.accepted, Ordering::Relaxed);
            w[base + 2].store(c.dropped, Ordering::Relaxed);
        }
    }

    /// This producer's own counters.
    pub fn counters(&self, idx: usize) -> Counters {
        self.counters.get(idx).copied().unwrap_or_default()
    }

    /// Stop: publish every counter and the reason; the reader drains what is left.
    pub fn close(&mut self, reason: CloseReason) {
        for i in 0..self.counters.len() {
            self.publish(i);
        }
        let w = self.map.words();
        w[W_REASON].store(reason as u64, Ordering::Relaxed);
        w[W_STATE].store(2, Ordering::Release);
    }
}

fn encode(h: &mut [u8; RECORD_HEADER], len: u32, m: &Meta, caplen: u32) {
    let (nk, na) = m.note.encode();
    h[0..4].copy_from_slice(&len.to_ne_bytes());
    h[4..6].copy_from_slice(&KIND_FRAME.to_ne_bytes());
    h[6] = m.point as u8;
    h[7] = nk;
    h[8..10].copy_from_slice(&m.slot.to_ne_bytes());
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&na.to_ne_bytes());
    h[16..20].copy_from_slice(&caplen.to_ne_bytes());
    h[20..24].copy_from_slice(&m.orig_len.to_ne_bytes());
    h[24..32].copy_from_slice(&m.ts_ns.to_ne_bytes());
    h[32..40].copy_from_slice(&m.id.to_ne_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(x)
}

/// A record found by [`Consumer::next_record`]: what it says and where its frame lies.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub meta: Meta,
    /// Offset of the frame in the mapping.
    at: usize,
    /// Frame bytes in the record.
    pub caplen: usize,
}

/// The reader's side.
pub struct Consumer {
    map: SharedWords,
    cap: u64,
    rpos: u64,
    wpos: u64,
    buf: Vec<u8>,
}

impl Consumer {
    /// Read a ring made by [`create`].
    pub fn new(map: SharedWords) -> Result<Consumer, RingError> {
        let cap = check(&map)?;
        let rpos = map.words()[W_READ].load(Ordering::Acquire);
        Ok(Consumer {
            map,
            cap,
            rpos,
            wpos: rpos,
            buf: Vec::new(),
        })
    }

    /// Write the configuration (before the guest takes the ring).
    pub fn write_config(&self, bytes: &[u8]) {
        let n = bytes.len().min(CONFIG_BYTES);
        self.map.write_bytes(CONFIG_OFF, &bytes[..n]);
    }

    /// The next record, if the guest has published one. The frame bytes are valid
    /// until the next call. Call [`Consumer::commit`] to give the space back.
    pub fn read(&mut self) -> Result<Option<(Meta, &[u8])>, RingError> {
        let Some(r) = self.next_record()? else {
            return Ok(None);
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(r.caplen, 0);
        self.frame_into(&r, &mut buf);
        self.buf = buf;
        Ok(Some((r.meta, &self.buf)))
    }

    /// The next record's description, if the guest has published one; its frame is
    /// copied out with [`Consumer::frame_into`] (straight into an output buffer),
    /// before [`Consumer::commit`] gives the space back.
    pub fn next_record(&mut self) -> Result<Option<Record>, RingError> {
        loop {
            if self.rpos == self.wpos {
                self.wpos = self.map.words()[W_WRITE].load(Ordering::Acquire);
                if self.rpos == self.wpos {
                    return Ok(None);
                }
            }
            let pos = self.rpos;
            let corrupt = |what| RingError::Corrupt { pos, what };
            let avail = self.wpos.wrapping_sub(pos);
            if avail > self.cap {
                return Err(corrupt("write position out of range"));
            }
            let off = (pos % self.cap) as usize;
            let mut head = [0u8; RECORD_HEADER];
            let first = 8.min(self.cap as usize - off);
            self.map.read_bytes(DATA_OFF + off, &mut head[..first]);
            let len = u32_at(&head, 0) as u64;
            let kind = u16::from_ne_bytes([head[4], head[5]]);
            if len < 8 || !len.is_multiple_of(8) || len > self.cap - off as u64 || len > avail {
                return Err(corrupt("bad length"));
            }
            if kind == KIND_PAD {
                self.rpos += len;
                continue;
            }
            if kind != KIND_FRAME || (len as usize) < RECORD_HEADER {
                return Err(corrupt("unknown kind"));
            }
            self.map
                .read_bytes(DATA_OFF + off + 8, &mut head[8..RECORD_HEADER]);
            let caplen = u32_at(&head, 16) as usize;
            if RECORD_HEADER + caplen > len as usize {
                return Err(corrupt("frame longer than its record"));
            }
            let point = Point::from_u8(head[6]).ok_or_else(|| corrupt("unknown point"))?;
            let meta = Meta {
                slot: u16::from_ne_bytes([head[8], head[9]]),
                point,
                note: Note::decode(head[7], u32_at(&head, 12)),
                orig_len: u32_at(&head, 20),
                ts_ns: u64_at(&head, 24),
                id: u64_at(&head, 32),
            };
            self.rpos += len;
            return Ok(Some(Record {
                meta,
                at: DATA_OFF + off + RECORD_HEADER,
                caplen,
            }));
        }
    }

    /// Copy the frame of `r` (the last record [`Consumer::next_record`] gave, not yet
    /// committed) into `dst` (up to its length).
    pub fn frame_into(&self, r: &Record, dst: &mut [u8]) {
        let n = dst.len().min(r.caplen);
        self.map.read_bytes(r.at, &mut dst[..n]);
    }

    /// Give the space of the records read so far back to the guest.
    pub fn commit(&self) {
        self.map.words()[W_READ].store(self.rpos, Ordering::Release);
    }

    /// Counters the guest published for index `idx` ([`counter_index`]).
    pub fn counters(&self, idx: usize) -> Counters {
        let w = self.map.words();
        let base = W_COUNTERS + idx * 3;
        if idx >= MAX_SLOTS * 2 {
            return Counters::default();
        }
        Counters {
            seen: w[base].load(Ordering::Relaxed),
            accepted: w[base + 1].load(Ordering::Relaxed),
            dropped: w[base + 2].load(Ordering::Relaxed),
        }
    }

    /// The guest's view of the capture.
    pub fn state(&self) -> State {
        let w = self.map.words();
        match w[W_STATE].load(Ordering::Acquire) {
            0 => State::Offered,
            1 => State::Running,
            _ => State::Closed(CloseReason::from_u64(w[W_REASON].load(Ordering::Relaxed))),
        }
    }

    /// Pid and session number the guest wrote when it took the ring.
    pub fn owner(&self) -> (u32, u32) {
        let w = self.map.words();
        (
            w[W_PID].load(Ordering::Relaxed) as u32,
            w[W_SESSION].load(Ordering::Relaxed) as u32,
        )
    }

    /// Bytes of records not yet read.
    pub fn pending(&self) -> u64 {
        self.map.words()[W_WRITE]
            .load(Ordering::Acquire)
            .wrapping_sub(self.rpos)
    }
}

#[cfg(test)]
mod tests;
