//! The `vecbox` command line.

mod apply;
mod bench;
mod bpf;
mod capture;
mod capture_ends;
mod demo;
mod extcap;
mod impair;
mod lab;
mod lab_up;
mod manual;
mod multihost;

use clap::{CommandFactory, Parser, Subcommand};

use crate::guest::{Guest, GuestArgs};

const GUEST_HELP: &str = "\
Runs one network-function guest, invoked the way a UML kernel is: a function, optional
key=value settings, then one vecN:transport=... spec per interface (port N of the
function is the Nth interface by unit number).

Functions:
  xconnect   exactly two ports; every frame from one leaves by the other, unchanged
  bridge     two or more ports; MAC learning with aging, floods broadcast/unknown
             options: aging=SECONDS (300), fdb_size=ENTRIES (4096)
  router     IPv4/IPv6 forwarding, static routes, ARP/ND, ICMP errors (docs/router.md)
             options: config=FILE (YAML: interfaces, routes, neighbors)
  firewall   stateful filter forwarding like xconnect or bridge (docs/firewall.md)
             options: rules=FILE, mode=xconnect|bridge, conntrack_max=N, aging=SECONDS

Guest settings:
  umid=NAME     instance name (default FUNCTION-PID); the control socket is
                ~/.uml/NAME/mconsole, as for a UML kernel (see `vecbox console`)
  cpu=N         pin the guest to CPU N
  busy_poll=US  after frames arrive, keep polling the ports for US µs (0..10000)
                before sleeping: lower latency when a sleeping CPU is slow to wake,
                at the cost of a busy CPU while traffic keeps coming (default 0)
  stats=FILE    write the exit report as JSON to FILE (drops by reason name, batch
                histograms with their bounds; schema: vecbox guest --report-schema)
  metrics=ADDR  serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464)
  seccomp=MODE  system calls outside the sandbox's allowlist: kill (default; the
                guest dies with SIGSYS), log (allowed and logged in the kernel log:
                dmesg | grep type=1326), off (no filter; for debugging only)

