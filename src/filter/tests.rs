use proptest::prelude::*;

use super::insn::{self, disassemble, to_comma, to_dd, to_ddd, to_uml_binary};
use super::interp::{Meta, PACKET_HOST, run};
use super::text::{self, TextForm, parse};
use super::validate::{ValidateError, validate};
use super::*;

const DROP_IPV6_BIN: &[u8] = include_bytes!("../../bpf/drop-ipv6.bin");
const ARP_V4_BIN: &[u8] = include_bytes!("../../bpf/allow-only-arp-and-ipv4.bin");
const DNS_BIN: &[u8] = include_bytes!("../../bpf/drop-udp-port-53.bin");
const OWN_MAC_BIN: &[u8] = include_bytes!("../../bpf/own-mac-echo.bin");
const SHIPPED: &[(&str, &str, &[u8])] = &[
    (
        "drop-ipv6",
        include_str!("../../bpf/drop-ipv6.bpf"),
        DROP_IPV6_BIN,
    ),
    (
        "allow-only-arp-and-ipv4",
        include_str!("../../bpf/allow-only-arp-and-ipv4.bpf"),
        ARP_V4_BIN,
    ),
    (
        "drop-udp-port-53",
        include_str!("../../bpf/drop-udp-port-53.bpf"),
        DNS_BIN,
    ),
    (
        "own-mac-echo",
        include_str!("../../bpf/own-mac-echo.bpf"),
        OWN_MAC_BIN,
    ),
];

fn i(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

fn verdict(bin: &[u8], frame: &[u8]) -> u32 {
    let p = decode_uml_binary(bin).unwrap();
    run(&p, frame, &Meta::ethernet(frame, PACKET_HOST))
}

/// An Ethernet frame: IPv4/IPv6 UDP or TCP, or an ARP request.
fn frame(kind: &str, sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    match kind {
        "udp4" => b
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(sport, dport)
            .write(&mut v, &[1; 20]),
        "tcp4" => b
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(sport, dport, 1, 100)
            .write(&mut v, &[1; 20]),
        "udp6" => b
            .ipv6([1; 16], [2; 16], 64)
            .udp(sport, dport)
            .write(&mut v, &[1; 20]),
        _ => {
            v.extend_from_slice(&[0xff; 6]);
            v.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
            v.extend_from_slice(&[0x08, 0x06]);
            v.extend_from_slice(&[0; 28]);
            Ok(())
        }
    }
    .unwrap();
    v
}

#[test]
fn shipped_filters_match_their_sources_and_round_trip() {
    for (name, src, bin) in SHIPPED {
        let prog = parse(src).unwrap_or_else(|e| panic!("{name}: {e}"));
        validate(&prog).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            &to_uml_binary(&prog)[..],
            *bin,
            "{name}: .bin is stale; run vecbox bpf asm"
        );
        // Every text form reads back to the same program.
        for form in [
            disassemble(&prog),
            to_dd(&prog),
            to_ddd(&prog),
            to_comma(&prog),
        ] {
            assert_eq!(parse(&form).unwrap(), prog, "{name}:\n{form}");
        }
    }
}

#[test]
fn shipped_filters_behave() {
    let v6 = frame("udp6", 1000, 2000);
    let v4 = frame("udp4", 1000, 2000);
    let arp = frame("arp", 0, 0);
    assert_eq!(verdict(DROP_IPV6_BIN, &v6), 0);
    assert_eq!(verdict(DROP_IPV6_BIN, &v4), ACCEPT);
    assert_eq!(verdict(ARP_V4_BIN, &arp), ACCEPT);
    assert_eq!(verdict(ARP_V4_BIN, &v4), ACCEPT);
    assert_eq!(verdict(ARP_V4_BIN, &v6), 0);
    for (kind, s, d, pass) in [
        ("udp4", 53, 1000, false),
        ("udp4", 1000, 53, false),
        ("udp4", 1000, 54, true),
        ("tcp4", 1000, 53, true),
        ("udp6", 53, 9, false),
        ("udp6", 9, 53, false),
        ("udp6", 9, 9, true),
    ] {
        assert_eq!(
            verdict(DNS_BIN, &frame(kind, s, d)) != 0,
            pass,
            "{kind} {s}->{d}"
        );
    }
    let mut mine = v4.clone();
    mine[6..12].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(verdict(OWN_MAC_BIN, &mine), 0);
    assert_eq!(verdict(OWN_MAC_BIN, &v4), ACCEPT);
    assert_eq!(
        decode_uml_binary(OWN_MAC_BIN).unwrap(),
        own_mac_filter([0x52, 0x54, 0, 0x12, 0x34, 0x56]).to_vec(),
        "the template is UML's default filter"
    );
}

