//! The command table: names in UML's match order (a request runs the first command whose
//! name is a prefix of its text, so `versionXYZ` runs `version`), vecbox's additions
//! after them, and the help text.

/// A console command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Version,
    Halt,
    Reboot,
    Config,
    Remove,
    Sysrq,
    Help,
    Cad,
    Stop,
    Go,
    Log,
    Proc,
    Stack,
    /// vecbox: load a classic-BPF file onto an interface (needs `bpfflash=1` on it).
    Bpf,
    /// vecbox: the function re-reads its configuration file, keeping its state.
    Reload,
    /// vecbox: the function is built again with new options.
    Options,
    /// vecbox: show or change an interface's impairments (delay, loss, rate, ...).
    Impair,
    /// vecbox: take an interface's link administratively down or up.
    Link,
    /// vecbox: captures into shared rings (`vecbox capture` starts them).
    Capture,
}

/// Commands in match order.
pub const TABLE: [(&str, Command); 19] = [
    ("version", Command::Version),
    ("halt", Command::Halt),
    ("reboot", Command::Reboot),
    ("config", Command::Config),
    ("remove", Command::Remove),
    ("sysrq", Command::Sysrq),
    ("help", Command::Help),
    ("cad", Command::Cad),
    ("stop", Command::Stop),
    ("go", Command::Go),
    ("log", Command::Log),
    ("proc", Command::Proc),
    ("stack", Command::Stack),
    ("bpf", Command::Bpf),
    ("reload", Command::Reload),
    ("options", Command::Options),
    ("impair", Command::Impair),
    ("link", Command::Link),
    ("capture", Command::Capture),
];

/// Find the command for request `text` by prefix; returns it and the text after its
/// name.
pub fn lookup(text: &str) -> Option<(Command, &str)> {
    TABLE
        .iter()
        .find(|(name, _)| text.starts_with(name))
        .map(|(name, c)| (*c, &text[name.len()..]))
}

/// The help text (several packets long, like UML's).
pub const HELP: &str = "\
Commands: 
    version - Get vecbox version and build 
    help - Print this message 
    halt - Stop the guest (counters are written, run directory removed) 
    reboot - Restart the datapath: close and reopen every interface 
    config vecN:<spec> - Add interface vecN (same syntax as command line;
\tifup= and bpffile= are refused here; transport=fd only with a descriptor sent along) 
    config vecN - Print the current spec of interface vecN 
    remove vecN - Remove interface vecN 
    sysrq <letter> - b: reboot, o: halt, m: buffers, t/p/w: state, h: help 
    cad - Ctrl-Alt-Del: restart the datapath, as reboot 
    stop - pause forwarding; only the console runs until 'go' 
    go - resume forwarding after a 'stop' 
    log <string> - write <string> to the guest's log
    proc <file> - net/dev, stats, fdb, routes, neigh, rules, conntrack (as the function has them)
    stack - dump of the guest's state (ports, queues, loop)
    bpf vecN <file> - load a classic-BPF filter (UML bpffile, tcpdump -dd/-ddd or bpf_asm text) onto vecN; needs bpfflash=1 on vecN
    reload - the router/firewall re-reads its file, keeping neighbours and connections
    options <key=value ...> - rebuild the function with these options (its learned state starts empty)
    impair [vecN] - show impairments and their counters
    impair vecN [tx|rx|both] KEY=VALUE... - change them (delay= jitter= loss= rate= ...; docs/impairments.md)
    impair vecN [tx|rx|both] clear - remove them
    link [vecN] - show link state; link vecN down|up - take the link down or up
    capture [list] - captures running in this guest, with their counters
    capture stop <N> - end capture N (`vecbox capture` starts captures: the ring comes with the request)
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matching_in_table_order() {
        assert_eq!(lookup("version"), Some((Command::Version, "")));
        assert_eq!(lookup("versionXYZ"), Some((Command::Version, "XYZ")));
        assert_eq!(lookup("config vec0"), Some((Command::Config, " vec0")));
        assert_eq!(lookup("gone"), Some((Command::Go, "ne")));
        assert_eq!(lookup("proc net/dev"), Some((Command::Proc, " net/dev")));
        assert_eq!(lookup("vers"), None);
        assert_eq!(lookup(""), None);
        assert_eq!(lookup(" version"), None);
    }

    #[test]
    fn help_spans_several_packets() {
        assert!(HELP.len() > crate::console::proto::CHUNK);
    }
}
