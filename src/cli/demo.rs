//! `vecbox demo`: two hosts in network namespaces joined through a vecbox guest, real
//! ping and TCP traffic across it, a summary, and nothing left behind.
//!
//! ```text
//!  ns A            ns G (guest)                      ns B
//!  a0 10.77.0.1 ── ga ─ vec0 [xconnect] vec1 ─ gb ── b0 10.77.0.2
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::netlink::{self, NetNs, NetlinkError};
use crate::wire::checksum;

pub const HELP: &str = "\
Creates three network namespaces (host A, the guest, host B) and two veth pairs, starts
`vecbox guest` between them, pings B from A, streams TCP from A to B, prints what moved
and how fast, and removes everything it created, also on Ctrl-C. Needs root.

Examples:
  vecbox demo
  vecbox demo --function bridge --transport tap --seconds 5
  vecbox demo --gro 0        # 64 KiB TCP frames are segmented by vecbox";

/// Options of `vecbox demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Network function of the guest: xconnect or bridge.
    #[arg(long, default_value = "xconnect")]
    function: String,
    /// Transport of the guest's second port: raw, tap or hybrid (the first is raw).
    #[arg(long, default_value = "raw")]
    transport: String,
    /// gro= setting of both ports (1: 64 KiB frames pass whole).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    gro: u8,
    /// Seconds of TCP traffic.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    seconds: u64,
}

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

static GUEST_PID: AtomicI32 = AtomicI32::new(0);

/// Run the demo; returns the exit status.
pub fn run(a: &DemoArgs) -> i32 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "vecbox: error: the demo creates network namespaces and interfaces: run it as root"
        );
        return 1;
    }
    if !["raw", "tap", "hybrid"].contains(&a.transport.as_str()) {
        eprintln!(
            "vecbox: error: --transport {}: expected raw, tap or hybrid",
            a.transport
        );
        return 2;
    }
    let tag = format!("vbd{}", std::process::id());
    let names = [format!("{tag}-a"), format!("{tag}-g"), format!("{tag}-b")];
    install_interrupt_cleanup(names.clone());
    match demo(a, &names) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vecbox: error: demo failed: {e}");
            1
        }
    }
}

/// Block SIGINT/SIGTERM in every thread and let one thread wait for them: on a signal
/// the guest is stopped and the namespaces are removed before exiting.
fn install_interrupt_cleanup(names: [String; 3]) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            eprintln!("vecbox: interrupted; cleaning up");
            stop_guest();
            for n in &names {
                let _ = NetNs::existing(n).delete();
            }
            std::process::exit(130);
        }
    });
}

fn stop_guest() {
    let pid = GUEST_PID.swap(0, Ordering::SeqCst);
    if pid > 0 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

type DynError = Box<dyn std::error::Error + Send + Sync>;

fn demo(a: &DemoArgs, names: &[String; 3]) -> Result<(), DynError> {
    let t0 = Instant::now();
    let ns_a = NetNs::create(&names[0])?;
    let ns_g = NetNs::create(&names[1])?;
    let ns_b = NetNs::create(&names[2])?;
    let (fa, fb) = (ns_a.open()?, ns_b.open()?);
    let tap = a.transport != "raw";
    ns_g.rtnl(move |h| async move {
        netlink::set_up(&h, "lo").await?;
        netlink::add_veth(&h, "ga", "a0", Some(&fa)).await?;
        netlink::set_up(&h, "ga").await?;
        if !tap {
            netlink::add_veth(&h, "gb", "b0", Some(&fb)).await?;
            netlink::set_up(&h, "gb").await?;
        }
        Ok(())
    })?;
    for (ns, ifname, ip) in [(&ns_a, "a0", A_IP), (&ns_b, "b0", B_IP)] {
        if tap && ifname == "b0" {
            continue;
        }
        ns.rtnl(move |h| async move { host_up(&h, ifname, ip).await })?;
    }

    let second = if tap {
        format!("vec1:transport={},ifname=b0,gro={}", a.transport, a.gro)
    } else {
        format!("vec1:transport=raw,ifname=gb,gro={}", a.gro)
    };
    let guest_args = vec![
        "guest".to_string(),
        a.function.clone(),
        format!("umid=demo-{}", std::process::id()),
        format!("vec0:transport=raw,ifname=ga,gro={}", a.gro),
        second,
    ];
    println!(
        "vecbox demo: namespaces {} (host A), {} (guest), {} (host B)",
        names[0], names[1], names[2]
    );
    println!("guest: vecbox {}", guest_args.join(" "));
    let mut guest = start_guest(&ns_g, guest_args)?;
    let result = (|| -> Result<(), DynError> {
        if tap {
            // The guest created tap b0 in its namespace: hand it to host B.
            let fb = ns_b.open()?;
            ns_g.rtnl(move |h| async move {
                let msg = rtnetlink::LinkUnspec::new_with_name("b0")
                    .setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(&fb))
                    .build();
                h.link()
                    .set(msg)
                    .execute()
                    .await
                    .map_err(|source| NetlinkError::Rtnl {
                        op: "moving",
                        what: "b0".into(),
                        source,
                    })
            })?;
            ns_b.rtnl(|h| async move { host_up(&h, "b0", B_IP).await })?;
        }
        println!("setup took {:.2} s", t0.elapsed().as_secs_f64());
        let rtts = ns_a.run(|| ping(B_IP, 5))??;
        let lost = rtts.iter().filter(|r| r.is_none()).count();
        let shown: Vec<String> = rtts
            .iter()
            .map(|r| {
                r.map_or("lost".into(), |d| {
                    format!("{:.3} ms", d.as_secs_f64() * 1e3)
                })
            })
            .collect();
        println!(
            "ping A -> B: {} sent, {} received: {}",
            rtts.len(),
            rtts.len() - lost,
            shown.join(", ")
        );
        if lost == rtts.len() {
            return Err("no ping reply came back through the guest".into());
        }
        let (bytes, secs) = tcp_stream(&ns_a, &ns_b, Duration::from_secs(a.seconds))?;
        println!(
            "TCP A -> B: {:.1} MiB in {:.2} s = {:.2} Gbit/s",
            bytes as f64 / 1048576.0,
            secs,
            bytes as f64 * 8.0 / secs / 1e9
        );
        Ok(())
    })();
    stop_guest();
    let mut out = String::new();
    if let Some(mut so) = guest.stdout.take() {
        let _ = so.read_to_string(&mut out);
    }
    let status = guest.wait()?;
    println!("--- guest report ---\n{}", out.trim_end());
    drop((ns_a, ns_g, ns_b));
    println!(
        "removed the namespaces and interfaces; done in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    result?;
    if !status.success() {
        return Err(format!("guest exited with {status}").into());
    }
    Ok(())
}

async fn host_up(h: &rtnetlink::Handle, ifname: &str, ip: Ipv4Addr) -> Result<(), NetlinkError> {
    netlink::set_up(h, "lo").await?;
    netlink::add_address(h, ifname, ip.into(), 24).await?;
    netlink::set_up(h, ifname).await
}

/// Start `vecbox ARGS` inside `ns` and wait for its ready line.
fn start_guest(ns: &NetNs, args: Vec<String>) -> Result<Child, DynError> {
    let exe = std::env::current_exe()?;
    let mut child = ns.run(move || {
        Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    })??;
    GUEST_PID.store(child.id() as i32, Ordering::SeqCst);
    let stderr = child.stderr.take().ok_or("guest has no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(" ready: ") {
                let _ = tx.send(Ok(line));
            } else {
                eprintln!("  guest: {line}");
                let _ = tx.send(Err(line));
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Ok(line)) => {
                println!("{line}");
                return Ok(child);
            }
            Ok(Err(line)) => last = line,
            Err(_) => break,
        }
    }
    stop_guest();
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("the guest did not start: {last}").into())
}

