//! The per-guest shared counter region: a 1 MiB file (`~/.uml/UMID/metrics`) mapped by
//! the guest read-write and by readers (the guest's own `/metrics` thread, the lab
//! supervisor) read-only.
//!
//! Layout, in 64-bit words (native byte order):
//!
//! | word | field |
//! |---|---|
//! | 0 | magic `VBXMETR1` |
//! | 1 | sequence (seqlock: odd while the guest writes) |
//! | 2 | schema generation (bumped when the series description changes) |
//! | 3 | schema length in bytes |
//! | 4 | number of value words |
//! | 5 | guest pid |
//! | 6 | state: 1 running, 2 stopped (console `stop`), 0 exited |
//! | 7 | time of the last publication, ns since the Unix epoch |
//! | 8..16 | schema offset, schema capacity, values offset, values capacity (words) |
//! | schema | JSON array of [`Series`], packed into words |
//! | values | one word per counter/gauge (f64 bits), `buckets + 1` per histogram |
//!
//! Every word is read and written with atomic operations. The writer makes the sequence
//! odd, writes, and makes it even with release ordering; a reader copies everything and
//! retries while the sequence was odd or moved (it never blocks the guest).

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::sink::{Series, Snapshot};
use crate::sys::shm::SharedWords;

/// `b"VBXMETR1"` as a little-endian word.
pub const MAGIC: u64 = u64::from_le_bytes(*b"VBXMETR1");
/// Size of the region file.
pub const SIZE: usize = 1 << 20;
const HEADER_WORDS: usize = 16;
const SCHEMA_WORDS: usize = (SIZE / 8 - HEADER_WORDS) / 2;

const W_MAGIC: usize = 0;
const W_SEQ: usize = 1;
const W_GEN: usize = 2;
const W_SCHEMA_LEN: usize = 3;
const W_VALUES_LEN: usize = 4;
const W_PID: usize = 5;
const W_STATE: usize = 6;
const W_TIME: usize = 7;
const W_SCHEMA_OFF: usize = 8;
const W_SCHEMA_CAP: usize = 9;
const W_VALUES_OFF: usize = 10;
const W_VALUES_CAP: usize = 11;

/// Guest state as published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Exited = 0,
    Running = 1,
    Stopped = 2,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The guest's side of a region.
pub struct RegionWriter {
    map: SharedWords,
    generation: u64,
    scratch: Vec<u8>,
    overflow_logged: bool,
}

impl RegionWriter {
    /// Create the region file at `path` (mode 0600, must not exist) and map it.
    pub fn create(path: &Path) -> io::Result<RegionWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(SIZE as u64)?;
        let map = SharedWords::map(&file, true)?;
        let w = map.words();
        w[W_SCHEMA_OFF].store(HEADER_WORDS as u64, Ordering::Relaxed);
        w[W_SCHEMA_CAP].store(SCHEMA_WORDS as u64, Ordering::Relaxed);
        w[W_VALUES_OFF].store((HEADER_WORDS + SCHEMA_WORDS) as u64, Ordering::Relaxed);
        w[W_VALUES_CAP].store(
            (SIZE / 8 - HEADER_WORDS - SCHEMA_WORDS) as u64,
            Ordering::Relaxed,
        );
        w[W_PID].store(u64::from(std::process::id()), Ordering::Relaxed);
        w[W_STATE].store(State::Running as u64, Ordering::Relaxed);
        w[W_MAGIC].store(MAGIC, Ordering::Release);
        Ok(RegionWriter {
            map,
            generation: 0,
            scratch: Vec::new(),
            overflow_logged: false,
        })
    }

    /// Publish `snap`: its description only if it changed, then every value.
    pub fn publish(&mut self, snap: &mut Snapshot) {
        let w = self.map.words();
        let seq = w[W_SEQ].load(Ordering::Relaxed);
        w[W_SEQ].store(seq.wrapping_add(1) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        if snap.take_changed() {
            self.scratch.clear();
            if serde_json::to_writer(&mut self.scratch, &snap.series).is_ok() {
                let cap = SCHEMA_WORDS * 8;
                if self.scratch.len() > cap {
                    overflow(
                        &mut self.overflow_logged,
                        self.scratch.len(),
                        cap,
                        "description",
                    );
                    self.scratch.clear();
                    self.scratch.extend_from_slice(b"[]");
                }
                let base = HEADER_WORDS;
                for (i, chunk) in self.scratch.chunks(8).enumerate() {
                    let mut b = [0u8; 8];
                    b[..chunk.len()].copy_from_slice(chunk);
                    w[base + i].store(u64::from_le_bytes(b), Ordering::Relaxed);
                }
                self.generation += 1;
                w[W_GEN].store(self.generation, Ordering::Relaxed);
                w[W_SCHEMA_LEN].store(self.scratch.len() as u64, Ordering::Relaxed);
            }
        }
        let cap = SIZE / 8 - HEADER_WORDS - SCHEMA_WORDS;
        let n = snap.values.len().min(cap);
        if n < snap.values.len() {
            overflow(&mut self.overflow_logged, snap.values.len(), cap, "values");
        }
        let base = HEADER_WORDS + SCHEMA_WORDS;
        for (slot, v) in w[base..base + n].iter().zip(&snap.values) {
            slot.store(*v, Ordering::Relaxed);
        }
        w[W_VALUES_LEN].store(n as u64, Ordering::Relaxed);
        w[W_TIME].store(now_ns(), Ordering::Relaxed);
        w[W_SEQ].store(seq.wrapping_add(2) & !1, Ordering::Release);
    }

    /// Publish the guest's state.
    pub fn set_state(&self, s: State) {
        self.map.words()[W_STATE].store(s as u64, Ordering::Release);
    }
}

