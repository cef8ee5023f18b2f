//! Classic BPF: vecbox's interpreter against the kernel (SO_ATTACH_FILTER on a real
//! socket), the shipped filters against tcpdump's compiler, the `vecbox bpf` commands,
//! filters on raw and tap ports in namespaces, and a real UML guest loading a
//! vecbox-compiled `bpffile=`.

mod common;

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use common::{Guest, Lab, console_rx, lab_file, port_drops, port_stat, run, vecbox_console};
use proptest::prelude::*;
use vecbox::filter::{self, Meta, SockFilter, insn, interp};

fn bpf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf")
}

/// What the kernel does with `frame` under `prog` on a datagram socket: `None` if
/// dropped, else the bytes delivered.
fn kernel_verdict(prog: &[SockFilter], frame: &[u8]) -> Option<usize> {
    let (a, b) = UnixDatagram::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    vecbox::sys::packet::attach_filter(b.as_fd(), prog).expect("kernel refused the program");
    a.send(frame).unwrap();
    let mut buf = [0u8; 4096];
    match b.recv(&mut buf) {
        Ok(n) => Some(n),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("recv: {e}"),
    }
}

fn interp_verdict(prog: &[SockFilter], frame: &[u8]) -> Option<usize> {
    // What bess ports use for frames filtered in software: checked here against the
    // kernel on a unix socket.
    let meta = Meta::unix();
    match interp::run(prog, frame, &meta) {
        0 => None,
        v => Some((v as usize).min(frame.len())),
    }
}

