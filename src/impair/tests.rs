//! Tests of the impairment models and scheduler, driven by a virtual clock.

use super::counters::Dropped;
use super::dist::{self, Jitter};
use super::loss::{LossState, stationary_loss};
use super::params::{Change, Distribution, Loss, Params};
use super::rng::Xoshiro256pp;
use super::stage::Stage;
use super::units::Prob;
use crate::wire::vnet;

mod gso;
mod params;
mod sched;
mod store;

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

fn params(words: &str) -> Params {
    let c = Change::parse_words(words.split_whitespace()).unwrap();
    Params::default().apply(&c).unwrap()
}

fn stage(words: &str) -> Stage {
    Stage::new(params(words)).unwrap()
}

/// A 64-byte frame whose bytes 14..22 hold `n` (a sequence number).
fn frame(n: u64) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12] = 0x88;
    f[13] = 0xb5;
    f[14..22].copy_from_slice(&n.to_be_bytes());
    f
}

fn seq_of(f: &[u8]) -> u64 {
    u64::from_be_bytes(f[14..22].try_into().unwrap())
}

/// Offer `count` frames every `gap` ns from t = 0, releasing everything due after each
/// offer and at the end; returns (sequence number, release time, arrival time) of
/// every frame released, in release order.
fn drive(s: &mut Stage, count: u64, gap: u64) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut arrivals = std::collections::HashMap::new();
    let mut now = 0;
    for n in 0..count {
        now = n * gap;
        // Everything due before this arrival leaves at its own departure time.
        while let Some(t) = s.next_deadline().filter(|t| *t < now) {
            release_all(s, t, &mut out, &arrivals);
        }
        arrivals.insert(n, now);
        s.offer(now, &frame(n), &vnet::Repr::NONE, 1514);
        release_all(s, now, &mut out, &arrivals);
    }
    while let Some(t) = s.next_deadline() {
        now = now.max(t);
        release_all(s, now, &mut out, &arrivals);
    }
    out
}

