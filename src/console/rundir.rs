//! A guest's run directory, laid out as UML lays out its own: `~/.uml/UMID/` holding
//! `pid` (the guest's pid and a newline), `mconsole` (the control socket) and, for
//! vecbox, `metrics` (the shared counter region). Mode 0700, so only the owner can talk
//! to the console or read the counters; removed when the guest ends.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors creating a run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error(
        "umid {umid:?} is in use by the running process {pid} ({dir}); choose another umid= or stop that guest"
    )]
    InUse {
        umid: String,
        pid: i32,
        dir: PathBuf,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("HOME is not set: cannot find ~/.uml for the control socket")]
    NoHome,
}

/// `~/.uml`, where UML and vecbox keep their run directories.
pub fn uml_dir() -> Result<PathBuf, RunDirError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".uml"))
        .ok_or(RunDirError::NoHome)
}

/// `/tmp/uml`, the second place `uml_mconsole` looks; used when `~/.uml` cannot be.
pub const TMP_UML_DIR: &str = "/tmp/uml";

/// Create the run directory for `umid` in `~/.uml`, or in `/tmp/uml` when `~/.uml` is
/// not usable (no HOME, or HOME belongs to another user, as for a service account
/// started with a foreign environment). Both are where `uml_mconsole` looks.
pub fn create_default(umid: &str) -> Result<RunDir, RunDirError> {
    let home = uml_dir().and_then(|d| RunDir::create(&d, umid));
    match home {
        Err(RunDirError::NoHome) | Err(RunDirError::Io { .. }) => {
            let first = home.err().map(|e| e.to_string()).unwrap_or_default();
            let tmp = Path::new(TMP_UML_DIR);
            if !tmp.exists() {
                // Shared by all users, like /tmp itself.
                let _ = std::fs::DirBuilder::new().mode(0o1777).create(tmp);
                let _ = std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o1777));
            }
            let d = RunDir::create(tmp, umid)?;
            tracing::info!(dir = %d.path.display(), "~/.uml not usable ({first}); run directory in /tmp/uml");
            Ok(d)
        }
        other => other,
    }
}

/// The run directory of a running guest or UML kernel `umid`: `~/.uml/UMID`, then
/// `/tmp/uml/UMID` (where [`create_default`] may have put it). For the lab supervisor:
/// its metrics region is `find(umid)?.join("metrics")`.
pub fn find(umid: &str) -> Option<PathBuf> {
    let mut c = Vec::new();
    if let Ok(d) = uml_dir() {
        c.push(d.join(umid));
    }
    c.push(Path::new(TMP_UML_DIR).join(umid));
    c.into_iter().find(|d| d.join("pid").is_file())
}

/// Pid recorded in `dir/pid`, if the file holds a number.
pub fn read_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `true` if a process `pid` exists (EPERM counts: it exists, owned by someone else).
pub fn pid_alive(pid: i32) -> bool {
    pid > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

/// An existing run directory, removed on drop.
#[derive(Debug)]
pub struct RunDir {
    pub umid: String,
    pub path: PathBuf,
}

impl RunDir {
    /// Create `base/umid` (mode 0700) with a `pid` file. A directory left by a dead
    /// process is reused; one whose pid is alive is an error naming the umid.
    pub fn create(base: &Path, umid: &str) -> Result<RunDir, RunDirError> {
        let io_err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| RunDirError::Io { what, path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(base)
            .map_err(io_err("creating", base))?;
        let path = base.join(umid);
        if path.exists() {
            if let Some(pid) = read_pid(&path)
                && pid_alive(pid)
                && pid != std::process::id() as i32
            {
                return Err(RunDirError::InUse {
                    umid: umid.to_string(),
                    pid,
                    dir: path,
                });
            }
            tracing::info!(dir = %path.display(), "removing stale run directory of a dead guest");
            std::fs::remove_dir_all(&path).map_err(io_err("removing stale", &path))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_err("creating", &path))?;
        // The mode given to mkdir is cut by the umask; make it exactly 0700.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("setting mode 0700 on", &path))?;
        let dir = RunDir {
            umid: umid.to_string(),
            path,
        };
        let pid_path = dir.path.join("pid");
        let mut f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&pid_path)
            .map_err(io_err("creating", &pid_path))?;
        writeln!(f, "{}", std::process::id()).map_err(io_err("writing", &pid_path))?;
        Ok(dir)
    }

    /// Path of the control socket.
    pub fn socket(&self) -> PathBuf {
        self.path.join("mconsole")
    }

    /// Path of the shared counter region.
    pub fn metrics(&self) -> PathBuf {
        self.path.join("metrics")
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(std::process::id() as i32) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_stale_reuse_and_live_conflict() {
        let base = std::env::temp_dir().join(format!("vecbox-rundir-{}", std::process::id()));
        let d = RunDir::create(&base, "g1").unwrap();
        let meta = std::fs::metadata(&d.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(read_pid(&d.path), Some(std::process::id() as i32));
        let p = d.path.clone();
        drop(d);
        assert!(!p.exists(), "removed on drop");

        // A stale directory (dead pid) is reused.
        std::fs::create_dir_all(base.join("g2")).unwrap();
        std::fs::write(base.join("g2/pid"), "999999999\n").unwrap();
        std::fs::write(base.join("g2/mconsole"), "").unwrap();
        let d = RunDir::create(&base, "g2").unwrap();
        assert!(!d.socket().exists());
        drop(d);

        // `find` looks in ~/.uml and /tmp/uml only; a directory elsewhere is not found.
        assert!(find("vecbox-no-such-umid").is_none());

        // A live one (pid 1 exists) is an error naming the umid.
        std::fs::create_dir_all(base.join("g3")).unwrap();
        std::fs::write(base.join("g3/pid"), "1\n").unwrap();
        let e = RunDir::create(&base, "g3").unwrap_err().to_string();
        assert!(e.contains("\"g3\"") && e.contains("process 1"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