/// How long a probe waits for its reply (the first one includes ARP through a guest
/// that has just started, on a machine that may be busy).
const PING_WAIT: Duration = Duration::from_secs(3);

/// Send `count` ICMP echo requests to `dst`, one every 200 ms; the round-trip time of
/// each, or `None` if no reply came within [`PING_WAIT`].
fn ping(dst: Ipv4Addr, count: u16) -> Result<Vec<Option<Duration>>, DynError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let to: SocketAddr = (dst, 0).into();
    let id = (std::process::id() & 0xffff) as u16;
    let mut out = Vec::new();
    for seq in 1..=count {
        let mut req = [0u8; 64];
        req[0] = 8;
        req[4..6].copy_from_slice(&id.to_be_bytes());
        req[6..8].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in req[8..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let c = checksum::finish(checksum::sum(&req, 0));
        req[2..4].copy_from_slice(&c.to_be_bytes());
        let sent = Instant::now();
        sock.send_to(&req, &to.into())?;
        let mut rtt = None;
        while sent.elapsed() < PING_WAIT {
            sock.set_read_timeout(Some(
                PING_WAIT
                    .saturating_sub(sent.elapsed())
                    .max(Duration::from_millis(1)),
            ))?;
            let mut buf = [0u8; 1500];
            let Ok(n) = (&sock).read(&mut buf) else { break };
            let pkt = &buf[..n];
            let ihl = usize::from(pkt.first().copied().unwrap_or(0) & 0x0f) * 4;
            let icmp = pkt.get(ihl..).unwrap_or(&[]);
            if icmp.len() >= 8
                && icmp[0] == 0
                && icmp[4..6] == id.to_be_bytes()
                && icmp[6..8] == seq.to_be_bytes()
            {
                rtt = Some(sent.elapsed());
                break;
            }
        }
        out.push(rtt);
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(out)
}

/// TCP from A to B for `dur`; returns (bytes received at B, seconds).
fn tcp_stream(ns_a: &NetNs, ns_b: &NetNs, dur: Duration) -> Result<(u64, f64), DynError> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = ns_b.spawn(move || -> std::io::Result<(u64, f64)> {
        let l = TcpListener::bind((B_IP, 5201))?;
        let _ = ready_tx.send(());
        let (mut s, _) = l.accept()?;
        let start = Instant::now();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => break,
                n => total += n as u64,
            }
        }
        Ok((total, start.elapsed().as_secs_f64()))
    })?;
    ready_rx.recv_timeout(Duration::from_secs(5))?;
    ns_a.run(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect_timeout(&(B_IP, 5201).into(), Duration::from_secs(5))?;
        let buf = vec![0x5au8; 1 << 20];
        let start = Instant::now();
        while start.elapsed() < dur {
            s.write_all(&buf)?;
        }
        s.shutdown(std::net::Shutdown::Write)
    })??;
    let r = server.join().map_err(|_| "TCP receiver panicked")???;
    Ok(r)
}
