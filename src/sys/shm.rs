//! Shared counter regions: a file mapped `MAP_SHARED` and seen as a slice of
//! `AtomicU64`, so a guest can publish counters that its own metrics thread and a
//! supervisor process read without locks (see `metrics::region` for the layout and the
//! seqlock protocol).

use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// A mapping of a whole file as 64-bit atomic words.
pub struct SharedWords {
    ptr: NonNull<AtomicU64>,
    words: usize,
    writable: bool,
}

// SAFETY: the mapping is only ever accessed through `AtomicU64`, which is `Sync`; the
// pointer stays valid until `drop`, which needs ownership.
unsafe impl Send for SharedWords {}
// SAFETY: as above; shared access goes through atomics only.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Map `file` (whose length must be a non-zero multiple of 8) read-write (`writable`)
    /// or read-only.
    pub fn map(file: &File, writable: bool) -> io::Result<SharedWords> {
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "region too large"))?;
        let Some(nz) = NonZeroUsize::new(len).filter(|_| len.is_multiple_of(8)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "region size is not a non-zero multiple of 8 bytes",
            ));
        };
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        // SAFETY: a fresh shared mapping of an open file at an address the kernel picks;
        // no existing Rust object is aliased. The file's size was read just before; if
        // another process truncates it, accesses beyond EOF raise SIGBUS, which only the
        // owner of the run directory can cause.
        let p = unsafe { mmap(None, nz, prot, MapFlags::MAP_SHARED, file, 0) }
            .map_err(io::Error::from)?;
        Ok(SharedWords {
            ptr: p.cast(),
            words: len / 8,
            writable,
        })
    }

    /// The mapped words.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is `words * 8` bytes, page aligned (so aligned for
        // AtomicU64), valid until drop, and only accessed atomically. Atomic loads from a
        // read-only mapping are fine for lock-free, naturally aligned 8-byte atomics.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.words) }
    }
}

impl SharedWords {
    /// Length of the mapping in bytes.
    pub fn byte_len(&self) -> usize {
        self.words * 8
    }

    /// Copy `src` into the mapping at byte offset `at`. Panics if it does not fit (callers
    /// check their offsets against [`SharedWords::byte_len`] first).
    ///
    /// The bytes are shared with another process: callers publish them with a release
    /// store to one of the words after copying (the capture ring's write position), and
    /// the other side reads them only after an acquire load of that word.
    pub fn write_bytes(&self, at: usize, src: &[u8]) {
        let end = at.checked_add(src.len()).expect("offset overflow");
        assert!(
            end <= self.byte_len(),
            "write past the end of a shared mapping"
        );
        assert!(self.writable, "write to a read-only shared mapping");
        // SAFETY: `at..end` lies inside the mapping, which is writable (both checked
        // above); the source is
        // a separate Rust slice, so the ranges do not overlap. No Rust reference into the
        // mapped bytes exists (they are reached only through these copies and the atomic
        // words), so nothing observes a torn value as a typed object.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.ptr.as_ptr().cast::<u8>().add(at),
                src.len(),
            );
        }
    }

    /// Copy bytes at offset `at` of the mapping into `dst`. Panics if the range does not
    /// fit. What another process writes concurrently may be read torn: callers treat the
    /// bytes as untrusted input and only read ranges the writer has published.
    pub fn read_bytes(&self, at: usize, dst: &mut [u8]) {
        let end = at.checked_add(dst.len()).expect("offset overflow");
        assert!(
            end <= self.byte_len(),
            "read past the end of a shared mapping"
        );
        // SAFETY: `at..end` lies inside the mapping (checked above), which stays mapped
        // while `self` lives; `dst` is a distinct, exclusively borrowed Rust slice.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().cast::<u8>().add(at),
                dst.as_mut_ptr(),
                dst.len(),
            );
        }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region mapped in `map`; no reference into it can
        // outlive `self` (`words` borrows self).
        let _ = unsafe { munmap(self.ptr.cast(), self.words * 8) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_file_see_each_other() {
        let path = std::env::temp_dir().join(format!("vecbox-shm-{}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.set_len(4096).unwrap();
        let w = SharedWords::map(&f, true).unwrap();
        let r = SharedWords::map(&File::open(&path).unwrap(), false).unwrap();
        assert_eq!(w.words().len(), 512);
        w.words()[7].store(42, Ordering::Release);
        assert_eq!(r.words()[7].load(Ordering::Acquire), 42);
        w.write_bytes(4093, b"abc");
        let mut got = [0u8; 3];
        r.read_bytes(4093, &mut got);
        assert_eq!(&got, b"abc");
        assert!(std::panic::catch_unwind(|| r.read_bytes(4094, &mut [0u8; 3])).is_err());
        std::fs::remove_file(&path).unwrap();
        f.set_len(12).unwrap();
        assert!(SharedWords::map(&f, false).is_err());
    }
}
