//! The guest command line: `FUNCTION [key=value ...] vecN:SPEC ...`, in UML's style.

use std::path::PathBuf;

use crate::nf::NfError;
use crate::transport::{OpenError, Spec, SpecError};

/// Guest-level keys (everything else of the form `key=value` goes to the function).
pub const GUEST_KEYS: &[&str] = &["umid", "cpu", "stats", "metrics", "seccomp", "busy_poll"];

/// Longest busy-poll window (`busy_poll=`), µs.
pub const MAX_BUSY_POLL_US: u32 = 10_000;

/// A parsed guest command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestArgs {
    /// Network function name.
    pub function: String,
    /// Instance name (`umid=`), default `FUNCTION-PID`.
    pub umid: String,
    /// CPU to pin the guest to (`cpu=`).
    pub cpu: Option<usize>,
    /// Write the exit report as JSON to this file (`stats=`).
    pub stats: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`metrics=`).
    pub metrics: Option<std::net::SocketAddr>,
    /// What the seccomp filter does with a call not on the allowlist (`seccomp=`).
    pub seccomp: crate::sys::seccomp::Mode,
    /// `busy_poll=` µs: after frames arrived, keep polling the ports without sleeping
    /// for this long before blocking (0, the default: always block when idle).
    pub busy_poll_us: u32,
    /// Interfaces, ordered by unit number; port i of the function is `specs[i]`.
    pub specs: Vec<Spec>,
    /// Options for the function (`aging=300`, ...).
    pub nf_options: Vec<(String, String)>,
}