impl Drop for RegionWriter {
    fn drop(&mut self) {
        self.set_state(State::Exited);
    }
}

fn overflow(logged: &mut bool, got: usize, cap: usize, what: &str) {
    if !std::mem::replace(logged, true) {
        tracing::warn!(
            got,
            cap,
            "metrics region: too many series ({what}); some are not published"
        );
    }
}

/// Why a region could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a vecbox metrics region (bad magic or layout)")]
    Layout,
    #[error("the guest kept writing; try again")]
    Busy,
    #[error("series description is not valid: {0}")]
    Schema(String),
}

/// One consistent reading of a region.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading<'a> {
    pub pid: u32,
    pub state: State,
    /// Age of the last publication.
    pub age: Duration,
    pub series: &'a [Series],
    pub values: &'a [u64],
}

/// A reader of one guest's region (keeps the last description it parsed).
pub struct RegionReader {
    map: SharedWords,
    generation: u64,
    series: Vec<Series>,
    values: Vec<u64>,
    schema: Vec<u8>,
}

impl RegionReader {
    /// Map the region at `path` read-only.
    pub fn open(path: &Path) -> Result<RegionReader, ReadError> {
        let file = File::open(path)?;
        let map = SharedWords::map(&file, false)?;
        if map.words().len() < HEADER_WORDS || map.words()[W_MAGIC].load(Ordering::Acquire) != MAGIC
        {
            return Err(ReadError::Layout);
        }
        Ok(RegionReader {
            map,
            generation: u64::MAX,
            series: Vec::new(),
            values: Vec::new(),
            schema: Vec::new(),
        })
    }

    /// Take a consistent copy (retrying a few times while the guest writes).
    pub fn read(&mut self) -> Result<Reading<'_>, ReadError> {
        for _ in 0..100 {
            match self.try_read()? {
                Some((pid, state, time)) => {
                    let age = Duration::from_nanos(now_ns().saturating_sub(time));
                    return Ok(Reading {
                        pid,
                        state,
                        age,
                        series: &self.series,
                        values: &self.values,
                    });
                }
                None => std::thread::yield_now(),
            }
        }
        Err(ReadError::Busy)
    }

    fn try_read(&mut self) -> Result<Option<(u32, State, u64)>, ReadError> {
        let w = self.map.words();
        let s1 = w[W_SEQ].load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return Ok(None);
        }
        let get = |i: usize| w[i].load(Ordering::Relaxed);
        let (gen_, schema_len, n) = (get(W_GEN), get(W_SCHEMA_LEN) as usize, get(W_VALUES_LEN));
        let (s_off, s_cap, v_off, v_cap) = (
            get(W_SCHEMA_OFF) as usize,
            get(W_SCHEMA_CAP) as usize,
            get(W_VALUES_OFF) as usize,
            get(W_VALUES_CAP) as usize,
        );
        let (pid, state, time) = (get(W_PID), get(W_STATE), get(W_TIME));
        let fits = |off: usize, cap: usize| off.checked_add(cap).is_some_and(|e| e <= w.len());
        if !fits(s_off, s_cap)
            || !fits(v_off, v_cap)
            || schema_len > s_cap * 8
            || n as usize > v_cap
        {
            // Could be a torn read of a region being initialised: check the sequence.
            fence(Ordering::Acquire);
            return if w[W_SEQ].load(Ordering::Relaxed) == s1 {
                Err(ReadError::Layout)
            } else {
                Ok(None)
            };
        }
        let new_schema = gen_ != self.generation;
        if new_schema {
            self.schema.clear();
            for word in &w[s_off..s_off + schema_len.div_ceil(8)] {
                self.schema
                    .extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
            }
            self.schema.truncate(schema_len);
        }
        self.values.clear();
        self.values.extend(
            w[v_off..v_off + n as usize]
                .iter()
                .map(|x| x.load(Ordering::Relaxed)),
        );
        fence(Ordering::Acquire);
        if w[W_SEQ].load(Ordering::Relaxed) != s1 {
            return Ok(None);
        }
        if new_schema {
            self.series = if schema_len == 0 {
                Vec::new()
            } else {
                serde_json::from_slice(&self.schema)
                    .map_err(|e| ReadError::Schema(e.to_string()))?
            };
            self.generation = gen_;
        }
        let state = match state {
            1 => State::Running,
            2 => State::Stopped,
            _ => State::Exited,
        };
        Ok(Some((pid as u32, state, time)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sink::{Kind, MetricSink};

    #[test]
    fn a_reader_sees_what_the_writer_published() {
        let dir = std::env::temp_dir().join(format!("vecbox-region-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics");
        let _ = std::fs::remove_file(&path);
        let mut w = RegionWriter::create(&path).unwrap();
        assert!(RegionWriter::create(&path).is_err(), "create_new");
        let mut r = RegionReader::open(&path).unwrap();
        let mut snap = Snapshot::default();
        for n in [5u64, 6] {
            snap.begin();
            snap.counter("vecbox_x_total", "X.", &[("iface", "vec0")], n);
            snap.end();
            w.publish(&mut snap);
            let got = r.read().unwrap();
            assert_eq!(got.series.len(), 1);
            assert_eq!(got.series[0].kind, Kind::Counter);
            assert_eq!(got.values, &[n]);
            assert_eq!(got.state, State::Running);
            assert_eq!(got.pid, std::process::id());
        }
        w.set_state(State::Stopped);
        assert_eq!(r.read().unwrap().state, State::Stopped);
        drop(w);
        assert_eq!(r.read().unwrap().state, State::Exited);
        std::fs::write(dir.join("junk"), vec![0u8; 4096]).unwrap();
        assert!(matches!(
            RegionReader::open(&dir.join("junk")),
            Err(ReadError::Layout)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
