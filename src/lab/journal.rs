//! The journal: one JSON line per object, appended *before* the object is created, in
//! `/run/vecbox/LAB/journal`. `down` reads it to remove exactly what the lab made — also
//! when the topology file is gone, and after vecbox and every guest were killed.
//!
//! Namespaces get two lines: `netns` before creation and `netns_made` after, so that a
//! name that was already taken by someone else (creation failed) is never removed.
//! Processes are identified by pid *and* start time, so a reused pid is never signalled.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One journal line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Entry {
    /// A supervisor (the `vecbox up` process) took over the lab.
    Run { pid: i32, start: u64, file: PathBuf },
    /// About to create namespace `name`.
    Netns { name: String },
    /// Namespace `name` exists and is ours.
    NetnsMade { name: String },
    /// Started process `pid` for node `node`.
    Proc { node: String, pid: i32, start: u64 },
    /// A directory outside the run directory to remove (`~/.uml/UMID`).
    Dir { path: PathBuf },
    /// Namespace `name` was removed by an apply (a later `netns` line may make it again).
    NetnsGone { name: String },
    /// Generation `gen` of the lab began: `up` (1) or an `apply`, by process `pid`.
    Apply {
        generation: u64,
        pid: i32,
        start: u64,
    },
    /// About to make step `n` of generation `gen`.
    Step {
        generation: u64,
        n: usize,
        what: String,
    },
    /// Generation `gen` is complete: the lab is what its plan says.
    Done { generation: u64 },
}

/// The lab's generation (the last one begun), and whether it completed.
pub fn generation(entries: &[Entry]) -> (u64, bool) {
    let mut current = 0;
    let mut done = true;
    for e in entries {
        match e {
            Entry::Apply { generation: g, .. } => {
                current = *g;
                done = false;
            }
            Entry::Done { generation: g } if *g == current => done = true,
            _ => {}
        }
    }
    (current, done)
}

/// Namespaces the journal says the lab made and has not removed since (in order).
pub fn live_namespaces(entries: &[Entry]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for e in entries {
        match e {
            Entry::NetnsMade { name } if !v.contains(name) => v.push(name.clone()),
            Entry::NetnsGone { name } => v.retain(|n| n != name),
            _ => {}
        }
    }
    v
}

/// The journal of one lab.
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// Journal file of run directory `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("journal")
}

impl Journal {
    /// Open (create) the journal in run directory `dir` for appending.
    pub fn open(dir: &Path) -> io::Result<Journal> {
        let path = path_in(dir);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Journal { file, path })
    }

    /// Append `e` (one `write`, so a crash leaves at most a truncated last line).
    pub fn record(&mut self, e: &Entry) -> io::Result<()> {
        let mut line = serde_json::to_string(e).map_err(io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read every entry of the journal in `dir` (a truncated or unreadable line is skipped).
pub fn read(dir: &Path) -> io::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path_in(dir))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Start time of process `pid` (clock ticks since boot, field 22 of `/proc/PID/stat`),
/// or `None` if it does not exist.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `true` if `pid` is alive, not a zombie, and started at `start`.
pub fn same_process(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut f = stat[close + 2..].split_whitespace();
    let state = f.next().unwrap_or("Z");
    state != "Z" && state != "X" && f.nth(18).and_then(|s| s.parse().ok()) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncated_tail() {
        let dir = std::env::temp_dir().join(format!("vbjournal{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut j = Journal::open(&dir).unwrap();
        let e = Entry::Proc {
            node: "a".into(),
            pid: 7,
            start: 9,
        };
        j.record(&e).unwrap();
        j.record(&Entry::NetnsMade { name: "x.a".into() }).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.path())
            .unwrap()
            .write_all(b"{\"op\":\"netns\",\"na")
            .unwrap();
        let got = read(&dir).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], e);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn generations_and_namespaces() {
        let e = vec![
            Entry::Apply {
                generation: 1,
                pid: 1,
                start: 1,
            },
            Entry::NetnsMade { name: "l.a".into() },
            Entry::NetnsMade { name: "l.b".into() },
            Entry::Done { generation: 1 },
            Entry::Apply {
                generation: 2,
                pid: 2,
                start: 2,
            },
            Entry::NetnsGone { name: "l.a".into() },
        ];
        assert_eq!(generation(&e), (2, false));
        assert_eq!(generation(&e[..4]), (1, true));
        assert_eq!(generation(&[]), (0, true));
        assert_eq!(live_namespaces(&e), ["l.b"]);
    }

    #[test]
    fn own_start_time() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        assert!(same_process(me, t));
        assert!(!same_process(me, t + 1));
        assert!(!same_process(0, t));
    }
}
