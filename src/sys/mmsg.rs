//! Batched datagram I/O: `recvmmsg`/`sendmmsg` over preallocated header rings.
//!
//! A ring owns `depth` `mmsghdr` entries and their iovecs, allocated once and reused
//! for every call. Callers hand in plain byte slices; the ring rewrites the iovec
//! pointers for the slots it uses right before the system call (a few stores per
//! slot) and resets the in/out fields (`msg_namelen`, `msg_controllen`, `msg_flags`)
//! every time, so nothing goes stale between calls.
//!
//! `vec=0` uses [`RecvRing::recv_one`] / [`SendRing::send_one`]: one frame per call.

use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::SockAddr;

use super::{cvt, cvt_size, retry_eintr};

/// What the kernel reported for one received datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes written into the slot.
    pub len: usize,
    /// The datagram was longer than the slot and was cut (`MSG_TRUNC`).
    pub truncated: bool,
    /// UDP GRO: the kernel coalesced datagrams of this size (the last may be shorter)
    /// into this one buffer; 0 when it holds a single datagram.
    pub segment: u16,
}

/// Room for one control message carrying a 32-bit value (`CMSG_SPACE(4)` on 64-bit
/// Linux is 24 bytes; a u64 array keeps it aligned).
type Control = [u64; 4];

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: `mmsghdr` is a plain C struct of integers and raw pointers; the all-zero
    // bit pattern is a valid value (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

/// Receive side of a vector transport: `depth` reusable `mmsghdr`s, one iovec each.
pub struct RecvRing {
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    /// Per-slot control buffers, when UDP GRO segment sizes are wanted.
    ctrl: Option<Box<[Control]>>,
}

impl RecvRing {
    /// A ring able to receive up to `depth` datagrams per call.
    pub fn new(depth: usize) -> Self {
        let depth = depth.max(1);
        RecvRing {
            hdrs: (0..depth).map(|_| zeroed_mmsghdr()).collect(),
            iovs: (0..depth).map(|_| empty_iovec()).collect(),
            ctrl: None,
        }
    }

    /// Also read the `UDP_GRO` control message (coalesced segment size) of each
    /// datagram into [`RecvMeta::segment`]; for sockets with `UDP_GRO` enabled.
    pub fn want_gro_segments(&mut self) {
        self.ctrl = Some((0..self.hdrs.len()).map(|_| [0u64; 4]).collect());
    }

    /// Number of slots.
    pub fn depth(&self) -> usize {
        self.hdrs.len()
    }