fn i(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// A random instruction that is not a jump or return; `k` values stay small so loads
/// often land inside the frame.
fn arb_plain() -> impl Strategy<Value = SockFilter> {
    use insn::*;
    let alu_op = prop_oneof![
        Just(ADD),
        Just(SUB),
        Just(MUL),
        Just(DIV),
        Just(MOD),
        Just(AND),
        Just(OR),
        Just(XOR),
        Just(LSH),
        Just(RSH)
    ];
    prop_oneof![
        (prop_oneof![Just(W), Just(H), Just(B)], 0u32..80).prop_map(|(s, k)| i(
            LD | s | ABS,
            0,
            0,
            k
        )),
        (prop_oneof![Just(W), Just(H), Just(B)], 0u32..40).prop_map(|(s, k)| i(
            LD | s | IND,
            0,
            0,
            k
        )),
        Just(i(LD | W | LEN, 0, 0, 0)),
        any::<u32>().prop_map(|k| i(LD | IMM, 0, 0, k)),
        (0u32..40).prop_map(|k| i(LDX | IMM, 0, 0, k)),
        (0u32..60).prop_map(|k| i(LDX | B | MSH, 0, 0, k)),
        Just(i(LDX | W | LEN, 0, 0, 0)),
        (alu_op.clone(), 1u32..40).prop_map(|(op, k)| i(ALU | op | K, 0, 0, k)),
        alu_op.prop_map(|op| i(ALU | op | X, 0, 0, 0)),
        Just(i(ALU | NEG, 0, 0, 0)),
        Just(i(MISC | TAX, 0, 0, 0)),
        Just(i(MISC | TXA, 0, 0, 0)),
        (0u32..4).prop_map(|k| i(ST, 0, 0, k)),
        (0u32..4).prop_map(|k| i(STX, 0, 0, k)),
        (0u32..4).prop_map(|k| i(LD | MEM, 0, 0, k)),
    ]
}

fn arb_program() -> impl Strategy<Value = Vec<SockFilter>> {
    use insn::*;
    let jump = (
        prop_oneof![Just(JEQ), Just(JGT), Just(JGE), Just(JSET)],
        any::<bool>(),
        0u32..300,
        0u8..6,
        0u8..6,
    )
        .prop_map(|(op, x, k, jt, jf)| i(JMP | op | if x { X } else { K }, jt, jf, k));
    let ret = prop_oneof![
        (0u32..120).prop_map(|k| i(RET | K, 0, 0, k)),
        Just(i(RET | A, 0, 0, 0)),
        Just(i(RET | K, 0, 0, 0x40000)),
    ];
    let item = prop_oneof![3 => arb_plain(), 1 => jump, 1 => ret.clone()];
    (prop::collection::vec(item, 1..24), ret).prop_map(|(mut body, last)| {
        body.push(last);
        let n = body.len();
        for (pc, ins) in body.iter_mut().enumerate() {
            if insn::is_cond_jump(ins.code) {
                let left = (n - pc - 1) as u8;
                ins.jt %= left.max(1);
                ins.jf %= left.max(1);
            }
        }
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// vecbox's interpreter and the kernel give every frame the same verdict.
    #[test]
    fn interpreter_agrees_with_the_kernel(
        prog in arb_program(),
        frame in prop::collection::vec(any::<u8>(), 1..96),
    ) {
        prop_assume!(filter::validate::validate(&prog).is_ok());
        prop_assert_eq!(interp_verdict(&prog, &frame), kernel_verdict(&prog, &frame), "{}", insn::disassemble(&prog));
    }
}

fn frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let own = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    for src in [[2, 0, 0, 0, 0, 1], own] {
        for (sp, dp) in [(53, 1000), (1000, 53), (1000, 1001)] {
            let b = || etherparse::PacketBuilder::ethernet2(src, [2, 0, 0, 0, 0, 2]);
            let mut v = Vec::new();
            b().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(sp, dp)
                .write(&mut v, &[0; 8])
                .unwrap();
            out.push(v);
            let mut v = Vec::new();
            b().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(sp, dp, 1, 100)
                .write(&mut v, &[0; 8])
                .unwrap();
            out.push(v);
            let mut v = Vec::new();
            b().ipv6([1; 16], [2; 16], 64)
                .udp(sp, dp)
                .write(&mut v, &[0; 8])
                .unwrap();
            out.push(v);
        }
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&src);
        arp.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.resize(60, 0);
        out.push(arp);
        let mut vlan = out[0].clone();
        vlan.splice(12..12, [0x81, 0x00, 0, 5]);
        out.push(vlan);
    }
    out
}

fn empty_pcap(lab: &Lab) -> PathBuf {
    let p = common::lab_file(lab, "empty.pcap");
    std::fs::write(&p, filter::pcap::write(&[])).unwrap();
    p
}

fn tcpdump(pcap: &Path, flag: &str, expr: &str) -> String {
    common::require_tool("tcpdump");
    let out = run(&["tcpdump", "-r", pcap.to_str().unwrap(), flag, expr]);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn shipped_filters_agree_with_tcpdump_and_the_kernel() {
    let lab = Lab::new();
    let pcap = empty_pcap(&lab);
    for (name, expr) in [
        ("drop-ipv6", "not ip6"),
        ("allow-only-arp-and-ipv4", "arp or ip"),
        ("drop-udp-port-53", "not (udp port 53)"),
        ("own-mac-echo", "not ether src 52:54:00:12:34:56"),
    ] {
        let ours = filter::Program::load(&bpf_dir().join(format!("{name}.bin"))).unwrap();
        let theirs = filter::text::parse(&tcpdump(&pcap, "-ddd", expr)).unwrap();
        let mut passed = 0;
        for f in frames() {
            let m = Meta::ethernet(&f, interp::PACKET_HOST);
            let want = interp::run(&theirs, &f, &m) != 0;
            assert_eq!(
                ours.run(&f, &m) != 0,
                want,
                "{name} vs `{expr}` on {f:02x?}"
            );
            // The kernel accepts the shipped binary and agrees.
            assert_eq!(
                kernel_verdict(ours.insns(), &f).is_some(),
                want,
                "{name}: kernel"
            );
            passed += usize::from(want);
        }
        assert!(
            passed > 0 && passed < frames().len(),
            "{name}: the frames exercise both verdicts"
        );
    }
}

fn vecbox(args: &[&str]) -> (i32, String) {
    let mut a = vec!["bpf"];
    a.extend_from_slice(args);
    common::vecbox_out(&a)
}

#[test]
fn bpf_cli_assembles_dumps_checks_and_tests() {
    common::require_tool("tshark");
    let lab = Lab::new();
    let pcap = empty_pcap(&lab);
    let f = |n: &str| common::lab_file(&lab, n).display().to_string();
    // tcpdump -dd and -ddd of the same expression assemble to the same binary.
    std::fs::write(f("a.dd"), tcpdump(&pcap, "-dd", "udp port 53")).unwrap();
    std::fs::write(f("a.ddd"), tcpdump(&pcap, "-ddd", "udp port 53")).unwrap();
    assert_eq!(vecbox(&["asm", &f("a.dd"), "-o", &f("a1.bin")]).0, 0);
    assert_eq!(vecbox(&["asm", &f("a.ddd"), "-o", &f("a2.bin")]).0, 0);
    assert_eq!(
        std::fs::read(f("a1.bin")).unwrap(),
        std::fs::read(f("a2.bin")).unwrap()
    );
    // dump → asm round-trips; the shipped sources assemble to the shipped binaries.
    for name in [
        "drop-ipv6",
        "allow-only-arp-and-ipv4",
        "drop-udp-port-53",
        "own-mac-echo",
    ] {
        let bin = bpf_dir().join(format!("{name}.bin"));
        let (code, text) = vecbox(&["dump", bin.to_str().unwrap()]);
        assert_eq!(code, 0, "{text}");
        std::fs::write(f("d.bpf"), text).unwrap();
        assert_eq!(vecbox(&["asm", &f("d.bpf"), "-o", &f("d.bin")]).0, 0);
        assert_eq!(
            std::fs::read(f("d.bin")).unwrap(),
            std::fs::read(&bin).unwrap(),
            "{name}"
        );
        let src = bpf_dir().join(format!("{name}.bpf"));
        assert_eq!(
            vecbox(&["asm", src.to_str().unwrap(), "-o", &f("s.bin")]).0,
            0
        );
        assert_eq!(
            std::fs::read(f("s.bin")).unwrap(),
            std::fs::read(&bin).unwrap(),
            "{name}"
        );
        let (code, out) = vecbox(&["check", bin.to_str().unwrap()]);
        assert!(code == 0 && out.contains("OK"), "{out}");
    }
    // Bad files are refused with the instruction index.
    let ret = insn::to_uml_binary(&[i(6, 0, 0, 0)]);
    for (bytes, needle) in [
        (ret[..7].to_vec(), "7 bytes is not a whole number"),
        (
            insn::to_uml_binary(&[i(0x15, 0, 7, 1), i(6, 0, 0, 0)]),
            "instruction 0",
        ),
        (
            insn::to_uml_binary(&[i(6, 0, 0, 0), i(0xc7, 0, 0, 0), i(6, 0, 0, 0)]),
            "instruction 1",
        ),
        (ret.repeat(4097), "4097 instructions"),
    ] {
        std::fs::write(f("bad.bin"), bytes).unwrap();
        let (code, out) = vecbox(&["check", &f("bad.bin")]);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(needle), "{out}");
    }
    std::fs::write(f("back.bpf"), "a: ret #0\n  ja a\n").unwrap();
    let (code, out) = vecbox(&["check", &f("back.bpf")]);
    assert!(
        code == 2 && out.contains("back.bpf:2:3") && out.contains("backwards"),
        "{out}"
    );
    // `test` over a capture written by tshark (pcapng).
    let fr = frames();
    let refs: Vec<&[u8]> = fr.iter().map(Vec::as_slice).collect();
    std::fs::write(f("in.pcap"), filter::pcap::write(&refs)).unwrap();
    run(&[
        "tshark",
        "-r",
        &f("in.pcap"),
        "-F",
        "pcapng",
        "-w",
        &f("cap.pcapng"),
    ]);
    let bin = bpf_dir().join("drop-ipv6.bin");
    let (code, out) = vecbox(&["test", bin.to_str().unwrap(), "--pcap", &f("cap.pcapng")]);
    let v6 = fr.iter().filter(|x| x[12..14] == [0x86, 0xdd]).count();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{} of {} frames pass", fr.len() - v6, fr.len())),
        "{out}"
    );
    assert!(out.contains("frame 3: 70 bytes: drop"), "{out}");
}

