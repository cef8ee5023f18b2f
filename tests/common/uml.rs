//! Real User Mode Linux guests for interop tests: Debian's `linux.uml` booted from a
//! hostfs root made of a static busybox and a generated `/init`, console on stdio,
//! launched through `vecbox::uml::prepare` (the host compatibility shim).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Lab, require_tool};

static N: AtomicU32 = AtomicU32::new(0);

/// Printed by the generated init once the guest's own script has run.
pub const READY: &str = "VECBOX-UML-READY";

/// A booted UML guest.
pub struct Uml {
    child: Option<Child>,
    pub umid: String,
    lines: mpsc::Receiver<String>,
    /// Console output seen so far.
    pub log: Vec<String>,
    pub root: PathBuf,
}

impl Uml {
    /// Boot a UML kernel inside namespace `ns` with the given `vecN:` specs (and any other
    /// kernel arguments), run `script` (busybox sh) after boot, and wait until it has
    /// printed [`READY`]. The guest keeps running (`sleep`) until dropped.
    pub fn boot(lab: &Lab, ns: &str, args: &[&str], script: &str) -> Uml {
        require_tool("linux.uml");
        require_tool("busybox");
        let n = N.fetch_add(1, Ordering::SeqCst);
        let umid = format!("{}u{n}", lab.tag);
        let root = lab.dir.join(format!("uml{n}"));
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let busybox = super::run(&["sh", "-c", "command -v busybox"]);
        let busybox = String::from_utf8_lossy(&busybox.stdout).trim().to_string();
        std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
        let init = format!(
            "#!/bin/busybox sh\n\
             /bin/busybox --install -s /bin\n\
             export PATH=/bin\n\
             mount -t proc proc /proc\n\
             mount -t sysfs sys /sys\n\
             mount -t tmpfs tmp /tmp\n\
             ip link set lo up\n\
             {script}\n\
             echo {READY}\n\
             exec sleep 100000\n"
        );
        let init_path = root.join("init");
        std::fs::write(&init_path, init).unwrap();
        super::run(&["chmod", "755", init_path.to_str().unwrap()]);

        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "linux.uml"]);
        cmd.args(vecbox::uml::hostfs_args(&root, "/init", 96));
        cmd.arg(format!("umid={umid}"));
        cmd.args(args);
        vecbox::uml::prepare(&mut cmd).unwrap();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start linux.uml");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut uml = Uml {
            child: Some(child),
            umid,
            lines: rx,
            log: Vec::new(),
            root,
        };
        if uml.wait_for(READY, Duration::from_secs(30)).is_none() {
            panic!("UML guest did not come up:\n{}", uml.log.join("\n"));
        }
        uml
    }

    /// Wait for a console line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.log.push(line.clone());
                    if hit {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Stop the guest: SIGTERM (UML kills its own processes and exits), then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(home) = std::env::var_os("HOME") {
            let _ = std::fs::remove_dir_all(PathBuf::from(home).join(".uml").join(&self.umid));
        }
    }
}

impl Drop for Uml {
    fn drop(&mut self) {
        self.stop();
    }
}
