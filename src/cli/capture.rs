//! `vecbox capture`: link ends of a running lab (or ports of a guest started by hand)
//! into one pcapng stream.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;

use super::capture_ends;
use crate::capture::config::DEFAULT_SNAPLEN;
use crate::capture::stream::{self, End, GuestPort, Options, Source};
use crate::capture::{Side, compile};

pub const HELP: &str = "\
Captures link ends of a running lab into one pcapng stream: an interface per end
(named LAB/NODE:IF, described with its link type and peer), nanosecond timestamps,
the direction of every frame, and a statistics block per interface every second and at
the end. Without NODE:IF, one end of every link of the lab is captured.

Where frames are taken: an end on a vecbox guest (or facing one) is captured inside
that guest's datapath, for every link type (veth, tap, gre and l2tpv3 as the inner
Ethernet frames, bess, fd); the guest copies what passes the filter into a bounded ring
(--ring-size) and never waits: when this reader falls behind, copies are dropped and
counted (statistics blocks, vecbox_capture_dropped_total). Links with no guest
(host-host veths) are captured with a packet socket in the host's namespace (root).

Points: pre is before a link's impairments, post after (what the function receives and
what goes onto the link); both writes two interfaces per end, LAB/NODE:IF:pre and
:post, and the two copies of a frame carry the same packet id. An impairment's verdict
is a packet comment: dropped: loss, dropped: queue_full, duplicate, corrupt bit N.

Output: -w FILE, or -w - for a pipe (flushed after every batch). Without -w, a pipe
or file on stdout gets the stream. Ends with -c, --duration, Ctrl-C (SIGINT/SIGTERM;
the file is complete), the lab going down, or the reader of the pipe going away;
the reason is printed and written into the last statistics blocks.

Only the user who started the lab (or root) can capture it: captures go through the
guests' run directories (~/.uml/UMID, mode 0700). There is no network listener.

Examples:
  vecbox capture quickstart fw:inside -w inside.pcapng
  vecbox capture quickstart fw:inside fw:outside -f icmp -c 10 -w - | tshark -r -
  vecbox capture quickstart -w - | wireshark -k -i -
  ssh labhost vecbox capture quickstart fw:inside -w - | wireshark -k -i -
  vecbox capture --guest x1 vec0 vec1 -f 'tcp port 5201' -w x1.pcapng
See also `vecbox extcap --help` (Wireshark/tshark interfaces) and docs/capture.md.";

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// LAB then NODE:IF link ends (none: one end of every link); with --guest, vecN ports.
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
    /// Capture ports of a guest started by hand: its umid or control socket path.
    #[arg(long, value_name = "UMID")]
    guest: Option<String>,
    /// Capture filter in libpcap syntax (e.g. `icmp`, `tcp port 80 and host 10.0.0.2`).
    #[arg(short = 'f', long, value_name = "FILTER")]
    filter: Option<String>,
    /// Write pcapng to FILE, or `-` for stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<String>,
    /// Stop after COUNT frames.
    #[arg(short = 'c', long, value_name = "COUNT")]
    count: Option<u64>,
    /// Stop after S seconds.
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Bytes kept of each frame.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SNAPLEN,
          value_parser = clap::value_parser!(u32).range(1..=(DEFAULT_SNAPLEN as i64)))]
    snaplen: u32,
    /// Before (pre) or after (post) the link's impairments, or both.
    #[arg(long, value_name = "pre|post|both", default_value = "post")]
    point: Side,
    /// Ring per guest, in MiB (the guest drops copies when it is full); default: 64 MiB
    /// shared out over the captured guests, at least 8 each.
    #[arg(long, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    ring_size: Option<u64>,
    /// No messages on stderr besides errors.
    #[arg(short, long)]
    quiet: bool,
}

/// The ends of a hand-started guest: `vecN` (or `N`) ports.
fn guest_ends(umid: &str, ports: &[String]) -> Result<Vec<End>, String> {
    let socket = crate::console::client::resolve(umid).ok_or_else(|| {
        format!(
            "no control socket for guest {umid:?} (looked for ~/.uml/{umid}/mconsole, /tmp/uml/{umid}/mconsole and the path itself)"
        )
    })?;
    if ports.is_empty() {
        return Err(format!(
            "name the ports to capture: vecbox capture --guest {umid} vec0 [vec1...]"
        ));
    }
    ports
        .iter()
        .map(|p| {
            let unit: u32 = p
                .strip_prefix("vec")
                .unwrap_or(p)
                .parse()
                .map_err(|_| format!("{p:?} is not a port name like vec0"))?;
            Ok(End {
                name: format!("{umid}:vec{unit}"),
                description: format!("port vec{unit} of guest {umid}"),
                source: Source::Guest {
                    socket: socket.clone(),
                    ports: vec![GuestPort::whole(unit)],
                },
            })
        })
        .collect()
}