    /// Receive up to `n` datagrams with one `recvmmsg`. Datagram `i` lands in
    /// `mem[slot(i)]`; its length and truncation flag go to `meta[i]`.
    ///
    /// Returns the number of datagrams received; `Ok(0)` when nothing is queued
    /// (`EAGAIN`). Fails with `InvalidInput` if a slot range lies outside `mem`.
    pub fn recv(
        &mut self,
        fd: BorrowedFd<'_>,
        mem: &mut [u8],
        n: usize,
        slot: impl Fn(usize) -> Range<usize>,
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let n = n.min(self.hdrs.len()).min(meta.len());
        if n == 0 {
            return Ok(0);
        }
        let base = mem.as_mut_ptr();
        for i in 0..n {
            let r = slot(i);
            if r.start > r.end || r.end > mem.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "receive slot outside the buffer pool",
                ));
            }
            self.iovs[i] = libc::iovec {
                iov_base: base.wrapping_add(r.start).cast(),
                iov_len: r.len(),
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = std::ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            match self.ctrl.as_mut() {
                Some(c) => {
                    h.msg_control = c[i].as_mut_ptr().cast();
                    h.msg_controllen = std::mem::size_of::<Control>();
                }
                None => {
                    h.msg_control = std::ptr::null_mut();
                    h.msg_controllen = 0;
                }
            }
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let vlen = libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX);
        let got = retry_eintr(|| {
            // SAFETY: `hdrs[..n]` are initialised above; each points to exactly one iovec in
            // `self.iovs`, whose base/len lie inside `mem` (bounds checked above). `mem` is
            // borrowed mutably for the whole call, so no Rust reference aliases the bytes the
            // kernel writes. No name or control buffers are passed. `vlen <= hdrs.len()`.
            let r = unsafe {
                libc::recvmmsg(
                    fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    vlen,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            cvt(r)
        });
        match got {
            Ok(got) => {
                let got = usize::try_from(got).unwrap_or(0).min(n);
                let with_ctrl = self.ctrl.is_some();
                for (m, h) in meta.iter_mut().zip(self.hdrs.iter()).take(got) {
                    *m = RecvMeta {
                        len: h.msg_len as usize,
                        truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                        segment: if with_ctrl {
                            gro_segment(&h.msg_hdr)
                        } else {
                            0
                        },
                    };
                }
                Ok(got)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || refused(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Receive one datagram with `recvmsg` (the `vec=0` path). `Ok(None)` when nothing
    /// is queued.
    pub fn recv_one(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<RecvMeta>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `msghdr` is a plain C struct; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let r = retry_eintr(|| {
            msg.msg_flags = 0;
            // SAFETY: `msg` points to one iovec covering `buf`, which is mutably borrowed for
            // the call; no name or control buffer is given.
            let r = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            cvt_size(r)
        });
        match r {
            Ok(len) => Ok(Some(RecvMeta {
                len,
                truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
                segment: 0,
            })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || refused(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The `UDP_GRO` segment size in a received message's control data, or 0.
fn gro_segment(h: &libc::msghdr) -> u16 {
    if h.msg_control.is_null() || h.msg_controllen == 0 {
        return 0;
    }
    // SAFETY: `h` was filled by recvmmsg: `msg_control` points to a live buffer of the
    // ring and `msg_controllen` is the length the kernel wrote; CMSG_FIRSTHDR/NXTHDR
    // stay inside it and return null at the end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(h) };
    while !c.is_null() {
        // SAFETY: `c` is non-null and points to a complete cmsghdr inside the buffer.
        let hdr = unsafe { &*c };
        if hdr.cmsg_level == libc::SOL_UDP && hdr.cmsg_type == libc::UDP_GRO {
            // SAFETY: a UDP_GRO message carries one int; CMSG_DATA points at it inside
            // the buffer; read_unaligned copes with any alignment.
            let v = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>()) };
            return u16::try_from(v).unwrap_or(0);
        }
        // SAFETY: as above; NXTHDR returns null past the end of the control data.
        c = unsafe { libc::CMSG_NXTHDR(h, c) };
    }
    0
}

/// Where an item sits in a UDP segmentation (`UDP_SEGMENT`) group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// A datagram of its own.
    Single,
    /// First of a group sent as one super-datagram that the kernel cuts every
    /// `gso_size` bytes (every member but the last must be exactly that long).
    Head { gso_size: u16 },
    /// Next member of the group opened by the last `Head`.
    Cont,
}

/// What one `sendmmsg` took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Items the kernel took (members of a group count one each).
    pub items: usize,
    /// Items offered in that call.
    pub offered: usize,
    /// Items of the first message (what to drop if the kernel refuses it).
    pub first: usize,
}

/// A connected UDP socket reports an ICMP port unreachable for an earlier datagram as
/// `ECONNREFUSED` on its next call: nothing was received, the next call goes on.
fn refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECONNREFUSED)
}

/// Transmit side of a vector transport: `depth` reusable `mmsghdr`s with two iovecs
/// each (an encapsulation/vnet prefix and the frame), and an optional destination
/// address for unconnected sockets.
pub struct SendRing {
    hdrs: Box<[libc::mmsghdr]>,
    /// Flat iovec pool: a message uses two per item.
    iovs: Box<[libc::iovec]>,
    /// Per-message control buffers (UDP_SEGMENT).
    ctrl: Box<[Control]>,
    /// Items per message of the last call.
    items: Box<[u16]>,
    dest: Option<SockAddr>,
}

impl SendRing {
    /// A ring able to send up to `depth` datagrams per call, to `dest` if given, with
    /// room for `items` items per call (more than `depth` when groups are used).
    pub fn new(depth: usize, dest: Option<SockAddr>) -> Self {
        Self::with_items(depth, depth, dest)
    }

    /// As [`SendRing::new`], with room for `items` items per call.
    pub fn with_items(depth: usize, items: usize, dest: Option<SockAddr>) -> Self {
        let depth = depth.max(1);
        let items = items.max(depth);
        SendRing {
            hdrs: (0..depth).map(|_| zeroed_mmsghdr()).collect(),
            iovs: (0..2 * items).map(|_| empty_iovec()).collect(),
            ctrl: (0..depth).map(|_| [0u64; 4]).collect(),
            items: vec![0; depth].into_boxed_slice(),
            dest,
        }
    }

    /// Number of slots.
    pub fn depth(&self) -> usize {
        self.hdrs.len()
    }

    fn fill(iov: &mut [libc::iovec], prefix: &[u8], frame: &[u8]) -> usize {
        let mut k = 0;
        for part in [prefix, frame] {
            if !part.is_empty() {
                iov[k] = libc::iovec {
                    iov_base: part.as_ptr().cast_mut().cast(),
                    iov_len: part.len(),
                };
                k += 1;
            }
        }
        k
    }

    /// Write a UDP_SEGMENT control message for `gso_size` into slot `n`'s buffer.
    fn set_segment(&mut self, n: usize, gso_size: u16) {
        let buf = &mut self.ctrl[n];
        let h = &mut self.hdrs[n].msg_hdr;
        h.msg_control = buf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        h.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
        // SAFETY: `h.msg_control` points to this slot's buffer (32 bytes, 8-aligned) and
        // `msg_controllen` (24) fits in it, so CMSG_FIRSTHDR returns a pointer to the
        // buffer's start with room for the header and two data bytes, written here only.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(h);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), gso_size);
        }
    }

    /// Send up to `depth` messages with one `sendmmsg`; each message is
    /// `prefix ++ frame`. Returns how many the kernel took: fewer than offered means
    /// the rest must be retried later (UML's partial-send rule); `Ok(0)` on
    /// `EAGAIN`/`ENOBUFS`.
    pub fn send<'a>(
        &mut self,
        fd: BorrowedFd<'_>,
        msgs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> io::Result<usize> {
        self.send_parts(fd, msgs.into_iter().map(|(p, f)| (p, f, Part::Single)))
            .map(|s| s.items)
    }

    /// As [`SendRing::send`], with items grouped into UDP segmentation super-datagrams
    /// ([`Part`]). At most `depth` messages go per call; a group is never split.
    pub fn send_parts<'a>(
        &mut self,
        fd: BorrowedFd<'_>,
        msgs: impl IntoIterator<Item = (&'a [u8], &'a [u8], Part)>,
    ) -> io::Result<Sent> {
        let (name, namelen) = match &self.dest {
            Some(a) => (a.as_ptr().cast_mut().cast(), a.len()),
            None => (std::ptr::null_mut(), 0),
        };
        let depth = self.hdrs.len();
        let mut n = 0; // messages
        let mut k = 0; // iovecs used
        let mut offered = 0;
        for (prefix, frame, part) in msgs {
            if k + 2 > self.iovs.len() {
                break;
            }
            match part {
                Part::Cont if n > 0 => {
                    let used = Self::fill(&mut self.iovs[k..], prefix, frame);
                    self.hdrs[n - 1].msg_hdr.msg_iovlen += used;
                    self.items[n - 1] += 1;
                    k += used;
                }
                _ => {
                    if n == depth {
                        break;
                    }
                    let used = Self::fill(&mut self.iovs[k..], prefix, frame);
                    let h = &mut self.hdrs[n].msg_hdr;
                    h.msg_name = name;
                    h.msg_namelen = namelen;
                    h.msg_iov = std::ptr::null_mut();
                    h.msg_iovlen = used;
                    h.msg_control = std::ptr::null_mut();
                    h.msg_controllen = 0;
                    h.msg_flags = 0;
                    self.hdrs[n].msg_len = 0;
                    self.items[n] = 1;
                    if let Part::Head { gso_size } = part {
                        self.set_segment(n, gso_size);
                    }
                    k += used;
                    n += 1;
                }
            }
            offered += 1;
        }
        if n == 0 {
            return Ok(Sent::default());
        }
        // Point each message at its run of the flat iovec pool (now that it is filled).
        let mut at = 0;
        for h in self.hdrs[..n].iter_mut() {
            h.msg_hdr.msg_iov = self.iovs[at..].as_mut_ptr();
            at += h.msg_hdr.msg_iovlen;
        }
        let vlen = libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX);
        let r = retry_eintr(|| {
            // SAFETY: `hdrs[..n]` were filled above; their iovecs are consecutive runs of
            // `self.iovs` pointing into slices borrowed for `'a`, which outlive this call,
            // and the kernel only reads them. `msg_name` points to `self.dest` and
            // `msg_control` (when set) to this ring's control buffers, both alive and
            // unmodified during the call. `vlen <= depth`.
            let r = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    vlen,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            cvt(r)
        });
        let first = usize::from(self.items[0]);
        match r {
            Ok(sent) => {
                let sent = usize::try_from(sent).unwrap_or(0).min(n);
                let items = self.items[..sent].iter().map(|&i| usize::from(i)).sum();
                Ok(Sent {
                    items,
                    offered,
                    first,
                })
            }
            Err(e) if super::is_would_block(&e) => Ok(Sent {
                items: 0,
                offered,
                first,
            }),
            Err(e) => Err(e),
        }
    }

    /// Send one message with `sendmsg` (the `vec=0` path). `Ok(false)` on
    /// `EAGAIN`/`ENOBUFS`.
    pub fn send_one(
        &mut self,
        fd: BorrowedFd<'_>,
        prefix: &[u8],
        frame: &[u8],
    ) -> io::Result<bool> {
        let mut iov = [empty_iovec(), empty_iovec()];
        let k = Self::fill(&mut iov[..], prefix, frame);
        // SAFETY: `msghdr` is a plain C struct; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        if let Some(a) = &self.dest {
            msg.msg_name = a.as_ptr().cast_mut().cast();
            msg.msg_namelen = a.len();
        }
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = k;
        let r = retry_eintr(|| {
            // SAFETY: `msg` references `iov` (local, alive) whose entries point into the
            // borrowed `prefix`/`frame` slices, and optionally `self.dest`; all outlive the call.
            let r = unsafe {
                libc::sendmsg(
                    fd.as_raw_fd(),
                    &msg,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            cvt_size(r)
        });
        match r {
            Ok(_) => Ok(true),
            Err(e) if super::is_would_block(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    fn pair() -> (UnixDatagram, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn batch_round_trip_over_socketpair() {
        let (a, b) = pair();
        let mut tx = SendRing::new(8, None);
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
        let hdr = [0xeeu8; 3];
        let sent = tx
            .send(a.as_fd(), frames.iter().map(|f| (&hdr[..], &f[..])))
            .unwrap();
        assert_eq!(sent, 5);

        let mut rx = RecvRing::new(8);
        let mut mem = vec![0u8; 8 * 64];
        let mut meta = [RecvMeta::default(); 8];
        let got = rx
            .recv(b.as_fd(), &mut mem, 8, |i| i * 64..i * 64 + 64, &mut meta)
            .unwrap();
        assert_eq!(got, 5);
        for (i, m) in meta.iter().take(5).enumerate() {
            assert_eq!(m.len, 3 + 10 + i);
            assert!(!m.truncated);
            let slot = &mem[i * 64..i * 64 + m.len];
            assert_eq!(&slot[..3], &hdr);
            assert!(slot[3..].iter().all(|&x| x == i as u8));
        }
        // Nothing left: EAGAIN maps to 0.
        let got = rx
            .recv(b.as_fd(), &mut mem, 8, |i| i * 64..i * 64 + 64, &mut meta)
            .unwrap();
        assert_eq!(got, 0);
    }

    #[test]
    fn truncation_is_reported() {
        let (a, b) = pair();
        a.send(&[7u8; 100]).unwrap();
        let mut rx = RecvRing::new(4);
        let mut mem = vec![0u8; 64];
        let mut meta = [RecvMeta::default(); 4];
        let got = rx
            .recv(b.as_fd(), &mut mem, 4, |_| 0..32, &mut meta)
            .unwrap();
        assert_eq!(got, 1);
        assert!(meta[0].truncated);
        assert_eq!(meta[0].len, 32);
    }

    #[test]
    fn slot_outside_pool_is_rejected() {
        let (_a, b) = pair();
        let mut rx = RecvRing::new(4);
        let mut mem = vec![0u8; 64];
        let mut meta = [RecvMeta::default(); 4];
        let err = rx
            .recv(b.as_fd(), &mut mem, 1, |_| 32..96, &mut meta)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn single_frame_path() {
        let (a, b) = pair();
        let mut tx = SendRing::new(1, None);
        assert!(tx.send_one(a.as_fd(), &[1, 2], &[3, 4, 5]).unwrap());
        let mut rx = RecvRing::new(1);
        let mut buf = [0u8; 16];
        let m = rx.recv_one(b.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..m.len], &[1, 2, 3, 4, 5]);
        assert!(rx.recv_one(b.as_fd(), &mut buf).unwrap().is_none());
    }

    #[test]
    fn partial_send_when_receiver_full() {
        // A datagram socketpair holds a bounded number of messages: sendmmsg must report a
        // partial count instead of failing, and later EAGAIN as 0.
        let (a, _b) = pair();
        let mut tx = SendRing::new(64, None);
        let frame = vec![0u8; 60_000];
        let mut total = 0;
        let mut saw_partial = false;
        for _ in 0..50 {
            let n = tx
                .send(a.as_fd(), (0..64).map(|_| (&[][..], &frame[..])))
                .unwrap();
            if n < 64 {
                saw_partial = true;
            }
            total += n;
            if n == 0 {
                break;
            }
        }
        assert!(saw_partial);
        assert!(total > 0);
    }
}
