//! The random number generator: xoshiro256++ (Blackman and Vigna, 2019), seeded by
//! SplitMix64 as its authors recommend. Both are fixed, published algorithms written
//! out here, so a seed gives the same sequence in every vecbox version and on every
//! machine (no dependence on a library's unspecified default generator).
//!
//! Each kind of draw has its own stream ([`Streams`]): stream *i* is the seeded state
//! advanced by *i* jumps of 2¹²⁸ steps, so the streams never overlap. Loss decisions
//! therefore depend only on how many frames were judged, not on how many jitter or
//! duplicate draws happened in between, and changing one impairment does not move the
//! random choices of another.

/// SplitMix64 step: the next output from `state`.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256++.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xoshiro256pp {
    s: [u64; 4],
}

impl Xoshiro256pp {
    /// The generator seeded from `seed` by four SplitMix64 outputs.
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self::from_state(s)
    }

    /// The generator with state `s` (must not be all zero; an all-zero state is
    /// replaced by SplitMix64 outputs of 0).
    pub fn from_state(s: [u64; 4]) -> Self {
        if s == [0; 4] {
            return Self::seed_from_u64(0);
        }
        Xoshiro256pp { s }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in the open interval (0, 1), 53 bits.
    #[inline]
    pub fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Uniform integer in `0..n` (`n` > 0), by Lemire's multiply-shift (bias below
    /// 2⁻³² for the sizes used here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Advance by 2¹²⁸ steps.
    pub fn jump(&mut self) {
        const JUMP: [u64; 4] = [
            0x180e_c6d3_3cfd_0aba,
            0xd5a6_1266_f0c9_392c,
            0xa958_2618_e03f_c9aa,
            0x39ab_dc45_29b1_661c,
        ];
        let mut acc = [0u64; 4];
        for word in JUMP {
            for b in 0..64 {
                if word & (1u64 << b) != 0 {
                    for (a, s) in acc.iter_mut().zip(self.s) {
                        *a ^= s;
                    }
                }
                self.next_u64();
            }
        }
        self.s = acc;
    }
}

/// The independent streams of one impairment direction.
#[derive(Clone, Debug)]
pub struct Streams {
    /// Loss decisions (and the loss model's state changes).
    pub loss: Xoshiro256pp,
    /// Corruption decisions and bit positions.
    pub corrupt: Xoshiro256pp,
    /// Duplication decisions.
    pub duplicate: Xoshiro256pp,
    /// Jitter (the Gaussian innovations of the correlated draw).
    pub jitter: Xoshiro256pp,
    /// Reorder decisions.
    pub reorder: Xoshiro256pp,
}

impl Streams {
    /// All streams from one seed.
    pub fn new(seed: u64) -> Self {
        let mut g = Xoshiro256pp::seed_from_u64(seed);
        let mut next = || {
            let cur = g.clone();
            g.jump();
            cur
        };
        Streams {
            loss: next(),
            corrupt: next(),
            duplicate: next(),
            jitter: next(),
            reorder: next(),
        }
    }
}

/// A seed for stages configured without one: the system's random source, or the
/// clock if that is unavailable.
pub fn system_seed() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok()
    {
        return u64::from_ne_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut s = t ^ u64::from(std::process::id());
    splitmix64(&mut s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_the_reference_algorithm() {
        // State (1, 2, 3, 4): first output rotl(1 + 4, 23) + 1, worked by hand; the
        // next values follow the reference C code step by step.
        let mut g = Xoshiro256pp::from_state([1, 2, 3, 4]);
        assert_eq!(g.next_u64(), 41_943_041);
        // After one step the state is (7, 0, 262146, 211106232532992).
        assert_eq!(g.s, [7, 0, 262_146, 211_106_232_532_992]);
        assert_eq!(g.next_u64(), 58_720_359);
        // SplitMix64 from 0: the published first output.
        let mut sm = 0u64;
        assert_eq!(splitmix64(&mut sm), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let mut a = Streams::new(7);
        let mut b = Streams::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.loss.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.loss.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(a.loss.next_u64(), a.jitter.next_u64());
        let mut c = Streams::new(8);
        assert_ne!(Streams::new(7).loss.next_u64(), c.loss.next_u64());
        for _ in 0..1000 {
            let u = c.jitter.open01();
            assert!(u > 0.0 && u < 1.0);
            assert!(c.corrupt.below(10) < 10);
        }
    }
}
