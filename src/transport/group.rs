//! Which tunnel ports of one guest share a raw socket's traffic (same protocol, family,
//! local address and peer), and what each claims. See [`super::demux`].

use super::demux::Claim;
use super::tunnel::Siblings;
use super::{Kind, OpenError, Spec, gre, l2tpv3};

/// (protocol, v6, src, dst) of a raw-IP tunnel; UDP tunnels have their own ports.
fn share_key(spec: &Spec) -> Option<(u8, bool, &str, &str)> {
    match &spec.kind {
        Kind::Gre { src, dst, v6, .. } => Some((47, *v6, src, dst)),
        Kind::L2tpv3 {
            src,
            dst,
            v6,
            udp: false,
            ..
        } => Some((115, *v6, src, dst)),
        _ => None,
    }
}

fn claim_of(spec: &Spec) -> Option<Claim> {
    gre::config(spec)
        .map(|c| gre::claim(&c))
        .or_else(|| l2tpv3::config(spec).map(|c| l2tpv3::claim(&c)))
}

/// For each spec, its siblings' claims. Two tunnels in one group that claim the same
/// packets (two keyless GRE tunnels, equal keys or sessions) cannot be told apart:
/// that is an error.
pub fn siblings(specs: &[Spec]) -> Result<Vec<Siblings>, OpenError> {
    let mut out = vec![Siblings::default(); specs.len()];
    for (i, s) in specs.iter().enumerate() {
        let Some(key) = share_key(s) else { continue };
        let mates: Vec<usize> = specs
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && share_key(o) == Some(key))
            .map(|(j, _)| j)
            .collect();
        if mates.is_empty() {
            continue;
        }
        let own = claim_of(s).unwrap_or(Claim(Vec::new()));
        for &j in &mates {
            let theirs = claim_of(&specs[j]).unwrap_or(Claim(Vec::new()));
            if theirs == own {
                return Err(OpenError::Conflict {
                    port: format!("vec{}", s.unit),
                    other: format!("vec{}", specs[j].unit),
                    why: format!(
                        "both are {} tunnels from {} to {} that accept the same packets; \
                         give each its own {}",
                        s.transport_name(),
                        key.2,
                        key.3,
                        if key.0 == 47 {
                            "rx_key/tx_key"
                        } else {
                            "rx_session"
                        }
                    ),
                });
            }
            out[i].claims.push(theirs);
        }
        out[i].first = mates.iter().all(|&j| j > i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(v: &[&str]) -> Vec<Spec> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn groups_by_address_and_refuses_ambiguity() {
        let s = specs(&[
            "vec0:transport=gre,src=10.0.0.1,dst=10.0.0.2,rx_key=1,tx_key=1",
            "vec1:transport=gre,src=10.0.0.1,dst=10.0.0.2,rx_key=2,tx_key=2",
            "vec2:transport=gre,src=10.0.0.1,dst=10.0.0.3",
            "vec3:transport=l2tpv3,src=10.0.0.1,dst=10.0.0.2,rx_session=1,tx_session=1",
        ]);
        let g = siblings(&s).unwrap();
        assert!(g[0].first && g[0].claims.len() == 1);
        assert!(!g[1].first && g[1].claims.len() == 1);
        assert_eq!(g[2], Siblings::default());
        assert_eq!(g[3], Siblings::default());
        let bad = specs(&[
            "vec0:transport=gre,src=10.0.0.1,dst=10.0.0.2",
            "vec1:transport=gre,src=10.0.0.1,dst=10.0.0.2",
        ]);
        let e = siblings(&bad).unwrap_err().to_string();
        assert!(e.contains("vec0 and vec1") && e.contains("rx_key"), "{e}");
    }
}
