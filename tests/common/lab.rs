//! Running `vecbox up/down/status/exec` on topology files written by the tests, and
//! comparing the host's namespaces, interfaces, taps, /run state, control directories
//! and processes before and after.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{VECBOX, require_root, require_tool};

static N: AtomicU32 = AtomicU32::new(0);

/// The repository's `topologies/` directory.
pub fn topologies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies")
}

/// A unique lab name for this test (`vbt<pid>l<nnn>`, zero-padded so that no name is
/// part of another), caught by scripts/leakcheck.
pub fn lab_name() -> String {
    format!(
        "vbt{}l{:03}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Everything on the host that could belong to lab `tag`.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub netns: Vec<String>,
    /// Root-namespace interfaces marked by vecbox or named with the tag.
    pub links: Vec<String>,
    pub run: Vec<String>,
    pub umids: Vec<String>,
    pub procs: Vec<String>,
}

fn lines(cmd: &[&str]) -> Vec<String> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Snapshot of what exists for lab `tag`.
pub fn snapshot(tag: &str) -> Snapshot {
    let mut netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    netns.retain(|n| n.contains(tag));
    netns.sort();
    // `ip -o -d link` in the root namespace, with aliases: an interface marked
    // `vecbox:TAG` here would be a leak out of the lab's namespaces.
    let mut links: Vec<String> = lines(&["ip", "-o", "-d", "link", "show"])
        .into_iter()
        .filter(|l| l.contains(tag))
        .collect();
    links.sort();
    let mut run: Vec<String> = std::fs::read_dir("/run/vecbox")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    run.retain(|n| n.contains(tag));
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut umids: Vec<String> = std::fs::read_dir(Path::new(&home).join(".uml"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    umids.retain(|n| n.contains(tag));
    let mut procs: Vec<String> = lines(&["ps", "-eo", "pid,args"])
        .into_iter()
        .filter(|l| l.contains(tag) && !l.contains("cargo") && !l.contains(" ps "))
        .collect();
    procs.retain(|l| !l.contains("target/debug/deps/"));
    Snapshot {
        netns,
        links,
        run,
        umids,
        procs,
    }
}

/// Assert the host is as `before` for lab `tag` (waiting briefly for the kernel to
/// finish removing namespaces).
pub fn assert_clean(tag: &str, before: &Snapshot) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = snapshot(tag);
        if &now == before {
            return;
        }
        if Instant::now() > deadline {
            panic!("lab {tag} left something behind:\nbefore: {before:#?}\nafter:  {now:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run vecbox with `args`.
pub fn vecbox(args: &[&str]) -> Output {
    Command::new(VECBOX).args(args).output().unwrap()
}

/// `vecbox ...` that must succeed; returns stdout.
pub fn vecbox_ok(args: &[&str]) -> String {
    let out = vecbox(args);
    assert!(
        out.status.success(),
        "vecbox {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A lab under test: its file; torn down (with `vecbox down`) on drop.
pub struct TestLab {
    pub name: String,
    pub file: PathBuf,
    pub dir: PathBuf,
}

impl TestLab {
    /// Write `yaml` (with `@LAB@` replaced by the lab name and `@TOPO@` by the
    /// repository's topologies directory) to a temporary file.
    pub fn new(yaml: &str) -> TestLab {
        require_root();
        require_tool("ip");
        let name = lab_name();
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lab.yaml");
        let text = yaml
            .replace("@LAB@", &name)
            .replace("@TOPO@", &topologies().display().to_string());
        std::fs::write(&file, text).unwrap();
        TestLab { name, file, dir }
    }

    /// A repository topology, renamed to a unique lab name.
    pub fn from_repo(file: &str) -> TestLab {
        let text = std::fs::read_to_string(topologies().join(file)).unwrap();
        let first = text
            .lines()
            .find(|l| l.starts_with("name:"))
            .unwrap()
            .to_string();
        let lab = TestLab::new(&text.replacen(&first, "name: @LAB@", 1));
        // Relative paths (uml/init.sh) are relative to the file: keep them working.
        let _ = std::os::unix::fs::symlink(topologies().join("uml"), lab.dir.join("uml"));
        lab
    }

    pub fn up(&self) {
        vecbox_ok(&["up", self.file.to_str().unwrap(), "--detach"]);
    }

    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut a = vec!["exec", &self.name, node, "--"];
        a.extend_from_slice(cmd);
        vecbox(&a)
    }

    /// Ping `ip` from `node` (a few tries); true if a reply came back.
    pub fn ping(&self, node: &str, ip: &str) -> bool {
        for _ in 0..3 {
            if self
                .exec(node, &["ping", "-c", "1", "-W", "2", ip])
                .status
                .success()
            {
                return true;
            }
        }
        false
    }

    /// `vecbox status LAB --json` → the lab's state object.
    pub fn status(&self) -> serde_json::Value {
        let out = vecbox_ok(&["status", &self.name, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }

    /// The node's state entry (waits for the first state file).
    pub fn node_state(&self, node: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let st = self.status();
            if let Some(n) = st["state"]["nodes"]
                .as_array()
                .and_then(|a| a.iter().find(|n| n["name"] == node))
            {
                return n.clone();
            }
            assert!(Instant::now() < deadline, "no state for {node}: {st}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn down(&self) -> String {
        vecbox_ok(&["down", "--lab", &self.name])
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = vecbox(&["down", "--lab", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Wait for a child started by a test (a server that exits by itself), killing it if it
/// is still running after a moment.
pub fn reap(mut c: std::process::Child) -> Option<std::process::ExitStatus> {
    for _ in 0..20 {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    c.wait().ok()
}