#[test]
fn text_forms_are_detected() {
    assert_eq!(text::detect("{ 0x28, 0, 0, 0x0000000c },"), TextForm::Dd);
    assert_eq!(text::detect("4\n40 0 0 12\n"), TextForm::Ddd);
    assert_eq!(text::detect("1,6 0 0 0,"), TextForm::Comma);
    assert_eq!(text::detect("; c\n ldh [12]"), TextForm::Asm);
    let p = parse("1,6 0 0 65535,").unwrap();
    assert_eq!(p, vec![i(0x06, 0, 0, 65535)]);
}

#[test]
fn asm_covers_every_addressing_mode() {
    let src = "\
        ld #len\n ld #0x10\n ld M[1]\n ld [4]\n ld [x + 2]\n ldh [%x+2]\n ldb [1]\n ld #proto\n ldb #type\n\
        ldx #7\n ldxi 7\n ldx #len\n ldx M[1]\n ldxb 4*([14]&0xf)\n st M[1]\n stx M[2]\n\
        add #1\n sub x\n mul #2\n div #3\n mod x\n and #1\n or #2\n xor x\n lsh #3\n rsh #4\n neg\n tax\n txa\n\
        jeq #1, a, b\n a: jneq #1, b\n jlt x, b\n jle #2, b, c\n b: jgt #3, c\n jge x, c\n c: jset #4, d, d\n ja d\n d: ret a\n ret #-1";
    let p = parse(src).unwrap();
    assert_eq!(p[0], i(0x80, 0, 0, 0));
    assert_eq!(p[4], i(0x40, 0, 0, 2));
    assert_eq!(p[7], i(0x20, 0, 0, insn::AD_OFF));
    assert_eq!(p[8], i(0x30, 0, 0, insn::AD_OFF + 4));
    assert_eq!(p[13], i(0xb1, 0, 0, 14));
    // jneq swaps: equal falls through to the next instruction, else jumps to b.
    assert_eq!(p[30], i(0x15, 0, 2, 1));
    // jlt x, b  ==  jge x, next, b
    assert_eq!(p[31], i(0x3d, 0, 1, 0));
    assert_eq!(p.last().unwrap(), &i(0x06, 0, 0, u32::MAX));
    assert_eq!(parse(&disassemble(&p)).unwrap(), p, "dump reads back");
}

#[test]
fn asm_errors_point_at_line_and_column_and_suggest() {
    for (src, needle) in [
        (
            "ldh [12]\n   jeqq #1, a\n",
            "2:4: unknown instruction `jeqq`; did you mean `jeq`?",
        ),
        (
            "ldh [12]\njeq #1, pss\npass: ret #0",
            "no label `pss`; did you mean `pass`?",
        ),
        ("a: ret #0\nja a\n", "backwards"),
        ("ret x", "txa"),
        ("ld [zz]", "not understood"),
        ("a: ret #0\na: ret #0", "defined twice"),
        ("{ 0x28, 0, 0, 0x1000000000 },", "1:15: k"),
        ("2\n6 0 0 0\n", "says 2"),
    ] {
        let e = parse(src).unwrap_err().to_string();
        assert!(e.contains(needle), "{src:?}: {e}");
    }
}

#[test]
fn validation_names_the_instruction() {
    let ret = i(0x06, 0, 0, 0);
    let cases: Vec<(Vec<SockFilter>, &str)> = vec![
        (vec![], "empty"),
        (vec![ret; 4097], "4097 instructions"),
        (vec![i(0x15, 5, 0, 1), ret], "instruction 0 "),
        (vec![ret, i(0x05, 0, 0, 3), ret], "instruction 1 "),
        (vec![i(0xff, 0, 0, 0), ret], "unknown opcode 0xff"),
        (vec![i(0x28, 0, 0, 12)], "last instruction must be a return"),
        (vec![i(0x60, 0, 0, 3), ret], "M[3] is read before"),
        (vec![i(0x02, 0, 0, 16), ret], "M[16]"),
        (vec![i(0x34, 0, 0, 0), ret], "division by the constant 0"),
        (vec![i(0x64, 0, 0, 32), ret], "shift by 32"),
        (
            vec![i(0x20, 0, 0, insn::AD_OFF + 100), ret],
            "unknown ancillary",
        ),
        (vec![i(0x0e, 0, 0, 0)], "unknown opcode"),
    ];
    for (p, needle) in cases {
        let e = validate(&p).unwrap_err().to_string();
        assert!(e.contains(needle), "{p:?}: {e}");
    }
    // A store on only one path makes the later load invalid.
    let p = vec![i(0x15, 0, 1, 1), i(0x02, 0, 0, 0), i(0x60, 0, 0, 0), ret];
    assert!(matches!(validate(&p), Err(ValidateError::At(pr)) if pr.index == 2));
}