/// IPv6 counter `key` of the stack of `ns` on `dev` (/proc/net/dev_snmp6/DEV);
/// panics when it cannot be read.
fn snmp6(lab: &Lab, ns: &str, dev: &str, key: &str) -> u64 {
    let out = lab.exec(ns, &["cat", &format!("/proc/net/dev_snmp6/{dev}")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dev_snmp6 of {dev} in {ns}: {text}");
    text.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(key)).then(|| f.next()).flatten()
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} for {dev} in {ns}:\n{text}"))
}

/// IPv6 packets the stack of `ns` received on `dev`.
fn ip6_in(lab: &Lab, ns: &str, dev: &str) -> u64 {
    snmp6(lab, ns, dev, "Ip6InReceives")
}

/// Neighbour solicitations the stack of `ns` sent on `dev` (what a ping to an
/// unresolved IPv6 neighbour sends).
fn ip6_solicits(lab: &Lab, ns: &str, dev: &str) -> u64 {
    snmp6(lab, ns, dev, "Icmp6OutNeighborSolicits")
}

#[test]
fn filters_on_raw_and_tap_ports_drop_ipv6() {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    lab.veth(&a, "a0", &b, "ga");
    lab.quiet(&b, "ga");
    run(&[
        "ip",
        "netns",
        "exec",
        &b,
        "sysctl",
        "-qw",
        "net.ipv4.conf.ga.arp_ignore=8",
    ]);
    lab.addr(&a, "a0", "10.74.0.1/24");
    run(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        "fd00:74::1/64",
        "dev",
        "a0",
        "nodad",
    ]);
    let bin = bpf_dir().join("drop-ipv6.bin");
    let g = Guest::start(
        &lab,
        &b,
        "xconnect",
        &[
            &format!("vec0:transport=raw,ifname=ga,bpffile={}", bin.display()),
            &format!("vec1:transport=tap,ifname=tb,bpffile={}", bin.display()),
        ],
    );
    lab.addr(&b, "tb", "10.74.0.2/24");
    run(&[
        "ip",
        "-n",
        &b,
        "addr",
        "add",
        "fd00:74::2/64",
        "dev",
        "tb",
        "nodad",
    ]);
    assert!(lab.ping(&a, "10.74.0.2", 2), "IPv4 passes both filters");
    // A's IPv6 (neighbour solicitations for fd00:74::2) reaches the guest's port and
    // never comes out of the tap: the kernel ran port 0's filter.
    // The guest's port is read before A's and after it (below): A's own IPv6
    // (router solicitations, MLD) may go out between two reads, and then counts at
    // the port only, never in `sent` alone.
    let ga_rx = lab.counter(&b, "ga", "rx_packets");
    let (a_tx, tb_v6) = (lab.counter(&a, "a0", "tx_packets"), ip6_in(&lab, &b, "tb"));
    assert!(!lab.ping(&a, "fd00:74::2", 2), "IPv6 is dropped");
    let sent = lab.counter(&a, "a0", "tx_packets") - a_tx;
    assert!(sent >= 1, "A sent its IPv6 frames");
    assert!(
        lab.counter(&b, "ga", "rx_packets") - ga_rx >= sent,
        "A's {sent} frames arrived at the guest's port"
    );
    assert_eq!(ip6_in(&lab, &b, "tb"), tb_v6, "no IPv6 came out of the tap");
    // B's IPv6 into the tap is dropped by vecbox (counted below) and never reaches A.
    let (b_ns, a_v6) = (ip6_solicits(&lab, &b, "tb"), ip6_in(&lab, &a, "a0"));
    assert!(!lab.ping(&b, "fd00:74::1", 2), "IPv6 is dropped");
    assert!(
        ip6_solicits(&lab, &b, "tb") > b_ns,
        "B sent its IPv6 frames"
    );
    assert_eq!(ip6_in(&lab, &a, "a0"), a_v6, "no IPv6 reached A");
    let r = g.stop();
    // Port 1 is a tap: vecbox ran the program itself and counted what it dropped.
    assert!(port_drops(&r, 1, "filtered") >= 2, "{r}");
    // Port 0's filter runs in the kernel: no IPv6 frame reached vecbox at all, not even
    // A's MLD reports while the port was opening (its socket is bound only once the
    // filter is on), so every frame port 0 received went out of the tap. A sends no
    // IPv4 before the first ping, when the tap is up.
    assert_eq!(
        port_stat(&r, 1, "tx_packets"),
        port_stat(&r, 0, "rx_packets"),
        "{r}"
    );
}

