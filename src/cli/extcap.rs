//! `vecbox extcap`: Wireshark's extcap protocol, so that Wireshark and tshark list the
//! link ends of running labs as capture interfaces and capture them directly.
//!
//! Wireshark runs every program in its extcap folder with `--extcap-interfaces`, then
//! `--extcap-dlts` / `--extcap-config` for an interface, and finally `--capture
//! --extcap-interface IF --fifo PATH [--extcap-capture-filter F]`, reading pcapng from
//! the fifo until it stops the program with SIGTERM. With only
//! `--extcap-capture-filter F` it asks whether F is valid (nothing printed: valid).
//! `vecbox extcap --install` puts a symbolic link named `vecbox-extcap` to this binary
//! into the folder `tshark -G folders` reports; invoked under that name, vecbox speaks
//! extcap. Interfaces are read from the running labs at each call, so labs started
//! later appear without installing again.

use std::path::{Path, PathBuf};

use super::{capture, capture_ends};
use crate::capture::stream;
use crate::capture::{Side, config::DEFAULT_SNAPLEN};

/// The name vecbox answers extcap calls under.
pub const LINK_NAME: &str = "vecbox-extcap";
/// Prefix of every interface vecbox lists.
pub const PREFIX: &str = "vecbox:";

pub const HELP: &str = "\
Usage: vecbox extcap --install [--global] | --uninstall [--global]
       vecbox extcap EXTCAP-OPTIONS (as Wireshark and tshark call it)

Makes the link ends of running labs capture interfaces of Wireshark and tshark.
--install links vecbox (as vecbox-extcap) into the personal extcap folder of the
Wireshark that `tshark -G folders` reports (with --global: the system-wide folder,
which needs root), and prints where. Then `tshark -D` lists, for every running lab,
  vecbox:LAB            every link of the lab, one end each
  vecbox:LAB/NODE:IF    one link end
and `tshark -i vecbox:quickstart/fw:inside -f icmp -c 5` captures pings. Labs started
later appear without installing again. In Wireshark's interface options, 'Capture
point' chooses pre or post impairment (or both) and 'Snap length' the bytes kept.

Wireshark 4.0 keeps personal extcap programs in ~/.config/wireshark/extcap, 4.2 and
later in ~/.local/lib/wireshark/extcap; running as root, Wireshark still reads the
personal folder of root's HOME. Only the user who started a lab (or root) can capture
it, as with `vecbox capture`.

Extcap options: --extcap-interfaces, --extcap-interface IF, --extcap-dlts,
--extcap-config, --capture, --fifo PATH, --extcap-capture-filter FILTER (alone: check
the filter; nothing printed means valid), --point pre|post|both, --snaplen N.";

#[derive(Debug, Default)]
struct Req {
    interfaces: bool,
    dlts: bool,
    config: bool,
    capture: bool,
    install: bool,
    uninstall: bool,
    global: bool,
    help: bool,
    iface: Option<String>,
    fifo: Option<String>,
    filter: Option<String>,
    point: Option<String>,
    snaplen: Option<String>,
}

impl Req {
    /// What the call asks, for the trace.
    fn kind(&self) -> &'static str {
        if self.capture {
            "capture"
        } else if self.interfaces {
            "interfaces"
        } else if self.dlts {
            "dlts"
        } else if self.config {
            "config"
        } else if self.filter.is_some() {
            "filter-check"
        } else {
            "other"
        }
    }
}

/// Options that take a value (`--opt VALUE` or `--opt=VALUE`).
const WITH_VALUE: &[&str] = &[
    "--extcap-interface",
    "--fifo",
    "--extcap-capture-filter",
    "--point",
    "--snaplen",
    "--extcap-version",
    "--extcap-control-in",
    "--extcap-control-out",
    "--extcap-reload-option",
];

fn parse(args: &[String]) -> Req {
    let mut r = Req::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || {
            if WITH_VALUE.contains(&key) {
                inline.clone().or_else(|| it.next().cloned())
            } else {
                None
            }
        };
        match key {
            "--extcap-interfaces" => r.interfaces = true,
            "--extcap-dlts" => r.dlts = true,
            "--extcap-config" => r.config = true,
            "--capture" => r.capture = true,
            "--install" => r.install = true,
            "--uninstall" => r.uninstall = true,
            "--global" => r.global = true,
            "--help" | "-h" => r.help = true,
            "--extcap-interface" => r.iface = value(),
            "--fifo" => r.fifo = value(),
            "--extcap-capture-filter" => r.filter = value(),
            "--point" => r.point = value(),
            "--snaplen" => r.snaplen = value(),
            // Versions, control pipes and anything newer Wireshark passes: ignored.
            _ => {
                let _ = value();
            }
        }
    }
    r
}

