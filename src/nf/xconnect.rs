//! `xconnect`: two ports, every frame from one leaves by the other, unchanged.

use super::{Function, NfError, Output};
use crate::buf::Frame;
use crate::transport::Spec;

/// The cross-connect function.
pub struct Xconnect;

impl Xconnect {
    /// Needs exactly two ports; takes no options.
    pub fn new(ports: usize, options: &[(String, String)]) -> Result<Self, NfError> {
        if ports != 2 {
            return Err(NfError::PortCount {
                function: "xconnect",
                want: 2,
                got: ports,
            });
        }
        if let Some((k, _)) = options.first() {
            return Err(NfError::UnknownOption {
                function: "xconnect",
                key: k.clone(),
                accepted: "(none)",
            });
        }
        Ok(Xconnect)
    }
}

impl Function for Xconnect {
    fn name(&self) -> &'static str {
        "xconnect"
    }

    fn process(&mut self, port: usize, frames: &[Frame], out: &mut dyn Output) {
        let to = port ^ 1;
        for f in frames {
            out.forward(to, *f);
        }
    }

    /// Interfaces may come and go at run time (console `remove vec1`, `config vec1:...`)
    /// as long as there are at most two; a lone port's frames are dropped (`no_route`).
    fn set_ports(&mut self, ports: &[Spec], _out: &mut dyn Output) -> Result<(), NfError> {
        if ports.len() > 2 {
            return Err(NfError::PortCount {
                function: "xconnect",
                want: 2,
                got: ports.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf::testing::Recorder;

    #[test]
    fn frames_cross_unchanged_both_ways() {
        let mut x = Xconnect::new(2, &[]).unwrap();
        let mut r = Recorder::new(2);
        r.feed(&mut x, 0, &[&[1u8; 60], &[2u8; 70]]);
        r.feed(&mut x, 1, &[&[3u8; 64]]);
        assert_eq!(
            r.sent,
            vec![(1, vec![1; 60]), (1, vec![2; 70]), (0, vec![3; 64])]
        );
        assert_eq!(r.pool.available(), r.pool.capacity());
    }

    #[test]
    fn wrong_port_count_and_options_are_errors() {
        assert!(matches!(
            Xconnect::new(3, &[]),
            Err(NfError::PortCount { got: 3, .. })
        ));
        let e = Xconnect::new(2, &[("aging".into(), "1".into())])
            .err()
            .unwrap();
        assert!(e.to_string().contains("aging"));
    }
}
