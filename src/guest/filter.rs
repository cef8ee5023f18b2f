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
        let p = self.ports.get_mut(port).ok_or(FilterError::NoPort(port, n))?;
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
