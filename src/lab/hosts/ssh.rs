//! SSH mode: how a controller reaches a host with the OpenSSH client (`ssh`), one
//! multiplexed connection per host, and the controller's record of the labs it drives.
//!
//! Every command for a host runs as `ssh [ssh_options] -o ControlMaster=auto -o
//! ControlPath=DIR/%C -o ControlPersist=30 … [-p PORT] [-l USER] HOST 'COMMAND'`: the
//! first one opens the connection, the others reuse it. `ssh_options` come first so they
//! override vecbox's defaults (ssh takes the first value given for an option).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::PHost;
use crate::lab::plan;

/// Where `ssh:` points: `[user@]host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Parse `[user@]host[:port]` (an IPv6 address without a port is taken whole).
pub fn parse_target(s: &str) -> Option<Target> {
    let (user, rest) = match s.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, s),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') => match port.parse::<u16>() {
            Ok(p) if p != 0 => (h, Some(p)),
            _ => return None,
        },
        _ => (rest, None),
    };
    let bad = |x: &str| x.is_empty() || x.contains(char::is_whitespace) || x.starts_with('-');
    if bad(host) || user.is_some_and(bad) {
        return None;
    }
    Some(Target {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
    })
}

/// `true` for an `ssh_options:` entry: `Key=value` with a letters-only key.
pub fn option_ok(o: &str) -> bool {
    o.split_once('=').is_some_and(|(k, v)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphabetic()) && !v.contains('\n')
    })
}

/// `s` quoted for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Directory of the controller's state: records of the labs it drives and the ssh
/// control sockets (`$VECBOX_RUN_DIR/.hosts`; the dot keeps it out of the lab list).
pub fn controller_dir() -> PathBuf {
    plan::run_root().join(".hosts")
}

/// What a command that ran on a host said.
#[derive(Debug)]
pub struct Reply {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    /// ssh itself failed (exit status 255): the host was not reached.
    pub fn unreachable(&self) -> bool {
        self.code == 255
    }
}

/// One host as the controller reaches it.
#[derive(Clone, Debug)]
pub struct Remote {
    pub name: String,
    /// `ssh:` as written, for messages.
    pub ssh: String,
    target: Target,
    options: Vec<String>,
    control: PathBuf,
}

impl Remote {
    /// The host `h` reached with control sockets in `control`; `None` without `ssh:`.
    pub fn new(h: &PHost, control: &Path) -> Option<Remote> {
        let ssh = h.ssh.clone()?;
        Some(Remote {
            name: h.name.clone(),
            target: parse_target(&ssh)?,
            ssh,
            options: h.ssh_options.clone(),
            control: control.to_path_buf(),
        })
    }

    /// `ssh … HOST COMMAND` (COMMAND is run by the remote user's shell).
    pub fn command(&self, remote: &str) -> Command {
        let mut c = self.base();
        c.arg("--").arg(&self.target.host).arg(remote);
        c
    }

    /// `ssh` with every option, up to the destination.
    fn base(&self) -> Command {
        let mut c = Command::new("ssh");
        for o in &self.options {
            c.arg("-o").arg(o);
        }
        c.arg("-o").arg("BatchMode=yes");
        c.arg("-o").arg("ControlMaster=auto");
        c.arg("-o")
            .arg(format!("ControlPath={}/%C", self.control.display()));
        c.args(["-o", "ControlPersist=30", "-o", "ConnectTimeout=10"]);
        c.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]);
        if let Some(p) = self.target.port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &self.target.user {
            c.arg("-l").arg(u);
        }
        c
    }

    /// Run `remote` on the host with `input` on its standard input.
    pub fn run(&self, remote: &str, input: Option<&[u8]>) -> Reply {
        let _ = std::fs::create_dir_all(&self.control);
        let mut c = self.command(remote);
        c.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let child = c.spawn().and_then(|mut child| {
            if let (Some(mut w), Some(data)) = (child.stdin.take(), input) {
                // A remote that stops reading shows in its exit status and stderr.
                let _ = w.write_all(data);
            }
            child.wait_with_output()
        });
        match child {
            Ok(o) => Reply {
                ok: o.status.success(),
                code: o.status.code().unwrap_or(255),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).trim_end().to_string(),
            },
            Err(e) => Reply {
                ok: false,
                code: 255,
                stdout: String::new(),
                stderr: format!("running ssh: {e} (install the OpenSSH client)"),
            },
        }
    }

    /// Close the shared connection (nothing when none is open).
    pub fn close(&self) {
        let _ = self
            .base()
            .args(["-O", "exit", "--", &self.target.host])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What the controller keeps about a lab it brought up over SSH
/// (`$VECBOX_RUN_DIR/.hosts/LAB.json`): `status`, `exec` and `down` read it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub lab: String,
    /// The topology file as the controller read it.
    pub file: PathBuf,
    pub hosts: Vec<PHost>,
    /// Node name → host name.
    pub nodes: Vec<(String, String)>,
}

impl Record {
    pub fn path(lab: &str) -> PathBuf {
        controller_dir().join(format!("{lab}.json"))
    }

    pub fn load(lab: &str) -> Option<Record> {
        let text = std::fs::read_to_string(Self::path(lab)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(controller_dir())?;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(Self::path(&self.lab), text)
    }

    /// Remove the record, and the controller directory once nothing else is in it.
    pub fn remove(lab: &str) {
        let _ = std::fs::remove_file(Self::path(lab));
        let _ = std::fs::remove_dir(control_sockets());
        let _ = std::fs::remove_dir(controller_dir());
    }

    pub fn remotes(&self) -> Vec<Remote> {
        let ctl = control_sockets();
        self.hosts
            .iter()
            .filter_map(|h| Remote::new(h, &ctl))
            .collect()
    }
}

/// Directory of the ssh control sockets.
pub fn control_sockets() -> PathBuf {
    controller_dir().join("ctl")
}
