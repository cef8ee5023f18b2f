//! Parsing, merging and printing settings; every bad input gives its message.

use super::super::error::ImpairError;
use super::super::params::{Change, Distribution, KEYS, Loss, Params};
use super::super::units::{Prob, QueueLimit};
use super::params;
use proptest::prelude::*;

fn err(words: &str) -> String {
    let c = Change::parse_words(words.split_whitespace());
    match c.and_then(|c| Params::default().apply(&c)) {
        Ok(p) => panic!("{words} accepted as {p}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_key_parses_and_prints_back() {
    let p = params(
        "delay=20ms jitter=1.5ms distribution=normal correlation=25% reorder_on_jitter=true \
         loss=gemodel:1%:10%:20%:99% duplicate=1% corrupt=0.1% reorder=5% gap=3 rate=10mbit \
         overhead=24 cell=53 cell_overhead=5 queue=50ms seed=7 down=true",
    );
    assert_eq!(p.delay, 20_000_000);
    assert_eq!(p.jitter, 1_500_000);
    assert_eq!(p.distribution, Distribution::Normal);
    assert_eq!(p.correlation, Prob(250_000_000));
    assert!(p.reorder_on_jitter && p.down);
    assert_eq!(p.rate, Some(10_000_000));
    assert_eq!(p.queue, QueueLimit::Time(50_000_000));
    assert_eq!(p.seed, Some(7));
    let text = p.to_string();
    assert_eq!(params(&text), p, "{text}");
    assert_eq!(p.pairs().len(), KEYS.len());
    assert_eq!(Params::default().to_string(), "none");
}

#[test]
fn bad_inputs_name_the_key_and_the_accepted_form() {
    let e = err("delay=-5ms");
    assert!(
        e.starts_with("delay: \"-5ms\" is negative; expected a duration"),
        "{e}"
    );
    assert!(e.contains("delay=20ms"), "{e}");
    let e = err("loss=150%");
    assert!(e.starts_with("loss: \"150%\" is above 100%"), "{e}");
    let e = err("rate=10 furlongs");
    assert!(
        e.starts_with("rate: \"10 furlongs\" has an unknown unit \"furlongs\""),
        "{e}"
    );
    assert!(e.contains("mbit"), "{e}");
    let e = err("jitter=5ms");
    assert_eq!(
        e,
        "jitter: needs delay (jitter spreads frames around the delay); e.g. delay=20ms jitter=5ms"
    );
    let e = err("dealy=5ms");
    assert!(
        e.starts_with(
            "unknown impairment key \"dealy\" (did you mean delay?); keys: delay, jitter"
        ),
        "{e}"
    );
    assert!(err("delay=1ms delay=2ms").contains("given twice"));
    assert!(err("queue=50ms").starts_with("queue: needs rate"));
    assert!(err("gap=3").starts_with("gap: needs reorder"));
    assert!(err("reorder=5%").starts_with("reorder: needs delay"));
    assert!(err("loss=state:80%:50%:60%").contains("p31 + p32 above 100%"));
    assert!(err("loss=bursty:1%").contains("unknown loss model"));
    let e = err("rate=10gbit delay=1s");
    assert!(e.contains("1251514000 bytes in flight"), "{e}");
    assert!(err("furlongs").contains("is not KEY=VALUE"));
    // Spec keys carry their prefix.
    let e = Change::parse_words(["delay=-5ms"])
        .unwrap_err()
        .prefixed("tx_");
    assert!(e.to_string().starts_with("tx_delay: "), "{e}");
    assert!(e.to_string().ends_with("e.g. tx_delay=20ms"), "{e}");
    let e = Change::parse_words(["dealy=1"])
        .unwrap_err()
        .prefixed("rx_");
    assert!(
        e.to_string()
            .contains("(did you mean rx_delay?); keys: rx_delay, rx_jitter"),
        "{e}"
    );
}

#[test]
fn a_change_keeps_what_it_does_not_name() {
    let p = params("delay=20ms jitter=5ms loss=1% rate=10mbit queue=100pkt");
    let c = Change::parse_words("loss=2%".split_whitespace()).unwrap();
    let q = p.apply(&c).unwrap();
    assert_eq!(q.loss, Loss::Random(Prob(20_000_000)));
    assert_eq!(
        (q.delay, q.jitter, q.rate, q.queue),
        (p.delay, p.jitter, p.rate, p.queue)
    );
    // `default` resets one key; the merged result must still be valid.
    let c = Change::parse_words("rate=default".split_whitespace()).unwrap();
    let e = p.apply(&c).unwrap_err();
    assert!(matches!(e, ImpairError::Needs { .. }), "{e}");
    let c = Change::parse_words("rate=default queue=default".split_whitespace()).unwrap();
    let q = p.apply(&c).unwrap();
    assert_eq!((q.rate, q.queue), (None, QueueLimit::default()));
    assert_eq!(q.delay, p.delay);
    let c = Change::replace_with(&Params::default());
    assert_eq!(p.apply(&c).unwrap(), Params::default());
}

fn arb_prob() -> impl Strategy<Value = Prob> {
    prop_oneof![Just(Prob::ZERO), (0u32..=1_000_000_000).prop_map(Prob)]
}

prop_compose! {
    fn arb_params()(
        delay in prop_oneof![Just(0u64), 1u64..60_000_000_000],
        jitter in 0u64..1_000_000_000,
        dist in 0usize..4,
        corr in arb_prob(),
        roj: bool,
        loss in arb_prob(),
        dup in arb_prob(),
        corrupt in arb_prob(),
        reorder in arb_prob(),
        gap in 1u32..100,
        rate in prop::option::of(1u64..10_000_000_000),
        ovh in -1024i32..1024,
        seed in prop::option::of(any::<u64>()),
        down: bool,
    ) -> Params {
        let mut p = Params { delay, ..Params::default() };
        if delay > 0 {
            p.jitter = jitter;
            p.reorder = reorder;
            if !reorder.is_zero() && gap > 1 { p.gap = gap; }
        }
        if p.jitter > 0 {
            p.distribution = Distribution::ALL[dist];
            p.correlation = corr;
        }
        p.reorder_on_jitter = roj;
        p.loss = Loss::Random(loss);
        p.duplicate = dup;
        p.corrupt = corrupt;
        p.rate = rate;
        if rate.is_some() { p.overhead = ovh; }
        p.seed = seed;
        p.down = down;
        p
    }
}

proptest! {
    #[test]
    fn printed_settings_parse_back(p in arb_params()) {
        prop_assume!(p.validate().is_ok());
        let text = p.to_string();
        let words: Vec<&str> = if text == "none" { vec![] } else { text.split(' ').collect() };
        let c = Change::parse_words(words).unwrap();
        prop_assert_eq!(Params::default().apply(&c).unwrap(), p);
    }

    #[test]
    fn arbitrary_words_never_panic(words in prop::collection::vec("[a-z_]{1,12}=[-0-9a-z.%:µ ]{0,12}", 0..6)) {
        let _ = Change::parse_words(words.iter().map(String::as_str))
            .and_then(|c| Params::default().apply(&c));
    }
}