#[test]
fn hybrid_port_runs_the_filter_behind_its_direction_check() {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    lab.veth(&a, "a0", &b, "ga");
    lab.quiet(&b, "ga");
    run(&[
        "ip",
        "netns",
        "exec",
        &b,
        "sysctl",
        "-qw",
        "net.ipv4.conf.ga.arp_ignore=8",
    ]);
    lab.addr(&a, "a0", "10.75.0.1/24");
    run(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        "fd00:75::1/64",
        "dev",
        "a0",
        "nodad",
    ]);
    let bin = bpf_dir().join("drop-ipv6.bin");
    let g = Guest::start(
        &lab,
        &b,
        "xconnect",
        &[
            "vec0:transport=raw,ifname=ga",
            &format!("vec1:transport=hybrid,ifname=tb,bpffile={}", bin.display()),
        ],
    );
    lab.addr(&b, "tb", "10.75.0.2/24");
    run(&[
        "ip",
        "-n",
        &b,
        "addr",
        "add",
        "fd00:75::2/64",
        "dev",
        "tb",
        "nodad",
    ]);
    assert!(lab.ping(&a, "10.75.0.2", 2), "IPv4 passes, nothing loops");
    let (b_ns, a_v6) = (ip6_solicits(&lab, &b, "tb"), ip6_in(&lab, &a, "a0"));
    assert!(
        !lab.ping(&b, "fd00:75::1", 2),
        "IPv6 from B is dropped by the filter"
    );
    assert!(
        ip6_solicits(&lab, &b, "tb") > b_ns,
        "B sent its IPv6 frames"
    );
    assert_eq!(ip6_in(&lab, &a, "a0"), a_v6, "no IPv6 reached A");
    let r = g.stop();
    // vecbox's own writes into the tap never come back: port 1 received only B's frames.
    assert!(
        port_stat(&r, 1, "rx_packets") < port_stat(&r, 1, "tx_packets") + 50,
        "{r}"
    );
    // (A frame from A may reach the tap before the test brings it up: the kernel refuses
    // it and it is counted as link_down; that race is the test's, not the filter's.)
    assert_eq!(
        port_drops(&r, 1, "filtered"),
        0,
        "kernel filters count nothing in vecbox: {r}"
    );
}