/// Compile `-f`, or nothing for an empty expression.
pub fn filter(expr: Option<&str>) -> Result<Option<(String, crate::filter::Program)>, String> {
    match expr.map(str::trim).filter(|e| !e.is_empty()) {
        None => Ok(None),
        Some(e) => compile::compile(e)
            .map(|p| Some((e.to_string(), p)))
            .map_err(|e| e.to_string()),
    }
}

/// Options shared by `vecbox capture` and the extcap.
pub fn options(
    filter: Option<(String, crate::filter::Program)>,
    snaplen: u32,
    side: Side,
    ring_mib: Option<u64>,
) -> Options {
    Options {
        filter,
        snaplen,
        side,
        count: None,
        duration: None,
        ring_bytes: ring_mib.map(|m| (m as usize) << 20),
        stats_every: Duration::from_secs(1),
        announce: false,
    }
}

/// Ends named on the command line, or every link of the lab; and the lab, if any.
fn resolve(a: &CaptureArgs) -> Result<(Vec<End>, Option<String>), String> {
    if let Some(umid) = &a.guest {
        return Ok((guest_ends(umid, &a.targets)?, None));
    }
    let Some((lab, wanted)) = a.targets.split_first() else {
        let labs = capture_ends::running_labs();
        return Err(format!(
            "name a lab (labs up: {}) and link ends NODE:IF, or --guest UMID vecN",
            if labs.is_empty() {
                "none".to_string()
            } else {
                labs.join(", ")
            }
        ));
    };
    let plan = capture_ends::plan(lab)?;
    let chosen = capture_ends::select(&plan, wanted)?;
    let ends = chosen
        .iter()
        .map(|e| capture_ends::to_end(&plan, e))
        .collect::<Result<Vec<End>, String>>()?;
    Ok((ends, Some(lab.clone())))
}

/// Standard output as a plain file (a duplicate of fd 1): each batch the pcapng writer
/// hands over goes out in one `write`, not cut at newlines as `Stdout` would.
fn raw_stdout() -> std::io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    Ok(std::fs::File::from(
        std::io::stdout().as_fd().try_clone_to_owned()?,
    ))
}

pub fn run(a: &CaptureArgs) -> i32 {
    let fail = |code: i32, e: String| {
        eprintln!("vecbox: error: {e}");
        code
    };
    let mut opts = match filter(a.filter.as_deref()) {
        Ok(f) => options(f, a.snaplen, a.point, a.ring_size),
        Err(e) => return fail(2, e),
    };
    opts.count = a.count;
    opts.announce = !a.quiet;
    opts.duration = match a.duration {
        Some(s) if !(s > 0.0 && s.is_finite()) => {
            return fail(
                2,
                format!("--duration {s}: give a positive number of seconds"),
            );
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    // No BufWriter: the pcapng writer buffers a batch itself and writes it in one go.
    let out: Box<dyn Write> = match a.write.as_deref() {
        Some("-") => match raw_stdout() {
            Ok(f) => Box::new(f),
            Err(e) => return fail(1, format!("standard output: {e}")),
        },
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => return fail(1, format!("creating {path}: {e}")),
        },
        None if std::io::stdout().is_terminal() => {
            return fail(
                2,
                "no output: give -w FILE, or -w - to stream pcapng into a pipe (| tshark -r -, | wireshark -k -i -)".into(),
            );
        }
        None => match raw_stdout() {
            Ok(f) => Box::new(f),
            Err(e) => return fail(1, format!("standard output: {e}")),
        },
    };
    let (ends, lab) = match resolve(a) {
        Ok(x) => x,
        Err(e) => return fail(1, e),
    };
    let mut watch = move || lab.as_deref().and_then(capture_ends::lab_gone);
    match stream::run(&ends, &opts, out, &mut watch) {
        Ok(s) => {
            if !a.quiet {
                eprintln!(
                    "vecbox capture: {} frames written, {} dropped; {}",
                    s.written, s.dropped, s.reason
                );
            }
            0
        }
        Err(e) => fail(1, e.to_string()),
    }
}
