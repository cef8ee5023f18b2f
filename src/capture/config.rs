//! What a capture asks of one guest, written by the reader into the ring's configuration
//! area and checked by the guest before it copies a frame:
//!
//! | bytes | field |
//! |---|---|
//! | 0 | version (1), u32 |
//! | 4 | number of ports N, u32 |
//! | 8 | snap length, u32 |
//! | 12 | filter instructions M (0: no filter), u32 |
//! | 16 | N × (unit u32, point mask u32) |
//! | 16 + 8·64 | M × (code u16, jt u8, jf u8, k u32) |
//!
//! Little-endian. The guest copies the area out before it reads it, so a reader
//! changing it later cannot change what was checked.

use super::ring::{CONFIG_BYTES, MAX_SLOTS};
use crate::filter::{Program, SockFilter, ValidateError, insn::MAXINSNS};

const VERSION: u32 = 1;
const PORTS_OFF: usize = 16;
const INSNS_OFF: usize = PORTS_OFF + 8 * MAX_SLOTS;

/// Bytes kept of each frame unless asked otherwise (as tcpdump).
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// One captured port of a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSel {
    /// `vecN` unit number.
    pub unit: u32,
    /// Point mask ([`super::Point::bit`]).
    pub points: u8,
}

/// One guest's part of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Slot `i` of the ring's records and counters is `ports[i]`.
    pub ports: Vec<PortSel>,
    pub snaplen: u32,
    pub filter: Option<Program>,
}

/// A configuration the guest refuses.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "capture configuration version {0} is not known to this guest (vecbox versions differ?)"
    )]
    Version(u32),
    #[error("a capture takes 1 to {MAX_SLOTS} interfaces of one guest, not {0}")]
    Ports(u32),
    #[error("vec{0} is asked for twice")]
    Duplicate(u32),
    #[error("vec{0}: point mask {1:#x} is not a non-empty set of rx-pre, rx-post, tx-pre, tx-post")]
    Points(u32, u32),
    #[error("snap length 0: keep at least 1 byte per frame")]
    Snaplen,
    #[error("capture filter of {0} instructions: 0 to {MAXINSNS} allowed")]
    Insns(u32),
    #[error("capture filter: {0}")]
    Filter(#[from] ValidateError),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Config {
    /// The bytes of the configuration area.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; CONFIG_BYTES];
        let insns = self.filter.as_ref().map_or(&[][..], |p| p.insns());
        let put =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put(&mut b, 0, VERSION);
        put(&mut b, 4, self.ports.len().min(MAX_SLOTS) as u32);
        put(&mut b, 8, self.snaplen);
        put(&mut b, 12, insns.len() as u32);
        for (i, p) in self.ports.iter().take(MAX_SLOTS).enumerate() {
            put(&mut b, PORTS_OFF + 8 * i, p.unit);
            put(&mut b, PORTS_OFF + 8 * i + 4, u32::from(p.points));
        }
        for (i, f) in insns.iter().enumerate() {
            let at = INSNS_OFF + 8 * i;
            b[at..at + 2].copy_from_slice(&f.code.to_le_bytes());
            b[at + 2] = f.jt;
            b[at + 3] = f.jf;
            put(&mut b, at + 4, f.k);
        }
        b
    }

    /// Read and check a configuration area.
    pub fn decode(b: &[u8]) -> Result<Config, ConfigError> {
        if b.len() < CONFIG_BYTES {
            return Err(ConfigError::Version(0));
        }
        let version = u32_at(b, 0);
        if version != VERSION {
            return Err(ConfigError::Version(version));
        }
        let n = u32_at(b, 4);
        if n == 0 || n as usize > MAX_SLOTS {
            return Err(ConfigError::Ports(n));
        }
        let snaplen = u32_at(b, 8);
        if snaplen == 0 {
            return Err(ConfigError::Snaplen);
        }
        let m = u32_at(b, 12);
        if m as usize > MAXINSNS {
            return Err(ConfigError::Insns(m));
        }
        let mut ports: Vec<PortSel> = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            let unit = u32_at(b, PORTS_OFF + 8 * i);
            let points = u32_at(b, PORTS_OFF + 8 * i + 4);
            if points == 0 || points > 0xf {
                return Err(ConfigError::Points(unit, points));
            }
            if ports.iter().any(|p| p.unit == unit) {
                return Err(ConfigError::Duplicate(unit));
            }
            ports.push(PortSel {
                unit,
                points: points as u8,
            });
        }
        let filter = if m == 0 {
            None
        } else {
            let insns = (0..m as usize)
                .map(|i| {
                    let at = INSNS_OFF + 8 * i;
                    SockFilter {
                        code: u16::from_le_bytes([b[at], b[at + 1]]),
                        jt: b[at + 2],
                        jf: b[at + 3],
                        k: u32_at(b, at + 4),
                    }
                })
                .collect();
            Some(Program::new(insns)?)
        };
        Ok(Config {
            ports,
            snaplen,
            filter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Config {
        Config {
            ports: vec![
                PortSel {
                    unit: 0,
                    points: 0b1010,
                },
                PortSel {
                    unit: 7,
                    points: 0b1111,
                },
            ],
            snaplen: 96,
            filter: Some(Program::new(crate::filter::drop_outgoing().to_vec()).unwrap()),
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        let b = c.encode();
        assert_eq!(b.len(), CONFIG_BYTES);
        assert_eq!(Config::decode(&b).unwrap(), c);
        let none = Config {
            filter: None,
            ..sample()
        };
        assert_eq!(Config::decode(&none.encode()).unwrap(), none);
    }

    #[test]
    fn bad_areas_are_refused_with_the_reason() {
        let good = sample().encode();
        let with = |at: usize, v: u32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            Config::decode(&b).unwrap_err()
        };
        assert_eq!(with(0, 2), ConfigError::Version(2));
        assert_eq!(with(4, 0), ConfigError::Ports(0));
        assert_eq!(with(4, 65), ConfigError::Ports(65));
        assert_eq!(with(8, 0), ConfigError::Snaplen);
        assert_eq!(with(12, 5000), ConfigError::Insns(5000));
        assert_eq!(with(PORTS_OFF + 4, 0), ConfigError::Points(0, 0));
        assert_eq!(with(PORTS_OFF + 8, 0), ConfigError::Duplicate(0));
        // A program that fails the kernel's checks (a jump past the end).
        let mut b = good.clone();
        b[INSNS_OFF + 8 + 2] = 200;
        assert!(matches!(Config::decode(&b), Err(ConfigError::Filter(_))));
        assert!(Config::decode(&good[..100]).is_err());
    }
}