/// `true` when vecbox was started under the extcap link's name.
pub fn invoked_as_extcap(argv0: Option<&std::ffi::OsStr>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == LINK_NAME)
}

/// Run one extcap call; the process exit status. With `VECBOX_CAPTURE_TRACE` set, the
/// call's start and end go to that file (see [`crate::capture::trace`]).
pub fn run(args: &[String]) -> i32 {
    let r = parse(args);
    let kind = r.kind();
    crate::capture::trace(&format!("extcap {kind} start"));
    let code = answer(&r);
    crate::capture::trace(&format!("extcap {kind} end"));
    code
}

fn answer(r: &Req) -> i32 {
    if r.help {
        println!("{HELP}");
        return 0;
    }
    if r.install || r.uninstall {
        return install(r.global, r.uninstall);
    }
    if r.interfaces {
        print!("{}", interfaces());
        return 0;
    }
    if r.dlts {
        println!("dlt {{number=1}}{{name=EN10MB}}{{display=Ethernet}}");
        return 0;
    }
    if r.config {
        print!("{}", config());
        return 0;
    }
    if r.capture {
        return capture_to_fifo(r);
    }
    if let Some(f) = &r.filter {
        // Filter check: nothing printed means valid.
        if let Err(e) = capture::filter(Some(f)) {
            println!("{e}");
        }
        return 0;
    }
    eprintln!("vecbox: error: no extcap request given\n\n{HELP}");
    2
}

/// The `--extcap-interfaces` answer.
fn interfaces() -> String {
    let mut s = format!(
        "extcap {{version={}}}{{display=vecbox lab links}}\n",
        env!("CARGO_PKG_VERSION")
    );
    for lab in capture_ends::running_labs() {
        let Ok(plan) = capture_ends::plan(&lab) else {
            continue;
        };
        s.push_str(&format!(
            "interface {{value={PREFIX}{lab}}}{{display=vecbox lab {lab}: every link}}\n"
        ));
        for e in capture_ends::ends(&plan) {
            if matches!(e.how, capture_ends::How::No(_)) {
                continue;
            }
            s.push_str(&format!(
                "interface {{value={PREFIX}{lab}/{}}}{{display=vecbox lab {lab} {} ({})}}\n",
                e.end,
                e.end,
                e.link.replace(['{', '}'], "")
            ));
        }
    }
    s
}

/// The `--extcap-config` answer: the capture point and the snap length.
fn config() -> String {
    format!(
        "arg {{number=0}}{{call=--point}}{{display=Capture point}}{{type=selector}}{{tooltip=Before (pre) or after (post) the link's impairments}}\n\
         value {{arg=0}}{{value=post}}{{display=post: after impairments}}{{default=true}}\n\
         value {{arg=0}}{{value=pre}}{{display=pre: before impairments}}{{default=false}}\n\
         value {{arg=0}}{{value=both}}{{display=both (two interfaces per end)}}{{default=false}}\n\
         arg {{number=1}}{{call=--snaplen}}{{display=Snap length}}{{type=unsigned}}{{default={DEFAULT_SNAPLEN}}}{{range=1,{DEFAULT_SNAPLEN}}}{{tooltip=Bytes kept of each frame}}\n"
    )
}

