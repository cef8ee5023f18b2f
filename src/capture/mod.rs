//! Capturing the frames a port sees, to pcapng.
//!
//! - [`pcapng`]: the file format (section, interface, enhanced packet and statistics
//!   blocks), written as a stream that readers can follow live.
//! - [`ring`]: the bounded ring a guest copies captured frames into and the capturing
//!   process drains; a full ring drops the copies and counts them, it never waits.
//! - [`config`]: what a capture asks of one guest (ports, points, snap length, filter),
//!   carried in the ring's mapping.
//! - [`tap`]: a port's capture points, called from the datapath; nothing runs there when
//!   no capture is on beyond a check of an `Option`.
//! - [`compile`]: libpcap filter expressions (`icmp`, `tcp port 80`) compiled by libpcap
//!   into the classic BPF that [`crate::filter`] runs.
//! - [`remote`]: the capturing side of a guest capture (the ring, the console request).
//! - [`host`]: interfaces without a vecbox guest, through a packet socket.
//! - [`stream`]: many sources into one pcapng stream, with statistics and end reasons.
//!
//! A port has four capture points: `rx-pre` (as received from the link), `rx-post`
//! (handed to the function, after an receive-side impairment), `tx-pre` (from the
//! function, before a transmit-side impairment) and `tx-post` (as sent onto the link).
//! Without an impairment stage `pre` and `post` see the same frames with the same
//! packet ids.

pub mod compile;
pub mod config;
pub mod host;
pub mod pcapng;
pub mod remote;
pub mod ring;
pub mod stream;
pub mod tap;

/// Where on a port a frame was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// As received from the link.
    RxPre = 0,
    /// As handed to the network function.
    RxPost = 1,
    /// As the network function sent it.
    TxPre = 2,
    /// As sent onto the link.
    TxPost = 3,
}

impl Point {
    pub const ALL: [Point; 4] = [Point::RxPre, Point::RxPost, Point::TxPre, Point::TxPost];

    /// This point's bit in a point mask.
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// `true` for the receive side (frames coming from the link).
    pub const fn is_rx(self) -> bool {
        matches!(self, Point::RxPre | Point::RxPost)
    }

    /// `true` for the points after an impairment stage.
    pub const fn is_post(self) -> bool {
        matches!(self, Point::RxPost | Point::TxPost)
    }

    /// Decode a point number (as stored in ring records).
    pub fn from_u8(v: u8) -> Option<Point> {
        Point::ALL.get(usize::from(v)).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Point::RxPre => "rx-pre",
            Point::RxPost => "rx-post",
            Point::TxPre => "tx-pre",
            Point::TxPost => "tx-post",
        }
    }
}

/// Point masks.
pub const RX_POINTS: u8 = Point::RxPre.bit() | Point::RxPost.bit();
pub const TX_POINTS: u8 = Point::TxPre.bit() | Point::TxPost.bit();
pub const PRE_POINTS: u8 = Point::RxPre.bit() | Point::TxPre.bit();
pub const POST_POINTS: u8 = Point::RxPost.bit() | Point::TxPost.bit();

/// Which side of an impairment a capture looks at (`--point`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Side {
    Pre,
    /// After impairments: what the function receives and what goes onto the link.
    #[default]
    Post,
    Both,
}

impl Side {
    /// The point mask of this choice, both directions.
    pub fn points(self) -> u8 {
        match self {
            Side::Pre => PRE_POINTS,
            Side::Post => POST_POINTS,
            Side::Both => PRE_POINTS | POST_POINTS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Pre => "pre",
            Side::Post => "post",
            Side::Both => "both",
        }
    }
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Side, String> {
        match s {
            "pre" => Ok(Side::Pre),
            "post" => Ok(Side::Post),
            "both" => Ok(Side::Both),
            _ => Err(format!(
                "capture point {s:?}: expected pre (before impairments), post (after) or both"
            )),
        }
    }
}

/// Why an impairment dropped a frame (the stage's own reasons).
pub use crate::impair::Dropped as DropCause;

/// What an impairment stage did to a frame, shown as a packet comment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Note {
    #[default]
    None,
    Dropped(DropCause),
    /// The stage sent the frame twice.
    Duplicate,
    /// The stage flipped this bit (counted from the first bit of the frame).
    Corrupt(u32),
}

