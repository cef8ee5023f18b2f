//! Replacing a port's receive filter while the guest runs (`bpfflash=1`).
//!
//! As in UML, loading a filter at run time is off by default: it puts guest-supplied
//! code into the host kernel (for socket ports). The control interface calls
//! [`Guest::replace_filter`]; without `bpfflash=1` on the port's spec the request is
//! refused with a message saying so.

use super::Guest;
use crate::filter::Program;

/// Why a filter replacement was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("no port {0}; this guest has {1} (vec0..vec{max})", max = .1.saturating_sub(1))]
    NoPort(usize, usize),
    #[error(
        "{port}: loading a filter at run time is not permitted: the interface was started without bpfflash=1 (add bpfflash=1 to its vec spec to allow it; it lets the controller load BPF code into the host kernel)"
    )]
    NotPermitted { port: String },
    #[error("{port}: attaching the new filter failed: {source}")]
    Attach {
        port: String,
        #[source]
        source: std::io::Error,
    },
}

impl Guest {
    /// Replace port `port`'s receive filter with `prog` (already validated). Refused
    /// unless the port's spec has `bpfflash=1`.
    pub fn replace_filter(&mut self, port: usize, prog: Program) -> Result<(), FilterError> {
        let n = self.ports.len();
        let p = self
            .ports
            .get_mut(port)
            .ok_or(FilterError::NoPort(port, n))?;
        if !p.spec.common.bpfflash {
            return Err(FilterError::NotPermitted {
                port: p.name.clone(),
            });
        }
        p.set_filter(prog).map_err(|source| FilterError::Attach {
            port: p.name.clone(),
            source,
        })?;
        tracing::info!(port = %p.name, "receive filter replaced");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    use super::*;
    use crate::guest::GuestArgs;

    fn guest(flash: bool, fd: i32) -> Guest {
        let spec = format!(
            "vec0:transport=fd,fd={fd}{}",
            if flash { ",bpfflash=1" } else { "" }
        );
        let spec1 = format!("vec1:transport=fd,fd={fd}");
        let args = GuestArgs::parse("xconnect", &[spec, spec1]).unwrap();
        Guest::open(args).unwrap()
    }

    #[test]
    fn replacing_a_filter_needs_bpfflash() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let prog = Program::new(crate::filter::drop_outgoing().to_vec()).unwrap();
        let mut g = guest(false, a.as_raw_fd());
        let e = g.replace_filter(0, prog.clone()).unwrap_err().to_string();
        assert!(e.contains("vec0") && e.contains("bpfflash=1"), "{e}");
        assert!(matches!(
            g.replace_filter(5, prog.clone()),
            Err(FilterError::NoPort(5, 2))
        ));
        let mut g = guest(true, a.as_raw_fd());
        g.replace_filter(0, prog).unwrap();
        // Now a program that drops everything: the socket receives nothing.
        let none = Program::new(vec![crate::filter::SockFilter {
            code: 6,
            jt: 0,
            jf: 0,
            k: 0,
        }])
        .unwrap();
        g.replace_filter(0, none).unwrap();
        b.send(&[0u8; 60]).unwrap();
        let mut frames = Vec::new();
        assert_eq!(g.ports[0].recv(&mut g.pool, &mut frames).unwrap(), 0);
    }
}
