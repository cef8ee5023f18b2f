//! Command lines of guest and UML nodes, and starting them inside their namespace with
//! their tap descriptors, console/log file and a session of their own.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::LabError;
use super::plan::PNode;
use super::topology::NodeKind;

/// Log file of a node (guest stderr, UML console).
pub fn log_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.log"))
}

/// `~/.uml/UMID` (the control socket directory of guests and UML kernels).
pub fn umid_dir(umid: &str) -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".uml").join(umid)
}

/// The arguments of `vecbox guest` for a guest node of the lab in run directory `dir`.
pub fn guest_args(dir: &Path, node: &PNode) -> Vec<String> {
    let mut a = vec![
        "guest".to_string(),
        node.kind.as_str().to_string(),
        format!("umid={}", node.umid),
        format!(
            "stats={}",
            dir.join(format!("{}.stats.json", node.name)).display()
        ),
    ];
    if let Some(cpu) = node.cpu {
        a.push(format!("cpu={cpu}"));
    }
    a.extend(function_options(dir, node));
    a.extend(node.ifaces.iter().filter_map(|f| f.spec.clone()));
    a
}

/// The function's `key=value` options of a guest node: its file (`config=`/`rules=`)
/// and the node's `options` (also what the console's `options` command takes).
pub fn function_options(dir: &Path, node: &PNode) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(f) = &node.config {
        a.push(format!("{}={}", f.key, guest_file(dir, node).display()));
    }
    a.extend(node.options.iter().map(|(k, v)| format!("{k}={v}")));
    a
}

/// The router/firewall file written for `node`.
pub fn guest_file(dir: &Path, node: &PNode) -> PathBuf {
    dir.join(format!(
        "{}.{}.yaml",
        node.name,
        node.config.as_ref().map_or("config", |c| c.key.as_str())
    ))
}

/// The copy-on-write file of a UML node booted from an image.
pub fn cow_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.cow"))
}

/// The kernel arguments of a UML node of the lab in run directory `dir`.
pub fn uml_args(dir: &Path, node: &PNode) -> Vec<String> {
    let Some(u) = &node.uml else {
        return Vec::new();
    };
    let mut a = vec![format!("umid={}", node.umid), format!("mem={}", u.mem)];
    if let Some(root) = &u.root {
        a.extend([
            "root=/dev/root".to_string(),
            "rootfstype=hostfs".to_string(),
            format!("rootflags={}", root.display()),
            // The host's own root is never writable from a guest.
            if root == Path::new("/") { "ro" } else { "rw" }.to_string(),
        ]);
    } else if let Some(image) = &u.image {
        a.push(format!(
            "ubd0={},{}",
            cow_path(dir, &node.name).display(),
            image.display()
        ));
        a.push("root=/dev/ubda".to_string());
    }
    if let Some(init) = &u.init {
        a.push(format!("init={init}"));
    }
    a.extend(["con=null".to_string(), "con0=fd:0,fd:1".to_string()]);
    a.extend(node.ifaces.iter().filter_map(|f| f.spec.clone()));
    a.extend(u.args.iter().cloned());
    a
}

/// Start the process of `node` of the lab in run directory `dir` inside its namespace.
/// `taps` are the host-side tap descriptors of its tap links, keyed by the descriptor
/// number the node expects.
pub fn start(dir: &Path, node: &PNode, taps: &[(i32, &File)]) -> Result<Child, LabError> {
    let what = || format!("starting node `{}` ({})", node.name, node.kind);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(dir, &node.name))
        .map_err(|e| LabError::object(what(), e))?;
    let log2 = log.try_clone().map_err(|e| LabError::object(what(), e))?;
    let mut cmd = if node.kind == NodeKind::Uml {
        let kernel = node
            .uml
            .as_ref()
            .map(|u| u.kernel.clone())
            .unwrap_or_default();
        let mut c = Command::new(kernel);
        c.args(uml_args(dir, node));
        c
    } else {
        let exe = std::env::current_exe().map_err(|e| LabError::object(what(), e))?;
        let mut c = Command::new(exe);
        c.args(guest_args(dir, node));
        c
    };
    cmd.stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .current_dir(dir);
    let ns = File::open(crate::netlink::NETNS_DIR.to_string() + "/" + &node.netns)
        .map_err(|e| LabError::object(format!("opening namespace {}", node.netns), e))?;
    crate::sys::process::enter_netns(&mut cmd, OwnedFd::from(ns));
    let mut fds = Vec::new();
    for (num, f) in taps {
        let fd = f
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| LabError::object(what(), e))?;
        fds.push((fd, *num));
    }
    if !fds.is_empty() {
        crate::sys::process::pass_fds(&mut cmd, fds).map_err(|e| LabError::object(what(), e))?;
    }
    crate::sys::process::new_session(&mut cmd);
    if node.kind == NodeKind::Uml {
        crate::uml::prepare(&mut cmd).map_err(|e| LabError::object(what(), e))?;
    }
    cmd.spawn().map_err(|e| LabError::object(what(), e))
}

/// The last `n` lines of a node's log, indented, for error messages.
pub fn log_tail(dir: &Path, node: &str, n: usize) -> String {
    let text = std::fs::read_to_string(log_path(dir, node)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(
            "; last lines of {}:\n    {}",
            log_path(dir, node).display(),
            tail.join("\n    ")
        )
    }
}

/// Current length of a node's log (readiness is looked for after this offset).
pub fn log_len(dir: &Path, node: &str) -> usize {
    std::fs::metadata(log_path(dir, node)).map_or(0, |m| m.len() as usize)
}

/// `true` once `node` reports itself ready in its log after byte `since`: a guest's
/// ready line, the UML node's `ready:` text, or else (UML) its control socket.
pub fn is_ready(dir: &Path, node: &PNode, since: usize) -> bool {
    let text = || {
        let t = std::fs::read(log_path(dir, &node.name)).unwrap_or_default();
        String::from_utf8_lossy(t.get(since..).unwrap_or_default()).into_owned()
    };
    match (node.kind, &node.ready) {
        (NodeKind::Uml, Some(marker)) => text().contains(marker.as_str()),
        (NodeKind::Uml, None) => umid_dir(&node.umid).join("mconsole").exists(),
        _ => {
            let line = format!("vecbox guest {} ready:", node.umid);
            text().contains(&line)
        }
    }
}