fn release_all(
    s: &mut Stage,
    now: u64,
    out: &mut Vec<(u64, u64, u64)>,
    arrivals: &std::collections::HashMap<u64, u64>,
) {
    // Frames are told apart by their packet id (the offer order): corruption may
    // change their bytes.
    s.release(now, usize::MAX, |_, _, id| {
        out.push((id, now, arrivals[&id]));
        true
    });
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

fn lag1(v: &[f64]) -> f64 {
    let (m, s) = mean_std(v);
    let n = v.len() - 1;
    let c: f64 = (0..n).map(|i| (v[i] - m) * (v[i + 1] - m)).sum::<f64>() / n as f64;
    c / (s * s)
}

#[test]
fn correlation_keeps_the_configured_spread() {
    for d in [Distribution::Uniform, Distribution::Normal] {
        let (_, want) = dist::moments(d);
        for c in [0.0, 0.25, 0.5, 0.75, 0.95] {
            let mut j = Jitter::new(d, c);
            let mut rng = Xoshiro256pp::seed_from_u64(42);
            let xs: Vec<f64> = (0..400_000).map(|_| j.next(&mut rng)).collect();
            let (_, std) = mean_std(&xs);
            assert!(
                (std / want - 1.0).abs() < 0.03,
                "{d:?} c={c}: std {std} want {want}"
            );
            let r = lag1(&xs);
            assert!((r - c).abs() < 0.03, "{d:?} c={c}: lag-1 correlation {r}");
        }
    }
    // The uniform marginal is J/√3; netem's smoother would give 0.58 of that at 0.5.
    let (_, u) = dist::moments(Distribution::Uniform);
    assert!((u - 1.0 / 3f64.sqrt()).abs() < 1e-4, "{u}");
}

#[test]
fn pareto_distributions_are_bounded_like_netem_tables() {
    let mut rng = Xoshiro256pp::seed_from_u64(1);
    for d in [Distribution::Pareto, Distribution::ParetoNormal] {
        let mut j = Jitter::new(d, 0.0);
        let xs: Vec<f64> = (0..200_000).map(|_| j.next(&mut rng)).collect();
        let max = xs.iter().cloned().fold(f64::MIN, f64::max);
        let min = xs.iter().cloned().fold(f64::MAX, f64::min);
        assert!(max <= 4.0 && min >= -4.0, "{d:?} {min} {max}");
        let (m, s) = mean_std(&xs);
        let (wm, ws) = dist::moments(d);
        assert!(
            (m - wm).abs() < 0.02 && (s / ws - 1.0).abs() < 0.03,
            "{d:?} {m} {s}"
        );
    }
    assert!((dist::cdf(1.0) - 0.841_344_746).abs() < 1e-6);
    assert!((dist::upper_tail(5.0) / 2.866_515_7e-7 - 1.0).abs() < 1e-5);
}

#[test]
fn gilbert_elliott_loss_matches_its_stationary_rate_and_burst_length() {
    let model = params("loss=gemodel:1%:25%").loss;
    let want = stationary_loss(&model).unwrap();
    assert!((want - 0.01 / 0.26).abs() < 1e-12);
    let mut st = LossState::new(model);
    let mut rng = Xoshiro256pp::seed_from_u64(9);
    let n = 2_000_000;
    let (mut lost, mut bursts, mut run) = (0u64, 0u64, false);
    for _ in 0..n {
        let l = st.lost(&mut rng);
        lost += u64::from(l);
        if l && !run {
            bursts += 1;
        }
        run = l;
    }
    let p = want;
    let band = 3.29 * (n as f64 * p * (1.0 - p)).sqrt() * 6.0; // bursts inflate the variance
    assert!((lost as f64 - n as f64 * p).abs() < band, "{lost}");
    let mean_burst = lost as f64 / bursts as f64;
    assert!((mean_burst - 4.0).abs() < 0.2, "mean burst {mean_burst}");
}

#[test]
fn four_state_loss_matches_its_stationary_rate() {
    for words in ["loss=state:2%", "loss=state:1%:30%:10%:50%:0.5%"] {
        let model = params(words).loss;
        let want = stationary_loss(&model).unwrap();
        let mut st = LossState::new(model);
        let mut rng = Xoshiro256pp::seed_from_u64(3);
        let n = 2_000_000u64;
        let lost = (0..n).filter(|_| st.lost(&mut rng)).count() as f64;
        let rate = lost / n as f64;
        assert!(
            (rate / want - 1.0).abs() < 0.05,
            "{words}: {rate} vs {want}"
        );
    }
    // Only p13: tc's defaults give p31 = 1 − p13, so losses are isolated bursts of 1.
    let Loss::FourState { p31, p23, .. } = params("loss=state:2%").loss else {
        panic!()
    };
    assert_eq!((p31, p23), (Prob(980_000_000), Prob::ONE));
}

#[test]
fn random_loss_is_in_the_binomial_band_and_seeded_runs_repeat() {
    let n = 100_000u64;
    let dropped = |seed: u64| {
        let mut s = stage(&format!("loss=1% seed={seed}"));
        let out = drive(&mut s, n, 10 * US);
        let got: std::collections::BTreeSet<u64> = out.iter().map(|x| x.0).collect();
        assert_eq!(got.len() as u64 + s.counters.dropped(Dropped::Loss), n);
        (0..n).filter(|x| !got.contains(x)).collect::<Vec<_>>()
    };
    let a = dropped(7);
    let b = dropped(7);
    assert_eq!(a, b, "same seed, same frames dropped");
    assert_ne!(a, dropped(8));
    let k = a.len() as f64;
    let band = 3.29 * (n as f64 * 0.01 * 0.99).sqrt();
    assert!((k - 1000.0).abs() <= band, "{k} lost");
}

#[test]
fn constant_delay_is_never_early_nor_late_on_a_virtual_clock() {
    let mut s = stage("delay=20ms");
    let out = drive(&mut s, 10_000, 7 * US + 3);
    assert_eq!(out.len(), 10_000);
    for (i, (n, t, a)) in out.iter().enumerate() {
        assert_eq!(*n, i as u64, "order kept");
        assert_eq!(t - a, 20 * MS, "frame {n}");
    }
    assert_eq!(s.counters.delayed, 10_000);
    assert_eq!(s.counters.frames_out, 10_000);
}

#[test]
fn jitter_never_reorders_unless_asked() {
    // Jitter ±5 ms on frames 100 µs apart would reorder almost every frame.
    let mut s = stage("delay=20ms jitter=5ms seed=1");
    let out = drive(&mut s, 20_000, 100 * US);
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "reordered");
    assert!(out.iter().all(|(_, t, a)| t - a >= 15 * MS));
    assert_eq!(s.counters.reordered, 0);
    let mut s = stage("delay=20ms jitter=5ms seed=1 reorder_on_jitter=true");
    let out = drive(&mut s, 20_000, 100 * US);
    let inversions = out.windows(2).filter(|w| w[0].0 > w[1].0).count();
    assert!(inversions > 1000, "{inversions}");
    // Without clamping, the realised delays have the configured spread.
    let d: Vec<f64> = out.iter().map(|(_, t, a)| (t - a) as f64).collect();
    let (m, sd) = mean_std(&d);
    assert!((m - 20e6).abs() < 0.02e6, "{m}");
    assert!((sd / (5e6 / 3f64.sqrt()) - 1.0).abs() < 0.03, "{sd}");
}

#[test]
fn explicit_reorder_follows_probability_and_gap() {
    let mut s = stage("delay=10ms reorder=100% gap=5 seed=2");
    let out = drive(&mut s, 1000, 100 * US);
    // Every 5th frame skips the delay.
    assert_eq!(s.counters.reordered, 200);
    let early: Vec<u64> = out.iter().filter(|(_, t, a)| t == a).map(|x| x.0).collect();
    assert_eq!(early.len(), 200);
    assert!(early.iter().all(|n| n % 5 == 4), "{:?}", &early[..5]);
}