/// Debian's UML kernel has no IPv6, so the UML test filters by MAC: the own-MAC
/// template instantiated for the host's MAC on one port (nothing from the host gets in),
/// the shipped drop-ipv6 filter on the other (IPv4 still works).
#[test]
fn uml_guest_loads_a_vecbox_compiled_bpffile() {
    let mut lab = Lab::new();
    let u = lab.ns("u");
    let h = lab.ns("h");
    lab.veth(&u, "ua0", &h, "h0");
    lab.veth(&u, "ua1", &h, "h1");
    lab.quiet(&u, "ua0");
    lab.quiet(&u, "ua1");
    // h0 sends nothing of its own (no IPv6): what it sends are its ARP answers.
    lab.quiet(&h, "h0");
    lab.addr(&h, "h0", "10.73.0.2/24");
    lab.addr(&h, "h1", "10.73.1.2/24");
    // Instantiate the template for h0's MAC.
    let mac: Vec<u8> = lab
        .mac(&h, "h0")
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    let src = std::fs::read_to_string(bpf_dir().join("own-mac-echo.bpf"))
        .unwrap()
        .replace(
            "#0x00123456",
            &format!(
                "#0x{:02x}{:02x}{:02x}{:02x}",
                mac[2], mac[3], mac[4], mac[5]
            ),
        )
        .replace("#0x5254", &format!("#0x{:02x}{:02x}", mac[0], mac[1]));
    let tmpl = common::lab_file(&lab, "h0-mac.bpf");
    std::fs::write(&tmpl, src).unwrap();
    let mac_bin = common::lab_file(&lab, "h0-mac.bin");
    let v6_bin = common::lab_file(&lab, "drop-ipv6.bin");
    let shipped = bpf_dir().join("drop-ipv6.bpf");
    for (input, output) in [(tmpl.as_path(), &mac_bin), (shipped.as_path(), &v6_bin)] {
        let (code, out) = vecbox(&[
            "asm",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}");
    }
    let script = "\
ip link set vec0 up\nip link set vec1 up\n\
ip addr add 10.73.0.1/24 dev vec0\nip addr add 10.73.1.1/24 dev vec1\n\
if ping -c 2 -W 2 10.73.0.2 >/dev/null; then echo MAC-FILTERED-OK; else echo MAC-FILTERED-FAIL; fi\n\
echo VEC0-RX=$(cat /sys/class/net/vec0/statistics/rx_packets)\n\
echo VEC0-TX=$(cat /sys/class/net/vec0/statistics/tx_packets)\n\
if ping -c 2 -W 2 10.73.1.2 >/dev/null; then echo V6-FILTERED-V4-OK; else echo V6-FILTERED-V4-FAIL; fi\n\
echo VEC1-RX=$(cat /sys/class/net/vec1/statistics/rx_packets)";
    let spec0 = format!(
        "vec0:transport=raw,ifname=ua0,bpffile={}",
        mac_bin.display()
    );
    let spec1 = format!("vec1:transport=raw,ifname=ua1,bpffile={}", v6_bin.display());
    let (h0_rx, h0_tx) = (
        lab.counter(&h, "h0", "rx_packets"),
        lab.counter(&h, "h0", "tx_packets"),
    );
    let mut uml = common::uml::Uml::boot(&lab, &u, &[&spec0, &spec1], script);
    let log = uml.log.join("\n");
    uml.stop();
    let rx_of = |tag: &str| -> u64 {
        log.lines()
            .find_map(|l| l.trim().strip_prefix(tag))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {tag} in the UML log:\n{log}"))
    };
    // h0 got UML's ARP requests and answered them; the filter let none of its frames
    // into UML's vec0 (whose raw socket receives only the echo of what UML itself
    // sent: UML sets no PACKET_IGNORE_OUTGOING), while vec1 received h1's answers.
    assert!(
        lab.counter(&h, "h0", "rx_packets") > h0_rx,
        "UML's ARP requests reached h0:\n{log}"
    );
    assert!(
        lab.counter(&h, "h0", "tx_packets") > h0_tx,
        "h0 answered UML's ARP requests:\n{log}"
    );
    assert!(rx_of("VEC0-TX=") >= 1, "UML sent ARP requests:\n{log}");
    assert_eq!(
        rx_of("VEC0-RX="),
        rx_of("VEC0-TX="),
        "frames from h0's MAC got in:\n{log}"
    );
    assert!(rx_of("VEC1-RX=") > 0, "h1's IPv4 answers got in:\n{log}");
    assert!(
        !log.contains("Failed to attach filter"),
        "UML refused a file:\n{log}"
    );
    assert!(
        log.contains("MAC-FILTERED-FAIL"),
        "frames from h0's MAC are dropped:\n{log}"
    );
    assert!(
        log.contains("V6-FILTERED-V4-OK"),
        "IPv4 passes drop-ipv6:\n{log}"
    );
}

/// A packet socket opened for every protocol receives from every interface, unfiltered,
/// until it is bound: vecbox opens receive sockets unbound (protocol 0), puts options
/// and filters on, and binds last. Here an unbound socket misses a datagram crossing
/// `lo`; once bound with the shipped drop-ipv6 filter it misses an IPv6 datagram and
/// sees an IPv4 one. Runs in a fresh network namespace of the test's thread.
#[test]
fn packet_sockets_receive_nothing_until_bound_and_filtered() {
    use vecbox::sys::packet;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET): run as root");
    run(&["ip", "link", "set", "lo", "up"]);
    let lo = vecbox::sys::sock::ifindex("lo").unwrap();
    let v4 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let v6 = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let rx = packet::unbound().unwrap();
    let queued = |fd: &std::os::fd::OwnedFd| {
        let s = socket2::SockRef::from(fd);
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
        let mut n = 0;
        while s.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    // Each datagram is read back by its own socket before the packet socket is checked:
    // by then `lo` has shown both copies (outgoing and incoming) to packet sockets.
    let through = |s: &std::net::UdpSocket, what: &[u8]| {
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.send_to(what, s.local_addr().unwrap()).unwrap();
        let mut b = [0u8; 64];
        assert_eq!(s.recv(&mut b).expect("datagram lost on lo"), what.len());
    };
    through(&v4, b"before bind");
    assert_eq!(queued(&rx), 0, "an unbound socket queued a frame");
    let prog = filter::Program::load(&bpf_dir().join("drop-ipv6.bin")).unwrap();
    packet::attach_filter(rx.as_fd(), prog.insns()).unwrap();
    packet::bind(rx.as_fd(), lo, packet::ETH_P_ALL).unwrap();
    through(&v6, b"IPv6, filtered");
    assert_eq!(queued(&rx), 0, "the filter let IPv6 through");
    through(&v4, b"IPv4");
    // lo shows each datagram twice to packet sockets (outgoing and incoming).
    assert!(queued(&rx) >= 1, "a bound socket saw nothing");
}

const V4: [u8; 2] = [0x08, 0x00];
const V6: [u8; 2] = [0x86, 0xdd];

/// Two bess listeners, `in.sock` (vec0, with `vec0_opts`) and `out.sock` (vec1), on an
/// xconnect guest; a sink connected to vec1 and accepted. Returns (guest, umid, path of
/// in.sock, sink).
fn bess_pair(lab: &mut Lab, vec0_opts: &str) -> (Guest, String, PathBuf, socket2::Socket) {
    let ns = lab.ns("g");
    let umid = format!("{}-bf", lab.tag);
    let inp = lab_file(lab, "in.sock");
    let out = lab_file(lab, "out.sock");
    let g = Guest::start(
        lab,
        &ns,
        "xconnect",
        &[
            &format!("umid={umid}"),
            &format!("vec0:transport=bess,listen={}{vec0_opts}", inp.display()),
            &format!("vec1:transport=bess,listen={}", out.display()),
        ],
    );
    // The sink's connection is up once vec1 has read a frame from it.
    let sink = seqpacket_to(&out);
    wait_until(
        || console_rx(&umid, "vec1") > 0,
        "vec1 accepted the sink",
        || {
            sink.send(&tagged(V4, 0)).unwrap();
        },
    );
    (g, umid, inp, sink)
}

fn seqpacket_to(path: &Path) -> socket2::Socket {
    try_seqpacket_to(path).expect("bess listener refused the connection")
}

/// A SOCK_SEQPACKET connection to `path`, `None` if nobody listens there.
fn try_seqpacket_to(path: &Path) -> Option<socket2::Socket> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    s.connect(&SockAddr::unix(path).unwrap()).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    Some(s)
}