fn capture_to_fifo(r: &Req) -> i32 {
    let fail = |e: String| {
        eprintln!("vecbox: error: {e}");
        1
    };
    let (Some(iface), Some(fifo)) = (&r.iface, &r.fifo) else {
        return fail("--capture needs --extcap-interface IF and --fifo PATH".into());
    };
    let Some(target) = iface.strip_prefix(PREFIX) else {
        return fail(format!(
            "{iface:?} is not a vecbox interface (they start with {PREFIX})"
        ));
    };
    let (lab, end) = match target.split_once('/') {
        Some((l, e)) => (l, vec![e.to_string()]),
        None => (target, Vec::new()),
    };
    let side: Side = match r.point.as_deref().unwrap_or("post").parse() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let snaplen = match r.snaplen.as_deref().map(str::parse::<u32>) {
        None => DEFAULT_SNAPLEN,
        Some(Ok(n)) if (1..=DEFAULT_SNAPLEN).contains(&n) => n,
        Some(_) => return fail(format!("--snaplen: 1 to {DEFAULT_SNAPLEN}")),
    };
    let filter = match capture::filter(r.filter.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let ends = match capture_ends::plan(lab).and_then(|plan| {
        capture_ends::select(&plan, &end)?
            .iter()
            .map(|e| capture_ends::to_end(&plan, e))
            .collect::<Result<Vec<_>, String>>()
    }) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let out = match std::fs::OpenOptions::new().write(true).open(fifo) {
        Ok(f) => f,
        Err(e) => return fail(format!("opening the fifo {fifo}: {e}")),
    };
    let opts = capture::options(filter, snaplen, side, None);
    let lab = lab.to_string();
    let mut watch = move || capture_ends::lab_gone(&lab);
    match stream::run(&ends, &opts, out, &mut watch) {
        Ok(s) => {
            tracing::info!(written = s.written, dropped = s.dropped, reason = %s.reason, "capture ended");
            0
        }
        Err(e) => fail(e.to_string()),
    }
}

/// Wireshark's extcap folders, from `tshark -G folders`: (personal, global).
fn folders() -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
    let out = std::process::Command::new("tshark")
        .args(["-G", "folders"])
        .output()
        .map_err(|e| {
            format!("running `tshark -G folders` to find Wireshark's extcap folder: {e} (install tshark)")
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| PathBuf::from(v.trim()))
        })
    };
    // Wireshark 4.0 prints only the global "Extcap path"; its personal folder is the
    // personal configuration's extcap/ (later versions print both).
    let personal = get("Personal Extcap path")
        .or_else(|| get("Personal configuration").map(|p| p.join("extcap")));
    let global = get("Global Extcap path").or_else(|| get("Extcap path"));
    Ok((personal, global))
}

fn install(global: bool, remove: bool) -> i32 {
    let fail = |e: String| {
        eprintln!("vecbox: error: {e}");
        1
    };
    let (personal, system) = match folders() {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let which = if global { "global" } else { "personal" };
    let Some(dir) = (if global { system } else { personal }) else {
        return fail(format!(
            "`tshark -G folders` named no {which} extcap folder"
        ));
    };
    let link = dir.join(LINK_NAME);
    if remove {
        return match std::fs::remove_file(&link) {
            Ok(()) => {
                println!("removed {}", link.display());
                0
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("{} was not installed", link.display());
                0
            }
            Err(e) => fail(format!("removing {}: {e}", link.display())),
        };
    }
    let exe = match std::env::current_exe().and_then(|p| p.canonicalize()) {
        Ok(p) => p,
        Err(e) => return fail(format!("finding the vecbox binary: {e}")),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("creating {}: {e}", dir.display()));
    }
    if std::fs::symlink_metadata(&link).is_ok()
        && let Err(e) = std::fs::remove_file(&link)
    {
        return fail(format!("replacing {}: {e}", link.display()));
    }
    if let Err(e) = std::os::unix::fs::symlink(&exe, &link) {
        return fail(format!("linking {}: {e}", link.display()));
    }
    println!(
        "installed {} -> {} ({which} extcap folder of Wireshark); `tshark -D` now lists vecbox:LAB/NODE:IF for running labs",
        link.display(),
        exe.display()
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn wireshark_calls_parse() {
        let r = parse(&args(&[
            "--capture",
            "--extcap-interface",
            "vecbox:lab/fw:inside",
            "--extcap-capture-filter",
            "icmp",
            "--fifo",
            "/tmp/x",
            "--extcap-control-in",
            "/tmp/c",
            "--point=both",
            "--extcap-version=4.0",
        ]));
        assert!(r.capture && !r.interfaces);
        assert_eq!(r.iface.as_deref(), Some("vecbox:lab/fw:inside"));
        assert_eq!(r.filter.as_deref(), Some("icmp"));
        assert_eq!(r.fifo.as_deref(), Some("/tmp/x"));
        assert_eq!(r.point.as_deref(), Some("both"));
        let r = parse(&args(&["--extcap-interfaces", "--extcap-version=4.0"]));
        assert!(r.interfaces);
        let r = parse(&args(&["--unknown-new-flag", "--extcap-dlts"]));
        assert!(r.dlts);
    }

    #[test]
    fn config_lines_are_well_formed() {
        let c = config();
        assert!(
            c.lines()
                .all(|l| l.starts_with("arg {") || l.starts_with("value {"))
        );
        assert_eq!(c.matches("{call=").count(), 2);
        assert!(interfaces().starts_with("extcap {version="));
        assert!(invoked_as_extcap(Some(std::ffi::OsStr::new(
            "/x/extcap/vecbox-extcap"
        ))));
        assert!(!invoked_as_extcap(Some(std::ffi::OsStr::new("vecbox"))));
    }
}
