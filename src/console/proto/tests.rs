use super::*;
use proptest::prelude::*;

/// `uml_mconsole version` as the stock client sends it (x86_64, little endian).
fn fixture_version() -> Vec<u8> {
    let mut v = vec![0xbe, 0xba, 0xfe, 0xca, 2, 0, 0, 0, 7, 0, 0, 0];
    v.extend_from_slice(b"version");
    v.resize(REQUEST_LEN, 0);
    v
}

#[test]
fn request_fixture_round_trips() {
    let f = fixture_version();
    assert_eq!(encode_request("version").to_vec(), f);
    let r = decode_request(&f).unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(r.text, b"version");
}

#[test]
fn request_errors_in_uml_order() {
    let mut f = fixture_version();
    // Magic is checked first, even before the length.
    f[0] = 0;
    f[8..12].copy_from_slice(&600u32.to_ne_bytes());
    assert_eq!(decode_request(&f), Err(RequestError::BadMagic));
    assert_eq!(decode_request(&[]), Err(RequestError::BadMagic));
    assert_eq!(decode_request(b"help"), Err(RequestError::BadMagic));
    let mut f = fixture_version();
    f[8..12].copy_from_slice(&512u32.to_ne_bytes());
    assert_eq!(decode_request(&f), Err(RequestError::TooLarge(512)));
    f[8..12].copy_from_slice(&u32::MAX.to_ne_bytes());
    assert_eq!(decode_request(&f), Err(RequestError::TooLarge(u32::MAX)));
    // 511 is the longest text.
    f[8..12].copy_from_slice(&511u32.to_ne_bytes());
    assert!(decode_request(&f).is_ok());
    // Too short for the header, or for its own length.
    let f = fixture_version();
    assert_eq!(
        decode_request(&f[..8]),
        Err(RequestError::Truncated { got: 8, want: 12 })
    );
    assert_eq!(
        decode_request(&f[..15]),
        Err(RequestError::Truncated { got: 15, want: 19 })
    );
    // Exactly 12 + len bytes, no NUL: accepted (UML terminates at data[len] itself).
    assert_eq!(decode_request(&f[..19]).unwrap().text, b"version");
    // A version other than 2 is reported but decoded.
    let mut f = fixture_version();
    f[4] = 1;
    assert_eq!(decode_request(&f).unwrap().version, 1);
}

#[test]
fn text_stops_at_len_and_at_the_first_nul() {
    let mut f = fixture_version();
    f[8..12].copy_from_slice(&4u32.to_ne_bytes());
    assert_eq!(decode_request(&f).unwrap().text, b"vers");
    let mut f = fixture_version();
    f[HEADER + 3] = 0;
    assert_eq!(decode_request(&f).unwrap().text, b"ver");
    // Over-long datagrams: the bytes after the 524 are ignored.
    let mut f = fixture_version();
    f.extend_from_slice(&[b'x'; 100]);
    assert_eq!(decode_request(&f).unwrap().text, b"version");
}

#[test]
fn encode_request_cuts_at_511() {
    let long = "log ".to_string() + &"a".repeat(600);
    let r = encode_request(&long);
    assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 511);
    assert_eq!(r[HEADER + 511], 0);
    assert_eq!(decode_request(&r).unwrap().text.len(), 511);
}

fn packets(err: u32, text: &[u8], more_last: bool) -> Vec<Vec<u8>> {
    let mut buf = [0u8; REPLY_MAX];
    let mut out = Vec::new();
    encode_reply(err, text, more_last, &mut buf, |p| out.push(p.to_vec()));
    out
}

#[test]
fn reply_fixtures() {
    // "" → one packet: err, more=0, len=1, "\0".
    assert_eq!(
        packets(0, b"", false),
        vec![vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]]
    );
    // "Unknown command", err=1.
    let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0];
    want.extend_from_slice(b"Unknown command\0");
    assert_eq!(packets(1, b"Unknown command", false), vec![want]);
    // "\n" with more=1, as `proc` starts.
    assert_eq!(
        packets(0, b"\n", true),
        vec![vec![0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'\n', 0]]
    );
}

#[test]
fn replies_split_at_511_with_err_only_first() {
    let text = vec![b'z'; 1200];
    let p = packets(7, &text, false);
    assert_eq!(p.len(), 3);
    let d: Vec<Reply> = p.iter().map(|x| decode_reply(x).unwrap()).collect();
    assert_eq!(
        d.iter()
            .map(|r| (r.err, r.more, r.text.len()))
            .collect::<Vec<_>>(),
        vec![(7, true, 511), (0, true, 511), (0, false, 178)]
    );
    assert_eq!(p[0].len(), REPLY_MAX);
    // Exactly 511 bytes fit in one packet.
    assert_eq!(packets(0, &text[..511], false).len(), 1);
    assert_eq!(packets(0, &text[..512], false).len(), 2);
}

#[test]
fn reply_decoding_errors() {
    assert_eq!(decode_reply(&[0; 5]), Err(ReplyError::Short(5)));
    assert_eq!(
        decode_reply(VERSION0_REPLY.as_bytes()),
        Err(ReplyError::Raw(VERSION0_REPLY.into()))
    );
    // A len larger than the datagram is cut to what arrived.
    let mut p = vec![0, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0];
    p.extend_from_slice(b"ab");
    assert_eq!(decode_reply(&p).unwrap().text, b"ab");
}

proptest! {
    #[test]
    fn decode_request_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        if let Ok(r) = decode_request(&bytes) {
            prop_assert!(r.text.len() < MAX_DATA);
            prop_assert!(!r.text.contains(&0));
        }
    }

    #[test]
    fn decode_request_never_panics_with_valid_magic(
        version in any::<u32>(),
        len in prop_oneof![0u32..600, any::<u32>()],
        data in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut d = Vec::new();
        d.extend_from_slice(&MAGIC.to_ne_bytes());
        d.extend_from_slice(&version.to_ne_bytes());
        d.extend_from_slice(&len.to_ne_bytes());
        d.extend_from_slice(&data);
        match decode_request(&d) {
            Ok(r) => {
                prop_assert_eq!(r.version, version);
                prop_assert!(r.text.len() <= len as usize);
            }
            Err(RequestError::TooLarge(l)) => prop_assert!(l as usize >= MAX_DATA),
            Err(RequestError::Truncated { got, want }) => prop_assert!(got < want),
            Err(RequestError::BadMagic) => prop_assert!(false),
        }
    }

    #[test]
    fn request_round_trip(text in "[ -~]{0,600}") {
        let r = encode_request(&text);
        let d = decode_request(&r).unwrap();
        let n = text.len().min(CHUNK);
        prop_assert_eq!(d.text, &text.as_bytes()[..n]);
    }

    #[test]
    fn reply_round_trip(err in any::<u32>(), text in proptest::collection::vec(1u8..=255, 0..3000), more_last: bool) {
        let p = packets(err, &text, more_last);
        prop_assert_eq!(p.len(), text.len().div_ceil(CHUNK).max(1));
        let mut joined = Vec::new();
        for (i, pkt) in p.iter().enumerate() {
            prop_assert!(pkt.len() <= REPLY_MAX);
            let r = decode_reply(pkt).unwrap();
            prop_assert_eq!(r.err, if i == 0 { err } else { 0 });
            prop_assert_eq!(r.more, i + 1 < p.len() || more_last);
            joined.extend_from_slice(&r.text);
        }
        prop_assert_eq!(joined, text);
    }

    #[test]
    fn decode_reply_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = decode_reply(&bytes);
    }
}