/// A 64-byte broadcast frame of `ethertype` whose source MAC ends in `tag`.
fn tagged(ethertype: [u8; 2], tag: u8) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x76, tag]);
    f[12..14].copy_from_slice(&ethertype);
    f
}

/// Poll `done` (running `each` before every check) for up to 10 s.
fn wait_until(done: impl Fn() -> bool, what: &str, each: impl Fn()) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        each();
        if done() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// (tag, ethertype) of up to `n` frames read from `sink` within 10 s.
fn read_tagged(sink: &socket2::Socket, n: usize) -> Vec<(u8, [u8; 2])> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Ok(k) = std::io::Read::read(&mut &*sink, &mut buf)
            && k >= 14
        {
            got.push((buf[11], [buf[12], buf[13]]));
        }
    }
    got
}

/// A bess peer may send before vecbox has accepted it and put the filter on the
/// connection; vecbox filters those frames itself. The guest is stopped (console
/// `stop`) while the peer connects and sends, so all of them are queued before the
/// filter is attached: the IPv4 frames come out of the other port, the IPv6 ones are
/// counted as `filtered`. Frames sent afterwards are filtered by the kernel.
#[test]
fn bess_connection_is_filtered_from_its_first_frame() {
    let mut lab = Lab::new();
    let bin = bpf_dir().join("drop-ipv6.bin");
    let (g, umid, inp, sink) = bess_pair(&mut lab, &format!(",bpffile={}", bin.display()));
    assert_eq!(vecbox_console(&umid, &["stop"]).0, 0);
    let peer = seqpacket_to(&inp);
    for tag in 1..=10u8 {
        peer.send(&tagged(if tag % 2 == 0 { V6 } else { V4 }, tag))
            .unwrap();
    }
    assert_eq!(vecbox_console(&umid, &["go"]).0, 0);
    // Once vec0 read the queued frames, send more: the kernel filters those.
    wait_until(|| console_rx(&umid, "vec0") >= 5, "vec0 read", || {});
    for tag in 11..=14u8 {
        peer.send(&tagged(if tag % 2 == 0 { V6 } else { V4 }, tag))
            .unwrap();
    }
    let got = read_tagged(&sink, 7);
    let r = g.stop();
    let tags: Vec<u8> = got.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, [1, 3, 5, 7, 9, 11, 13], "{r}");
    assert!(got.iter().all(|(_, et)| *et == V4), "{got:?}");
    // vecbox dropped the five queued before the filter; the kernel dropped the others.
    assert_eq!(port_drops(&r, 0, "filtered"), 5, "{r}");
    assert_eq!(port_stat(&r, 0, "rx_packets"), 7, "{r}");
}