/// Everything that can stop a guest.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("argument {arg:?}: {why}")]
    Arg { arg: String, why: String },
    #[error("{0}")]
    Nf(#[from] NfError),
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error("cpu={0}: cannot pin to that CPU (see `nproc`)")]
    Cpu(usize),
    #[error("dropping privileges failed: {0}")]
    Sandbox(#[source] std::io::Error),
    #[error(
        "installing the seccomp filter (seccomp={0}) failed: {1}; the kernel needs \
         CONFIG_SECCOMP_FILTER (seccomp=off runs without it, for debugging only)"
    )]
    Seccomp(&'static str, #[source] std::io::Error),
    #[error("{0} failed: {1}")]
    Setup(&'static str, #[source] std::io::Error),
    #[error("{0}")]
    RunDir(#[from] crate::console::RunDirError),
    #[error("{0}")]
    Metrics(#[from] crate::metrics::http::HttpError),
    #[error("{what} {path}: {source}")]
    Control {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl GuestError {
    /// Process exit status: 2 for bad input on the command line, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            GuestError::Spec(_) | GuestError::Arg { .. } | GuestError::Nf(_) => 2,
            _ => 1,
        }
    }
}

fn is_spec(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix("vec") else {
        return false;
    };
    match (rest.find(':'), rest.find('=')) {
        (Some(c), Some(e)) => c < e,
        (Some(_), None) => true,
        _ => rest.chars().next().is_some_and(|c| c.is_ascii_digit()),
    }
}

fn valid_umid(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

impl GuestArgs {
    /// Parse `args` (everything after the function name).
    pub fn parse(function: &str, args: &[String]) -> Result<GuestArgs, GuestError> {
        let mut out = GuestArgs {
            function: function.to_string(),
            umid: format!("{function}-{}", std::process::id()),
            cpu: None,
            stats: None,
            metrics: None,
            seccomp: Default::default(),
            busy_poll_us: 0,
            specs: Vec::new(),
            nf_options: Vec::new(),
        };
        let bad = |arg: &str, why: &str| GuestError::Arg {
            arg: arg.to_string(),
            why: why.to_string(),
        };
        let mut seen = Vec::new();
        for arg in args {
            if is_spec(arg) {
                let spec: Spec = arg.parse()?;
                if out.specs.iter().any(|s| s.unit == spec.unit) {
                    return Err(bad(
                        arg,
                        &format!(
                            "vec{} is given twice; each interface needs its own number",
                            spec.unit
                        ),
                    ));
                }
                out.specs.push(spec);
                continue;
            }
            let Some((k, v)) = arg.split_once('=') else {
                return Err(bad(
                    arg,
                    "expected key=value (umid=NAME, cpu=N, stats=FILE, function options) or an interface vecN:transport=...",
                ));
            };
            if seen.contains(&k) {
                return Err(bad(arg, &format!("{k} is given twice")));
            }
            seen.push(k);
            match k {
                "umid" => {
                    if !valid_umid(v) {
                        return Err(bad(
                            arg,
                            "umid must be 1 to 63 characters of A-Z a-z 0-9 . _ - (not starting with '.')",
                        ));
                    }
                    out.umid = v.to_string();
                }
                "cpu" => {
                    out.cpu = Some(
                        v.parse()
                            .map_err(|_| bad(arg, "cpu must be a CPU number, e.g. cpu=1"))?,
                    );
                }
                "stats" => {
                    if v.is_empty() {
                        return Err(bad(arg, "stats needs a file name, e.g. stats=/tmp/x1.json"));
                    }
                    out.stats = Some(PathBuf::from(v));
                }
                "metrics" => {
                    out.metrics = Some(v.parse().map_err(|_| {
                        bad(
                            arg,
                            "metrics must be an address and port, e.g. metrics=127.0.0.1:9464",
                        )
                    })?);
                }
                "seccomp" => {
                    out.seccomp = v.parse().map_err(|()| {
                        bad(
                            arg,
                            "seccomp must be kill (default: a call outside the allowlist kills the guest), log (allow it and log it in the kernel log) or off (no filter, for debugging)",
                        )
                    })?;
                }
                "busy_poll" => {
                    out.busy_poll_us = v
                        .parse()
                        .ok()
                        .filter(|us| *us <= MAX_BUSY_POLL_US)
                        .ok_or_else(|| {
                            bad(
                                arg,
                                "busy_poll must be microseconds 0..=10000 to keep polling after traffic, e.g. busy_poll=500 (0: sleep as soon as the ports are idle)",
                            )
                        })?;
                }
                _ => out.nf_options.push((k.to_string(), v.to_string())),
            }
        }
        if out.specs.is_empty() {
            return Err(bad(
                "",
                "no interfaces given; add at least one vecN:transport=..., e.g. vec0:transport=raw,ifname=veth0",
            ));
        }
        out.specs.sort_by_key(|s| s.unit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn uml_style_command_line() {
        let a = GuestArgs::parse(
            "xconnect",
            &args(&[
                "umid=x1",
                "cpu=1",
                "vec1:transport=tap,ifname=t0,gro=1",
                "vec0:transport=raw,ifname=p0",
            ]),
        )
        .unwrap();
        assert_eq!(a.umid, "x1");
        assert_eq!(a.cpu, Some(1));
        assert_eq!(
            a.specs.iter().map(|s| s.unit).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(a.nf_options.is_empty());
        assert_eq!(a.seccomp, crate::sys::seccomp::Mode::Kill);
        assert_eq!(a.busy_poll_us, 0, "blocking when idle is the default");
        let b = GuestArgs::parse("xconnect", &args(&["busy_poll=250", "vec0:transport=tap"]));
        assert_eq!(b.unwrap().busy_poll_us, 250);
        let l = GuestArgs::parse("xconnect", &args(&["seccomp=log", "vec0:transport=tap"]));
        assert_eq!(l.unwrap().seccomp, crate::sys::seccomp::Mode::Log);
    }

    #[test]
    fn bad_spec_is_exit_2_naming_the_key() {
        let e = GuestArgs::parse(
            "xconnect",
            &args(&["vec0:transport=raw,ifname=a,depth=abc"]),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("depth"), "{e}");
    }

    #[test]
    fn other_errors() {
        for (a, needle) in [
            (vec!["cpu=x", "vec0:transport=tap"], "cpu"),
            (
                vec!["metrics=9464", "vec0:transport=tap"],
                "metrics=127.0.0.1:9464",
            ),
            (vec!["umid=../x", "vec0:transport=tap"], "umid"),
            (vec!["seccomp=strict", "vec0:transport=tap"], "kill"),
            (vec!["busy_poll=10001", "vec0:transport=tap"], "0..=10000"),
            (vec!["busy_poll=-1", "vec0:transport=tap"], "busy_poll=500"),
            (vec!["bogus", "vec0:transport=tap"], "key=value"),
            (vec!["umid=a"], "no interfaces"),
            (vec!["vec0:transport=tap", "vec0:transport=tap"], "twice"),
            (vec!["aging=1", "aging=2", "vec0:transport=tap"], "twice"),
        ] {
            let e = GuestArgs::parse("bridge", &args(&a)).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(needle), "{a:?}: {e}");
        }
        let ok = GuestArgs::parse("bridge", &args(&["aging=5", "vec0:transport=tap"])).unwrap();
        assert_eq!(ok.nf_options, vec![("aging".to_string(), "5".to_string())]);
    }
}
