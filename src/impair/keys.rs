//! The impairment keys: name, accepted form, example, default and help of each, in the
//! order settings are printed, and the "did you mean" helper for unknown keys.

/// One key: its name, accepted form, an example, the default as printed, and help.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub expected: &'static str,
    pub example: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

const DURATION: &str = "a duration ≥ 0 with a unit ns, us, ms or s (at most 60s)";
const PROB: &str = "a probability 0%..100% or a fraction 0..1";

/// Every key, in the order settings are printed.
pub const KEYS: &[Key] = &[
    Key {
        name: "delay",
        expected: DURATION,
        example: "delay=20ms",
        default: "0",
        help: "added one-way delay",
    },
    Key {
        name: "jitter",
        expected: DURATION,
        example: "jitter=5ms",
        default: "0",
        help: "spread of the delay (needs delay)",
    },
    Key {
        name: "distribution",
        expected: "uniform, normal, pareto or paretonormal",
        example: "distribution=normal",
        default: "uniform",
        help: "shape of the jitter",
    },
    Key {
        name: "correlation",
        expected: "a correlation 0..1 or 0%..100%",
        example: "correlation=50%",
        default: "0",
        help: "correlation of successive jitter draws; the spread is kept",
    },
    Key {
        name: "reorder_on_jitter",
        expected: "true or false",
        example: "reorder_on_jitter=true",
        default: "false",
        help: "let jitter reorder frames",
    },
    Key {
        name: "loss",
        expected: "a probability (5%), gemodel:P[:R[:H[:K]]] or state:P13[:P31[:P32[:P23[:P14]]]]",
        example: "loss=1%",
        default: "0%",
        help: "frame loss: random, Gilbert-Elliott or 4-state Markov",
    },
    Key {
        name: "duplicate",
        expected: PROB,
        example: "duplicate=1%",
        default: "0%",
        help: "frames sent twice",
    },
    Key {
        name: "corrupt",
        expected: PROB,
        example: "corrupt=0.1%",
        default: "0%",
        help: "frames with one bit flipped after the Ethernet header",
    },
    Key {
        name: "reorder",
        expected: PROB,
        example: "reorder=25%",
        default: "0%",
        help: "frames that skip the delay (needs delay)",
    },
    Key {
        name: "gap",
        expected: "a whole number 1..4294967295",
        example: "gap=5",
        default: "1",
        help: "every gap-th frame is a reorder candidate (needs reorder)",
    },
    Key {
        name: "rate",
        expected: "a rate with a unit bit, kbit, mbit, gbit, tbit (SI) or kibit, mibit, gibit",
        example: "rate=10mbit",
        default: "none",
        help: "bottleneck rate",
    },
    Key {
        name: "overhead",
        expected: "bytes -1024..1024",
        example: "overhead=24",
        default: "0",
        help: "bytes added per frame for rate (24: preamble, FCS, gap)",
    },
    Key {
        name: "cell",
        expected: "bytes 0..65535",
        example: "cell=53",
        default: "0",
        help: "cell size for rate (0: none)",
    },
    Key {
        name: "cell_overhead",
        expected: "bytes -1024..1024",
        example: "cell_overhead=5",
        default: "0",
        help: "bytes added per cell (needs cell)",
    },
    Key {
        name: "queue",
        expected: "packets (1000pkt), bytes (64kb, 1mb) or a time (50ms)",
        example: "queue=50ms",
        default: "1000pkt",
        help: "limit of the queue in front of rate (needs rate)",
    },
    Key {
        name: "seed",
        expected: "a whole number (decimal or 0x hex)",
        example: "seed=7",
        default: "random",
        help: "seed of every random draw (setting it restarts them)",
    },
    Key {
        name: "down",
        expected: "true or false",
        example: "down=true",
        default: "false",
        help: "administratively down: nothing passes",
    },
];

/// The key called `name`.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// `true` if `name` is an impairment key.
pub fn is_key(name: &str) -> bool {
    key(name).is_some()
}

/// The key closest to `word` (same up to case, or within 2 edits).
pub(super) fn closest(word: &str, names: &[&'static str]) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    let dist = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    };
    names
        .iter()
        .map(|n| (dist(&lower, n), *n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}