#[test]
fn interpreter_edge_cases_follow_the_kernel() {
    let pkt = [0x12u8, 0x34, 0x56, 0x78, 0x9a];
    let m = Meta::ethernet(&pkt, PACKET_HOST);
    // Out-of-frame load ends with 0.
    assert_eq!(run(&[i(0x20, 0, 0, 2), i(0x16, 0, 0, 0)], &pkt, &m), 0);
    assert_eq!(
        run(&[i(0x20, 0, 0, 1), i(0x16, 0, 0, 0)], &pkt, &m),
        0x3456_789a
    );
    // Division by X = 0 returns 0.
    assert_eq!(
        run(
            &[i(0x00, 0, 0, 5), i(0x3c, 0, 0, 0), i(0x06, 0, 0, 9)],
            &pkt,
            &m
        ),
        0
    );
    // Shift by X uses the low 5 bits.
    let p = [
        i(0x00, 0, 0, 1),
        i(0x01, 0, 0, 33),
        i(0x6c, 0, 0, 0),
        i(0x16, 0, 0, 0),
    ];
    assert_eq!(run(&p, &pkt, &m), 2);
    // SKF_LL_OFF addresses the frame start; len; ancillary pkttype.
    assert_eq!(
        run(
            &[i(0x30, 0, 0, (-0x20_0000i32) as u32), i(0x16, 0, 0, 0)],
            &pkt,
            &m
        ),
        0x12
    );
    assert_eq!(run(&[i(0x80, 0, 0, 0), i(0x16, 0, 0, 0)], &pkt, &m), 5);
    let out = Meta::ethernet(&pkt, interp::PACKET_OUTGOING);
    assert_eq!(run(&drop_outgoing(), &pkt, &out), 0);
    assert_eq!(run(&drop_outgoing(), &pkt, &m), ACCEPT);
}

#[test]
fn hybrid_programs_run_behind_the_direction_check() {
    let user = Program::new(decode_uml_binary(DROP_IPV6_BIN).unwrap()).unwrap();
    let p = only_outgoing_then(&user).unwrap();
    let v4 = frame("udp4", 1, 2);
    let v6 = frame("udp6", 1, 2);
    let out = |f: &[u8]| Meta::ethernet(f, interp::PACKET_OUTGOING);
    assert_eq!(p.run(&v4, &out(&v4)), ACCEPT);
    assert_eq!(p.run(&v6, &out(&v6)), 0, "the user's program still applies");
    assert_eq!(
        p.run(&v4, &Meta::ethernet(&v4, PACKET_HOST)),
        0,
        "vecbox's own writes"
    );
}

#[test]
fn load_accepts_binary_and_text_files() {
    let dir = std::env::temp_dir().join(format!("vecbox-filter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("a.bin");
    std::fs::write(&bin, DROP_IPV6_BIN).unwrap();
    let txt = dir.join("a.ddd");
    std::fs::write(&txt, to_ddd(&decode_uml_binary(DROP_IPV6_BIN).unwrap())).unwrap();
    assert_eq!(Program::load(&bin).unwrap(), Program::load(&txt).unwrap());
    std::fs::write(&txt, "ldh [12]\njeq #1, x, y\n").unwrap();
    let e = Program::load(&txt).unwrap_err().to_string();
    assert!(e.contains("a.ddd:2:1: no label `x`"), "{e}");
    std::fs::write(&bin, to_uml_binary(&[i(0x15, 9, 0, 0), i(6, 0, 0, 0)])).unwrap();
    let e = Program::load(&bin).unwrap_err().to_string();
    assert!(e.contains("instruction 0"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pcap_reader_reads_what_it_writes() {
    let a = frame("udp4", 1, 2);
    let b = frame("arp", 0, 0);
    let file = pcap::write(&[&a, &b]);
    assert_eq!(pcap::frames(&file).unwrap(), vec![&a[..], &b[..]]);
    assert!(matches!(
        pcap::frames(&file[..30]),
        Err(pcap::PcapError::Truncated { .. })
    ));
    assert!(matches!(
        pcap::frames(b"hello world, not pcap"),
        Err(pcap::PcapError::Magic(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn text_parsers_never_panic(s in ".{0,200}") {
        let _ = parse(&s);
        let _ = text::parse_dd(&s);
        let _ = text::parse_ddd(&s);
        let _ = text::parse_comma(&s);
    }

    #[test]
    fn asm_like_text_never_panics(lines in prop::collection::vec(
        "(l[0-9]: )?(ld|ldh|ldb|ldx|jeq|ja|ret|st|add|jset) ?(#|\\[|M\\[)?(x ?\\+ ?)?[0-9a-fx]{0,5}\\]?(, ?l[0-9])?(, ?l[0-9])?", 0..12)) {
        let _ = parse(&lines.join("\n"));
    }

    #[test]
    fn binary_programs_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200),
                                   pkt in prop::collection::vec(any::<u8>(), 0..80)) {
        if let Some(p) = decode_uml_binary(&bytes)
            && validate(&p).is_ok() {
            let _ = run(&p, &pkt, &Meta::ethernet(&pkt, PACKET_HOST));
            let _ = disassemble(&p);
        }
    }

    #[test]
    fn pcap_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = pcap::frames(&bytes);
        let mut ng = vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a];
        ng.extend_from_slice(&bytes);
        let _ = pcap::frames(&ng);
    }
}
