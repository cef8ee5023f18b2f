//! The console commands, executed by the guest between batches (see docs/console.md).
//! Replies follow UML's strings where UML has the command; vecbox's own behaviour is
//! documented next to each. Nothing here runs a host program; the only host file a
//! request can make the guest read is a BPF program, and only for an interface started
//! with `bpfflash=1`.

use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::Guest;
use crate::console::commands::{self, Command, HELP};
use crate::console::proto;
use crate::transport::{Kind, Spec};

/// What the loop must do after the console requests of one wake-up.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Action {
    pub halt: bool,
    /// Ports changed or the guest stopped/resumed: rebuild the epoll set.
    pub rebuild: bool,
}

/// A reply: error flag and text.
type Reply = (u32, String);

fn ok(s: impl Into<String>) -> Reply {
    (0, s.into())
}

fn err(s: impl Into<String>) -> Reply {
    (1, s.into())
}

/// `ENODEV`, as UML's remove returns it (negative errno in the err field).
const ENODEV: u32 = (-libc::ENODEV) as u32;

/// Parse a device number as the kernel's `kstrtouint(.., 0)`: decimal, `0x` hex or
/// leading-0 octal, the whole string.
pub(super) fn parse_unit(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

impl Guest {
    /// Serve waiting console requests (a bounded number per call).
    pub(super) fn serve_console(&mut self) -> Action {
        let mut action = Action::default();
        for _ in 0..crate::console::server::BATCH {
            let Some(req) = self.console.receive() else {
                break;
            };
            self.execute(&req.from, &req.text, req.fds, &mut action);
            if action.halt {
                break;
            }
        }
        if action.rebuild && self.captures.any() {
            // Ports changed: captures follow their interfaces by unit.
            self.retap();
        }
        action
    }

    fn execute(
        &mut self,
        from: &SocketAddr,
        text: &str,
        fds: Vec<std::os::fd::OwnedFd>,
        action: &mut Action,
    ) {
        let Some((cmd, rest)) = commands::lookup(text) else {
            self.console.reply(from, 1, proto::UNKNOWN);
            return;
        };
        let (e, reply) = match cmd {
            Command::Version => ok(format!(
                "vecbox {} {} {} build ({}) {}",
                self.args.umid,
                env!("CARGO_PKG_VERSION"),
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
                self.nf.name(),
                std::env::consts::ARCH
            )),
            Command::Help => ok(HELP),
            Command::Halt => {
                action.halt = true;
                ok("")
            }
            Command::Reboot | Command::Cad => {
                // Reply first, as UML does, then restart.
                self.console.reply(from, 0, "");
                action.rebuild = true;
                if let Err(e) = self.reopen_all() {
                    tracing::error!(error = %e, "datapath restart lost interfaces");
                }
                return;
            }
            Command::Config => self.config(rest, fds, action),
            Command::Remove => self.remove(rest, action),
            Command::Sysrq => return self.sysrq(from, rest, action),
            Command::Stop => {
                if self.stopped {
                    err("Already stopped")
                } else {
                    self.stopped = true;
                    action.rebuild = true;
                    tracing::info!("forwarding stopped from the console");
                    ok("stopped")
                }
            }
            Command::Go => {
                if self.stopped {
                    self.stopped = false;
                    action.rebuild = true;
                    tracing::info!("forwarding resumed from the console");
                    ok("")
                } else {
                    err("Not stopped")
                }
            }
            Command::Log => {
                // UML takes the text after the first four characters ("log ").
                self.log(text.get(4..).unwrap_or(""));
                ok("")
            }
            Command::Proc => return self.proc(from, rest.trim_start_matches(' ')),
            Command::Stack => return self.stream(from, &self.stack_dump()),
            Command::Bpf => self.bpf(rest),
            Command::Reload => self.reload(),
            Command::Options => self.options(rest, action),
            Command::Impair | Command::Link => {
                let r = if cmd == Command::Impair {
                    self.impair_command(rest)
                } else {
                    self.link_command(rest)
                };
                match r {
                    Ok(text) => return self.stream(from, &text),
                    Err(reply) => reply,
                }
            }
            Command::Capture => self.capture_command(rest, fds),
        };
        self.console.reply(from, e, &reply);
    }

    /// UML's `proc`: "\n" (more), the content (more), "" (last).
    fn proc(&mut self, from: &SocketAddr, name: &str) {
        match self.proc_file(name) {
            Some(content) => {
                self.console.reply_part(from, 0, "\n");
                self.stream(from, &content);
            }
            None => {
                let names = self.proc_names().join(", ");
                tracing::debug!(file = name, "console proc: no such file (have {names})");
                self.console.reply(from, 1, "Failed to open file");
            }
        }
    }

    /// Content as more=1 packets, then an empty last packet (UML's streaming style).
    fn stream(&mut self, from: &SocketAddr, content: &str) {
        if !content.is_empty() {
            self.console.reply_part(from, 0, content);
        }
        self.console.reply(from, 0, "");
    }

    fn sysrq(&mut self, from: &SocketAddr, rest: &str, action: &mut Action) {
        let key = rest.trim_start_matches(' ').chars().next().unwrap_or('h');
        match key {
            'b' => {
                // UML answers before acting on 'b'.
                self.console.reply(from, 0, "");
                action.rebuild = true;
                if let Err(e) = self.reopen_all() {
                    tracing::error!(error = %e, "datapath restart lost interfaces");
                }
            }
            'o' => {
                action.halt = true;
                self.console.reply(from, 0, "");
            }
            'm' => {
                let text = format!(
                    "SysRq : Show Memory\npool: {} of {} buffers free, {} bytes each\n",
                    self.pool.available(),
                    self.pool.capacity(),
                    self.pool.stride()
                );
                self.stream(from, &text);
            }
            't' | 'p' | 'w' => {
                let text = format!("SysRq : Show State\n{}", self.stack_dump());
                self.stream(from, &text);
            }
            _ => self.stream(
                from,
                "SysRq : HELP : reBoot(b) powerOff(o) show-memory-usage(m) show-task-states(t) show-registers(p) show-blocked-tasks(w)\n",
            ),
        }
    }

    /// `config vecN:SPEC` adds an interface, `config vecN` prints its spec. A
    /// `transport=fd` port takes the descriptor sent with the request (a lab supervisor
    /// handing over a tap), whatever number `fd=` says.
    fn config(&mut self, rest: &str, fds: Vec<std::os::fd::OwnedFd>, action: &mut Action) -> Reply {
        let rest = rest.trim_start_matches(' ');
        let Some(dev) = rest.strip_prefix("vec") else {
            return err("Bad configuration option");
        };
        if !dev.contains('=') {
            let Some(unit) = parse_unit(dev.trim_end()) else {
                return err("Bad device number");
            };
            return match self.port_index(unit) {
                Some(i) => ok(self.ports[i].spec.to_string()),
                None => err(format!("vec{unit} does not exist")),
            };
        }
        let Some((num, _)) = dev.split_once(':') else {
            return err("Expected ':' after device number");
        };
        let Some(unit) = parse_unit(num) else {
            return err("Bad device number");
        };
        if self.port_index(unit).is_some() {
            return err("Device already configured");
        }
        let mut spec: Spec = match rest.parse() {
            Ok(s) => s,
            Err(e) => return err(e.to_string()),
        };
        // The descriptor stays open (and is closed when `fds` drops) until the transport
        // has taken its own duplicate.
        if let (Kind::Fd { fd }, [passed]) = (&mut spec.kind, fds.as_slice()) {
            *fd = std::os::fd::AsRawFd::as_raw_fd(passed);
        } else if let Some(why) = refused_from_console(&spec) {
            return err(why);
        }
        match self.add_port(&spec) {
            Ok(()) => {
                action.rebuild = true;
                ok("")
            }
            Err(e) => err(e),
        }
    }

    /// `reload`: the function re-reads its file (router configuration, firewall rules)
    /// with the ports it has, keeping its state where the change allows (the router its
    /// neighbours, the firewall its connections).
    fn reload(&mut self) -> Reply {
        match self.reload_function() {
            Ok(()) => ok("reloaded"),
            Err(e) => err(e),
        }
    }

    /// `options KEY=VALUE ...`: the function is built again with these options (all of
    /// them, as on the command line) and the ports it has; its learned state starts
    /// empty. Refused (and nothing changes) when the function rejects them.
    fn options(&mut self, rest: &str, action: &mut Action) -> Reply {
        let mut opts = Vec::new();
        for w in rest.split_whitespace() {
            let Some((k, v)) = w.split_once('=') else {
                return err(format!("options: {w:?} is not KEY=VALUE"));
            };
            opts.push((k.to_string(), v.to_string()));
        }
        match self.rebuild_function(opts) {
            Ok(()) => {
                action.rebuild = true;
                ok("")
            }
            Err(e) => err(e),
        }
    }

    fn remove(&mut self, rest: &str, action: &mut Action) -> Reply {
        let rest = rest.trim_start_matches(' ');
        let Some(num) = rest.strip_prefix("vec") else {
            return err("Bad remove option");
        };
        let Some(unit) = parse_unit(num) else {
            return err("Couldn't parse device number");
        };
        let Some(i) = self.port_index(unit) else {
            return (ENODEV, "Device doesn't exist".into());
        };
        match self.remove_port(i) {
            Ok(()) => {
                action.rebuild = true;
                ok("")
            }
            Err(e) => err(e),
        }
    }

    /// `bpf vecN FILE`: load a classic-BPF program (UML binary, `tcpdump -dd`/`-ddd` or
    /// `bpf_asm` text) onto an interface started with `bpfflash=1`, replacing its filter.
    fn bpf(&mut self, rest: &str) -> Reply {
        let mut words = rest.split_whitespace();
        let (Some(dev), Some(file), None) = (words.next(), words.next(), words.next()) else {
            return err(
                "usage: bpf vecN FILE (UML bpffile binary, tcpdump -dd/-ddd or bpf_asm text)",
            );
        };
        let Some(unit) = dev.strip_prefix("vec").and_then(parse_unit) else {
            return err(format!("bpf: {dev:?} is not an interface name like vec0"));
        };
        let Some(i) = self.port_index(unit) else {
            return err(format!("bpf: vec{unit} does not exist"));
        };
        // Refused before the file is read: without bpfflash=1 nothing is loaded.
        if !self.ports[i].spec.common.bpfflash {
            return err(format!(
                "loading filters not permitted on vec{unit}: start the interface with bpfflash=1"
            ));
        }
        let prog = match crate::filter::Program::load(Path::new(file)) {
            Ok(p) => p,
            Err(e) => return err(e.to_string()),
        };
        let n = prog.insns().len();
        match self.replace_filter(i, prog) {
            Ok(()) => ok(format!("vec{unit}: {n} instructions from {file} attached")),
            Err(e) => err(e.to_string()),
        }
    }

    fn log(&mut self, text: &str) {
        self.log_line.push_str(text);
        if self.log_line.len() > 4096 || self.log_line.contains('\n') {
            self.flush_log(false);
        }
    }

    /// Write complete lines of console `log` text (all of it when `all`, or when a
    /// partial line has waited for a tick).
    pub(super) fn flush_log(&mut self, all: bool) {
        let text = std::mem::take(&mut self.log_line);
        let mut rest = text.as_str();
        while let Some((line, tail)) = rest.split_once('\n') {
            tracing::warn!(target: "console", "{}: {line}", self.args.umid);
            rest = tail;
        }
        if !rest.is_empty() {
            if all || text.len() == rest.len() {
                tracing::warn!(target: "console", "{}: {rest}", self.args.umid);
            } else {
                self.log_line.push_str(rest);
            }
        }
    }
}

/// Spec options a console request may not use: they would run a host program or read
/// a host file on the guest's behalf.
fn refused_from_console(spec: &Spec) -> Option<String> {
    let ifup = match &spec.kind {
        Kind::Raw { ifup, .. } | Kind::Tap { ifup, .. } | Kind::Hybrid { ifup, .. } => {
            ifup.is_some()
        }
        _ => false,
    };
    if ifup {
        return Some(
            "ifup= is not accepted from the console (it would run a host program); configure the host interface first".into(),
        );
    }
    if matches!(spec.kind, Kind::Fd { .. }) {
        return Some(
            "transport=fd is not accepted from the console (fd= names a descriptor inherited at start; from here it could only reach the guest's own sockets)".into(),
        );
    }
    if spec.common.bpffile.is_some() {
        return Some(
            "bpffile= is not accepted from the console (it reads a host file); add the interface with bpfflash=1 and use 'bpf vecN FILE'".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_like_kstrtouint_base_0() {
        assert_eq!(parse_unit("12"), Some(12));
        assert_eq!(parse_unit("0x1f"), Some(31));
        assert_eq!(parse_unit("010"), Some(8));
        assert_eq!(parse_unit("0"), Some(0));
        assert_eq!(parse_unit(""), None);
        assert_eq!(parse_unit("1a"), None);
        assert_eq!(parse_unit("-1"), None);
        assert_eq!(parse_unit("09"), None);
    }

    #[test]
    fn console_refuses_host_programs_and_files() {
        let s: Spec = "vec3:transport=tap,ifname=t3,ifup=/bin/true"
            .parse()
            .unwrap();
        assert!(refused_from_console(&s).unwrap().contains("ifup="));
        let s: Spec = "vec3:transport=tap,bpffile=/etc/passwd".parse().unwrap();
        assert!(refused_from_console(&s).unwrap().contains("bpffile="));
        let s: Spec = "vec3:transport=fd,fd=3".parse().unwrap();
        assert!(refused_from_console(&s).unwrap().contains("transport=fd"));
        let s: Spec = "vec3:transport=tap,ifname=t3".parse().unwrap();
        assert!(refused_from_console(&s).is_none());
    }
}