impl Note {
    /// (kind, argument) as stored in ring records.
    pub fn encode(self) -> (u8, u32) {
        match self {
            Note::None => (0, 0),
            Note::Dropped(DropCause::Loss) => (1, 0),
            Note::Dropped(DropCause::QueueFull) => (2, 0),
            Note::Dropped(DropCause::LinkDown) => (3, 0),
            Note::Duplicate => (4, 0),
            Note::Corrupt(bit) => (5, bit),
            Note::Dropped(DropCause::BufferFull) => (6, 0),
        }
    }

    /// Inverse of [`Note::encode`]; unknown kinds read as no note.
    pub fn decode(kind: u8, arg: u32) -> Note {
        match kind {
            1 => Note::Dropped(DropCause::Loss),
            2 => Note::Dropped(DropCause::QueueFull),
            3 => Note::Dropped(DropCause::LinkDown),
            4 => Note::Duplicate,
            5 => Note::Corrupt(arg),
            6 => Note::Dropped(DropCause::BufferFull),
            _ => Note::None,
        }
    }

    /// The packet comment (`None` when there is nothing to say).
    pub fn comment(self) -> Option<String> {
        match self {
            Note::None => None,
            Note::Dropped(c) => Some(format!("dropped: {}", c.name())),
            Note::Duplicate => Some("duplicate".into()),
            Note::Corrupt(bit) => Some(format!("corrupt bit {bit}")),
        }
    }

    /// The note for a stage's verdict.
    pub fn of(v: crate::impair::Verdict) -> Note {
        use crate::impair::Verdict;
        match v {
            Verdict::Dropped(c) => Note::Dropped(c),
            Verdict::Duplicated => Note::Duplicate,
            Verdict::Corrupted { bit } => Note::Corrupt(bit),
        }
    }

    /// The note to keep of two about one frame: a drop says most, then a corruption,
    /// then a duplication; the first of equals stays.
    pub fn or(self, other: Note) -> Note {
        let rank = |n: Note| match n {
            Note::None => 0,
            Note::Duplicate => 1,
            Note::Corrupt(_) => 2,
            Note::Dropped(_) => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Wall-clock time in nanoseconds since the Unix epoch (pcapng timestamps).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map(|t| (t.tv_sec() as u64).wrapping_mul(1_000_000_000) + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// The environment variable naming a file that capture milestones are appended to.
pub const TRACE_ENV: &str = "VECBOX_CAPTURE_TRACE";

/// Append `<unix ns> <pid> <event>` to the file `VECBOX_CAPTURE_TRACE` names, if any:
/// where the time goes between `tshark -i vecbox:...` and its first packet (each
/// extcap call, the capture's set-up, its first frame). Nothing happens without it.
pub fn trace(event: &str) {
    use std::io::Write;
    static FILE: std::sync::OnceLock<Option<std::sync::Mutex<std::fs::File>>> =
        std::sync::OnceLock::new();
    let file = FILE.get_or_init(|| {
        let path = std::env::var_os(TRACE_ENV)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(std::sync::Mutex::new)
    });
    if let Some(f) = file {
        let line = format!("{} {} {event}\n", now_ns(), std::process::id());
        let _ = f
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_read_as_comments() {
        for n in [
            Note::None,
            Note::Dropped(DropCause::Loss),
            Note::Dropped(DropCause::QueueFull),
            Note::Dropped(DropCause::LinkDown),
            Note::Dropped(DropCause::BufferFull),
            Note::Duplicate,
            Note::Corrupt(117),
        ] {
            let (k, a) = n.encode();
            assert_eq!(Note::decode(k, a), n);
        }
        assert_eq!(Note::Corrupt(117).comment().unwrap(), "corrupt bit 117");
        assert_eq!(
            Note::Dropped(DropCause::QueueFull).comment().unwrap(),
            "dropped: queue_full"
        );
        assert_eq!(Note::decode(99, 1), Note::None);
    }

    #[test]
    fn points_and_sides() {
        assert_eq!(Side::Both.points(), 0b1111);
        assert_eq!(Side::Post.points(), POST_POINTS);
        assert!(Point::RxPre.is_rx() && !Point::TxPost.is_rx());
        assert!(Point::TxPost.is_post() && !Point::RxPre.is_post());
        assert_eq!(Point::from_u8(3), Some(Point::TxPost));
        assert_eq!(Point::from_u8(4), None);
        assert!("middle".parse::<Side>().unwrap_err().contains("pre"));
        assert!(now_ns() > 1_600_000_000_000_000_000);
    }
}