Transports (keys as in UML; see docs/transports.md):
  raw      AF_PACKET on an existing interface    ifname= [ring=1] [ring_kib=] (CAP_NET_RAW)
  tap      /dev/net/tun tap, created if missing  ifname= (creating needs CAP_NET_ADMIN)
  hybrid   tap transmit + AF_PACKET receive      ifname= [ring=1] (CAP_NET_RAW + tap's)
  fd       an inherited socket descriptor        fd=
  gre      Ethernet over GRE (IP proto 47)       src= dst= [v6=1] [rx_key= tx_key=] [sequence=1]
                                                 (CAP_NET_RAW)
  l2tpv3   Ethernet over L2TPv3, IP proto 115    src= dst= rx_session= tx_session= [rx_cookie=
           or UDP (udp=1 srcport= dstport=)      tx_cookie= cookie64=1] [counter=1] (IP: CAP_NET_RAW)
  bess     AF_UNIX seqpacket, one frame/message  dst=PATH [src=PATH] to connect (retried until
                                                 the peer is there), or listen=PATH (vecbox only)
  common   mac= mtu=576..65534 depth=1..4096 (64) headroom= gro=0|1 vec=0|1 bpffile= bpfflash=
  impair   tx_KEY=VALUE (frames leaving onto the link), rx_KEY=VALUE (arriving from it), on
           any transport: delay= jitter= distribution= correlation= loss= duplicate= corrupt=
           reorder= gap= rate= overhead= cell= queue= seed= down= (docs/impairments.md), e.g.
           vec0:transport=raw,ifname=p0,tx_delay=20ms,tx_jitter=2ms,tx_loss=1%,rx_rate=10mbit
  gro=1 lets 64 KiB GSO frames leave the port whole; with gro=0 (UML's default)
  vecbox splits them in software; not given, they leave whole wherever the port can
  carry them (raw: the interface has TSO on; tap, hybrid: the tap takes TSO).
  vec=0 moves one frame per system call. raw and hybrid receive through a
  memory-mapped TPACKET_V2 frame ring (ring=1, the default, no added latency);
  ring=2 is a TPACKET_V3 block ring (fewer wake-ups, up to 1 ms more latency at low
  rates), ring=0 recvmmsg as UML (docs/transports.md). A guest's ring ports share
  8 MiB of ring (at least 256 KiB each, mapped for as long as the port is open);
  ring_kib=256..262144 sizes one port's ring: larger rides out longer stalls of the
  guest without ring_full drops, it does not raise the rate.

Runs until SIGINT/SIGTERM or the console's halt, then prints per-port counters.
Control it with `vecbox console NAME CMD` or UML's own `uml_mconsole NAME CMD`
(version, help, config, remove, stop, go, proc, log, stack, reboot, halt, and
vecbox's impair and link to change impairments live; see docs/console.md). Counters are published in ~/.uml/NAME/metrics (docs/metrics.md). A bad spec exits with
status 2 and names the key. As non-root, give the binary the capabilities:
  setcap cap_net_raw,cap_net_admin+ep vecbox
It drops them once its interfaces are open, keeping only these two in its permitted
set (not effective) so that console reboot/config can reopen interfaces, sets
no_new_privs and installs a seccomp allowlist on every thread (docs/guest.md, Sandbox).

Examples:
  vecbox guest xconnect umid=x1 cpu=1 'vec0:transport=raw,ifname=p0,gro=1' 'vec1:transport=tap,ifname=tap0,gro=1'
  vecbox guest bridge aging=60 vec0:transport=raw,ifname=a vec1:transport=raw,ifname=b vec2:transport=raw,ifname=c
  vecbox guest xconnect vec0:transport=raw,ifname=p0,gro=1 'vec1:transport=gre,src=192.0.2.1,dst=192.0.2.2,rx_key=1,tx_key=1'
  vecbox guest xconnect vec0:transport=raw,ifname=p0 vec1:transport=bess,listen=/run/vecbox/p0.sock";

/// vecbox: network functions and virtual labs on UML-compatible vector transports.
#[derive(Parser, Debug)]
#[command(name = "vecbox", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a network-function guest on vector transports (like a UML kernel's vecN: options).
    #[command(after_long_help = GUEST_HELP)]
    Guest {
        /// Network function: xconnect, bridge, router or firewall.
        #[arg(required_unless_present = "report_schema")]
        function: Option<String>,
        /// Print the JSON Schema of the exit report (stats=FILE) and exit
        /// (docs/guest-report.schema.json).
        #[arg(long)]
        report_schema: bool,
        /// key=value settings and vecN:transport=... interface specs.
        #[arg(
            allow_hyphen_values = true,
            trailing_var_arg = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Talk to a vecbox guest or a UML kernel over its control socket (mconsole protocol).
    #[command(after_long_help = CONSOLE_HELP)]
    Console {
        /// umid (~/.uml/UMID/mconsole, /tmp/uml/UMID/mconsole) or a socket path.
        umid: String,
        /// Command and arguments; without one, an interactive prompt.
        #[arg(
            allow_hyphen_values = true,
            trailing_var_arg = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Build two namespaces joined by a guest, push ping and TCP through it, clean up.
    #[command(after_long_help = demo::HELP)]
    Demo(demo::DemoArgs),
    /// Validate a topology file without touching the kernel.
    #[command(after_long_help = lab::CHECK_HELP)]
    Check(lab::CheckArgs),
    /// Build a lab from a topology file and supervise it.
    #[command(after_long_help = lab::UP_HELP)]
    Up(lab::UpArgs),
    /// Change a running lab to match a topology file, touching nothing else.
    #[command(after_long_help = apply::HELP)]
    Apply(apply::ApplyArgs),
    /// Nodes, restarts, links and live rates of running labs.
    Status(lab::StatusArgs),
    /// Remove a lab completely (also after a crash or kill -9).
    #[command(after_long_help = lab::DOWN_HELP)]
    Down(lab::DownArgs),
    /// Draw a topology as Graphviz DOT or Mermaid.
    Graph(lab::GraphArgs),
    /// Run a command inside a lab node's network namespace.
    Exec(lab::ExecArgs),
    /// Show or change the impairments (delay, loss, rate, ...) of a running lab's links.
    #[command(after_long_help = impair::IMPAIR_HELP)]
    Impair(impair::ImpairArgs),
    /// Take a running lab's link down or up (both directions).
    #[command(after_long_help = impair::LINK_HELP)]
    Link(impair::LinkArgs),
    /// Assemble, inspect, check and try out classic BPF filters (bpffile=).
    #[command(after_long_help = bpf::HELP)]
    Bpf(bpf::BpfArgs),
    /// Benchmark vecbox against the Linux kernel and a real UML guest (pps, Gbit/s).
    #[command(after_long_help = bench::HELP)]
    Bench(bench::BenchArgs),
    /// Capture lab links (or a guest's ports) into one pcapng stream, live or to a file.
    #[command(
        after_long_help = capture::HELP,
        override_usage = "vecbox capture LAB [NODE:IF]... [OPTIONS]\n       vecbox capture --guest UMID vecN... [OPTIONS]"
    )]
    Capture(capture::CaptureArgs),
    /// Wireshark/tshark interfaces for lab links (extcap); --install links vecbox in.
    #[command(after_long_help = extcap::HELP, disable_help_flag = true)]
    Extcap {
        /// --install [--global], --uninstall, or the extcap options Wireshark passes.
        #[arg(
            allow_hyphen_values = true,
            trailing_var_arg = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Send UDP frames with vecbox's own sendmmsg generator (used by `vecbox bench`).
    #[command(after_long_help = bench::GEN_HELP)]
    Gen(bench::GenArgs),
    /// Boot a User Mode Linux kernel, with the host compatibility fixes it needs here.
    #[command(after_long_help = UML_HELP)]
    Uml {
        /// Kernel binary (path or name on PATH).
        #[arg(long, default_value = crate::uml::DEFAULT_KERNEL)]
        kernel: String,
        /// Kernel arguments, e.g. mem=64M vec0:transport=tap,ifname=t0 ...
        #[arg(
            allow_hyphen_values = true,
            trailing_var_arg = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Print a shell completion script (bash, zsh, fish).
    #[command(after_long_help = manual::COMPLETIONS_HELP)]
    Completions(manual::CompletionsArgs),
    /// Print vecbox's manual page, or a subcommand's; --install DIR writes them all.
    #[command(after_long_help = manual::MAN_HELP)]
    Man(manual::ManArgs),
}

const CONSOLE_HELP: &str = "\
Sends CMD (words joined by spaces) to the control socket of UMID and prints the reply
as uml_mconsole does: `OK text` or `ERR text`. The exit status is 1 when the reply is
an error. Without CMD, opens a prompt with history and completion (Tab); `quit` or
Ctrl-D leaves, `switch NAME` changes the target.

The socket is looked up as ~/.uml/UMID/mconsole, /tmp/uml/UMID/mconsole, then UMID
as a path; this works for vecbox guests and for UML kernels started with umid=.
When the target runs in another network namespace the client binds a filesystem
socket (abstract addresses do not cross namespaces).

Examples:
  vecbox console x1 version
  vecbox console x1 config vec2:transport=raw,ifname=veth9
  vecbox console x1 proc net/dev
  vecbox console x1 halt";

const UML_HELP: &str = "\
Executes the UML kernel with ARGS. On hosts with AVX-512 or AMX, Debian's linux.uml 6.1
dies at its first process (\"ptrace set fp regs failed\"); vecbox hides the XSTATE
ptrace regset from it with a seccomp filter and passes GLIBC_TUNABLES to the guest's
init so guest programs avoid AVX. On other hosts ARGS are passed unchanged.

Example (a hostfs root holding a static busybox and an /init script):
  vecbox uml root=/dev/root rootfstype=hostfs rootflags=/srv/umlroot rw init=/init \\
      mem=64M con=null con0=fd:0,fd:1 umid=u1 vec0:transport=raw,ifname=veth1";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VECBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Entry point of the `vecbox` binary; returns the exit status.
pub fn main() -> i32 {
    init_tracing();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if extcap::invoked_as_extcap(argv.first().map(|a| a.as_os_str())) {
        // Wireshark runs the `vecbox-extcap` link with extcap options only.
        let args: Vec<String> = argv[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return extcap::run(&args);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Guest {
            report_schema: true,
            ..
        } => {
            println!("{}", crate::guest::report_schema());
            0
        }
        Command::Guest { function, args, .. } => run_guest(&function.unwrap_or_default(), &args),
        Command::Demo(a) => demo::run(&a),
        Command::Bpf(a) => bpf::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Gen(a) => bench::run_gen(&a),
        Command::Uml { kernel, args } => run_uml(&kernel, &args),
        Command::Check(a) => lab::check(&a),
        Command::Up(a) => lab_up::up(&a),
        Command::Apply(a) => apply::run(&a),
        Command::Status(a) => lab_up::status(&a),
        Command::Down(a) => lab::down(&a),
        Command::Graph(a) => lab::graph(&a),
        Command::Exec(a) => lab::exec(&a),
        Command::Impair(a) => impair::impair(&a),
        Command::Link(a) => impair::link(&a),
        Command::Console { umid, command } => run_console(&umid, &command),
        Command::Capture(a) => capture::run(&a),
        Command::Extcap { args } => extcap::run(&args),
        Command::Completions(a) => manual::completions(&a, Cli::command()),
        Command::Man(a) => manual::man(&a, Cli::command()),
    }
}

fn run_console(umid: &str, command: &[String]) -> i32 {
    if command.is_empty() {
        return crate::console::repl::run(umid);
    }
    let mut client = match crate::console::Client::connect(umid) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            return 1;
        }
    };
    match client.request(&command.join(" ")) {
        Ok(r) => {
            println!("{}", r.line());
            i32::from(r.err != 0)
        }
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            1
        }
    }
}

fn run_uml(kernel: &str, args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let Some(path) = crate::uml::find_kernel(kernel) else {
        eprintln!(
            "vecbox: error: UML kernel {kernel:?} not found (install Debian's user-mode-linux or pass --kernel PATH)"
        );
        return 1;
    };
    let mut cmd = std::process::Command::new(path);
    cmd.args(args);
    if let Err(e) = crate::uml::prepare(&mut cmd) {
        eprintln!("vecbox: error: preparing UML: {e}");
        return 1;
    }
    let e = cmd.exec();
    eprintln!("vecbox: error: executing {kernel}: {e}");
    1
}

fn run_guest(function: &str, args: &[String]) -> i32 {
    let fail = |e: crate::guest::GuestError| {
        eprintln!("vecbox: error: {e}");
        e.exit_code()
    };
    let parsed = match GuestArgs::parse(function, args) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let mut guest = match Guest::open(parsed) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    if let Err(e) = guest.sandbox() {
        return fail(e);
    }
    let result = guest.run();
    let report = guest.report();
    print!("{report}");
    if let Some(path) = &guest.args.stats
        && let Err(e) = std::fs::write(path, report.to_json())
    {
        eprintln!("vecbox: error: writing stats to {}: {e}", path.display());
        return 1;
    }
    match result {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}