/// A filter loaded from the console onto a bess port stays for the next peer.
#[test]
fn console_filter_on_a_bess_port_outlives_the_connection() {
    let mut lab = Lab::new();
    let (g, umid, inp, sink) = bess_pair(&mut lab, ",bpfflash=1");
    let first = seqpacket_to(&inp);
    first.send(&tagged(V6, 1)).unwrap();
    assert_eq!(read_tagged(&sink, 1), [(1, V6)], "no filter yet");
    let bin = bpf_dir().join("drop-ipv6.bin");
    let (rc, out) = vecbox_console(&umid, &["bpf", "vec0", bin.to_str().unwrap()]);
    assert_eq!(rc, 0, "{out}");
    drop(first);
    // vecbox listens again once it has seen the peer go.
    let second = std::cell::RefCell::new(None);
    wait_until(
        || second.borrow().is_some(),
        "vec0 listens again",
        || {
            if second.borrow().is_none() {
                *second.borrow_mut() = try_seqpacket_to(&inp);
            }
        },
    );
    let second = second.into_inner().unwrap();
    for tag in 2..=5u8 {
        second
            .send(&tagged(if tag % 2 == 0 { V6 } else { V4 }, tag))
            .unwrap();
    }
    let got = read_tagged(&sink, 2);
    let r = g.stop();
    assert_eq!(got, [(3, V4), (5, V4)], "{r}");
    assert_eq!(port_stat(&r, 0, "peer_connects"), 2, "{r}");
}
