//! Jitter draws: a correlated Gaussian latent mapped through the target distribution.
//!
//! The latent follows an AR(1) process, `z ← ρ·z + √(1−ρ²)·ε` with ε standard normal,
//! started from its stationary law, so every z is exactly N(0, 1) whatever ρ is. Each
//! draw is then `F⁻¹(Φ(z))` for the configured distribution F. The marginal law of the
//! delays — and so their spread — is the configured one at every correlation; only
//! their dependence changes. netem instead mixes each uniform draw with the previous
//! one (`next = (1−ρ)·U + ρ·last`), which narrows the spread to √((1−ρ)/(1+ρ)) of it
//! (0.58× at ρ = 0.5, 0.16× at 0.95) and makes a uniform no longer uniform.
//!
//! ρ is chosen so the configured correlation is what one measures: for `normal` the
//! latent correlation is the delay correlation; for the others the latent is set to
//! `2·sin(π·c/6)`, which makes the rank (Spearman) correlation of successive delays
//! exactly `c`, and for `uniform` also the ordinary (Pearson) one.
//!
//! Each distribution gives an offset `x` in units of `jitter` (delay = delay + x·jitter):
//! uniform `2Φ(z)−1` on [−1, 1]; normal `z` clipped at ±4; pareto netem's table
//! `(V^(−1/3) − 1.5)·4/3` with `V = 1−Φ(z)`, clipped at 32767/8192 as netem's 16-bit
//! table is; paretonormal netem's quantile-by-quantile mix `(normal + 3·pareto)/4`.

use super::params::Distribution;
use super::rng::Xoshiro256pp;

/// Largest pareto offset (netem's table clips at 32767/8192).
pub const PARETO_MAX: f64 = 32767.0 / 8192.0;

/// Complementary error function, |relative error| < 1.2·10⁻⁷ (the Chebyshev fit
/// published in Numerical Recipes, §6.2).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Standard normal upper tail P(Z > z), accurate in relative terms far into the tail.
pub fn upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Standard normal CDF Φ(z).
pub fn cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn pareto(z: f64) -> f64 {
    let v = upper_tail(z).max(f64::MIN_POSITIVE);
    ((v.powf(-1.0 / 3.0) - 1.5) * 4.0 / 3.0).min(PARETO_MAX)
}

/// The offset (in units of jitter) for latent value `z` under `d`.
pub fn offset(d: Distribution, z: f64) -> f64 {
    match d {
        Distribution::Uniform => 2.0 * cdf(z) - 1.0,
        Distribution::Normal => z.clamp(-4.0, 4.0),
        Distribution::Pareto => pareto(z),
        Distribution::ParetoNormal => (z.clamp(-4.0, 4.0) + 3.0 * pareto(z)) / 4.0,
    }
}

/// Latent correlation that gives correlation `c` of successive delays under `d`.
pub fn latent_correlation(d: Distribution, c: f64) -> f64 {
    let c = c.clamp(0.0, 1.0);
    match d {
        Distribution::Normal => c,
        _ => 2.0 * (std::f64::consts::PI * c / 6.0).sin(),
    }
}

/// Mean and standard deviation of the offset under `d` (numerical integration over the
/// latent; used to state and check the realised spread).
pub fn moments(d: Distribution) -> (f64, f64) {
    let (lo, hi, n) = (-9.0, 9.0, 180_000);
    let h = (hi - lo) / n as f64;
    let (mut m1, mut m2) = (0.0, 0.0);
    for i in 0..n {
        let z = lo + (i as f64 + 0.5) * h;
        let w = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt() * h;
        let x = offset(d, z);
        m1 += w * x;
        m2 += w * x * x;
    }
    (m1, (m2 - m1 * m1).max(0.0).sqrt())
}

/// Correlated jitter offsets.
#[derive(Clone, Debug)]
pub struct Jitter {
    dist: Distribution,
    rho: f64,
    innovation: f64,
    z: Option<f64>,
    spare: Option<f64>,
}

impl Jitter {
    /// Offsets under `dist` with correlation `c` (0..=1) of successive draws.
    pub fn new(dist: Distribution, c: f64) -> Self {
        let mut j = Jitter {
            dist,
            rho: 0.0,
            innovation: 1.0,
            z: None,
            spare: None,
        };
        j.set(dist, c);
        j
    }

    /// Change the distribution or correlation, keeping the latent state (continuity).
    pub fn set(&mut self, dist: Distribution, c: f64) {
        self.dist = dist;
        self.rho = latent_correlation(dist, c).clamp(0.0, 1.0);
        self.innovation = (1.0 - self.rho * self.rho).max(0.0).sqrt();
    }

    /// Forget the latent state (after a reseed).
    pub fn reset(&mut self) {
        self.z = None;
        self.spare = None;
    }

    fn gaussian(&mut self, rng: &mut Xoshiro256pp) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        // Box-Muller: two independent N(0, 1) from two uniforms on (0, 1).
        let r = (-2.0 * rng.open01().ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * rng.open01();
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }

    /// The next offset, in units of jitter.
    pub fn next(&mut self, rng: &mut Xoshiro256pp) -> f64 {
        let e = self.gaussian(rng);
        let z = match self.z {
            None => e,
            Some(prev) => self.rho * prev + self.innovation * e,
        };
        self.z = Some(z);
        offset(self.dist, z)
    }
}
