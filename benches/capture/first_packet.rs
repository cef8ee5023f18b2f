//! Part 4 of the capture benchmark: where the time to tshark's first packet goes.
//!
//! The extcap writes its milestones (each call's start and end, the capture's set-up,
//! its first frame written into the fifo) to the file `VECBOX_CAPTURE_TRACE` names;
//! together with the moment tshark was started and the moment it printed the packet,
//! they split the time into tshark's own part and vecbox's.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Start `cmd`, wait for its first line of output: (seconds taken, start and end as
/// Unix nanoseconds).
pub fn first_line(mut cmd: Command) -> (f64, u64, u64) {
    let (t0, w0) = (Instant::now(), unix_ns());
    let mut c = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let (dt, w1) = (t0.elapsed().as_secs_f64(), unix_ns());
    let _ = c.kill();
    let _ = c.wait();
    assert!(!line.is_empty(), "no packet");
    (dt, w0, w1)
}

/// One `tshark -i vecbox:...` run split up, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Split {
    /// tshark's start until it first runs the extcap.
    pub tshark_start: f64,
    /// The extcap's answers to tshark's questions (interfaces, dlts, config, filter
    /// check), summed.
    pub queries: f64,
    /// tshark's time between and after those calls until it starts the capture.
    pub tshark_between: f64,
    /// `--capture` started until the guest capture runs (lab lookup, control socket).
    pub capture_setup: f64,
    /// Capture running until the first frame is in the fifo (includes waiting for the
    /// next ping, sent every 10 ms).
    pub first_frame: f64,
    /// The frame in the fifo until tshark printed it.
    pub tshark_after: f64,
}

impl Split {
    /// What vecbox's own code takes.
    pub fn vecbox(&self) -> f64 {
        self.queries + self.capture_setup + self.first_frame
    }

    /// What tshark takes around it.
    pub fn tshark(&self) -> f64 {
        self.tshark_start + self.tshark_between + self.tshark_after
    }
}

/// Split the run that started at `w0` and printed at `w1` (Unix ns) with the trace.
pub fn split(trace: &str, w0: u64, w1: u64) -> Option<Split> {
    let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
    let mut starts: Vec<(u64, String, String)> = Vec::new();
    let (mut queries, mut first_call) = (0.0, None);
    let (mut cap_start, mut set_up, mut frame) = (None, None, None);
    for l in trace.lines() {
        let mut f = l.splitn(3, ' ');
        let (Some(t), Some(pid), Some(ev)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(t) = t.parse::<u64>() else { continue };
        if t < w0 || t > w1 {
            continue;
        }
        first_call.get_or_insert(t);
        if let Some(kind) = ev
            .strip_prefix("extcap ")
            .and_then(|e| e.strip_suffix(" start"))
        {
            if kind == "capture" {
                cap_start = Some(t);
            }
            starts.push((t, pid.to_string(), kind.to_string()));
        } else if let Some(kind) = ev
            .strip_prefix("extcap ")
            .and_then(|e| e.strip_suffix(" end"))
        {
            if let Some(i) = starts.iter().position(|s| s.1 == pid && s.2 == kind) {
                let (s, ..) = starts.remove(i);
                queries += ms(s, t);
            }
        } else if ev == "capture set up" {
            set_up = Some(t);
        } else if ev == "first frame written" {
            frame.get_or_insert(t);
        }
    }
    let (first_call, cap_start, set_up, frame) = (first_call?, cap_start?, set_up?, frame?);
    Some(Split {
        tshark_start: ms(w0, first_call),
        queries,
        tshark_between: ms(first_call, cap_start) - queries,
        capture_setup: ms(cap_start, set_up),
        first_frame: ms(set_up, frame),
        tshark_after: ms(frame, w1),
    })
}

/// The median of each part over `runs`.
pub fn median_split(runs: &[Split]) -> Split {
    let m = |f: fn(&Split) -> f64| super::median(runs.iter().map(f).collect());
    Split {
        tshark_start: m(|s| s.tshark_start),
        queries: m(|s| s.queries),
        tshark_between: m(|s| s.tshark_between),
        capture_setup: m(|s| s.capture_setup),
        first_frame: m(|s| s.first_frame),
        tshark_after: m(|s| s.tshark_after),
    }
}
