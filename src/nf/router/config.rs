//! The router's configuration: interface addresses, static routes and a few limits.
//!
//! Read from YAML (`config=FILE`). The types are plain serde structs with
//! `deny_unknown_fields`, so a lab topology file can embed the same shape as a node's
//! `router:` section. Example:
//!
//! ```yaml
//! interfaces:
//!   - port: vec0
//!     addresses: [10.1.0.1/24, fd00:1::1/64]
//!   - port: vec1
//!     addresses: [10.2.0.1/24, fd00:2::1/64]
//! routes:
//!   - to: 10.9.0.0/16
//!     via: 10.2.0.254
//!   - to: 0.0.0.0/0
//!     via: 10.1.0.254
//! icmp_errors_per_second: 100
//! neighbor_timeout: 60
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

/// The whole router configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// One entry per port that routes (ports not listed carry no addresses).
    pub interfaces: Vec<InterfaceConfig>,
    /// Static routes; connected routes come from the interface addresses.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// ICMP errors (time exceeded, unreachable) sent per second at most (default 100).
    #[serde(default = "default_icmp_rate")]
    pub icmp_errors_per_second: u32,
    /// Seconds a resolved neighbour (ARP/ND) stays valid without being refreshed (default 60).
    #[serde(default = "default_neighbor_timeout")]
    pub neighbor_timeout: u32,
    /// Most neighbour entries kept (default 1024).
    #[serde(default = "default_neighbors")]
    pub max_neighbors: usize,
    /// Permanent neighbour entries (no ARP/ND for these addresses).
    #[serde(default)]
    pub neighbors: Vec<StaticNeighbor>,
}

/// A neighbour whose MAC is configured rather than resolved.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaticNeighbor {
    pub port: String,
    pub address: IpAddr,
    pub mac: Mac,
}

/// A MAC address in `xx:xx:xx:xx:xx:xx` form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub crate::wire::Mac);

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<crate::wire::MacAddr>()
            .map(|m| Mac(m.0))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a MAC address; expected xx:xx:xx:xx:xx:xx"
                ))
            })
    }
}

fn default_icmp_rate() -> u32 {
    100
}
fn default_neighbor_timeout() -> u32 {
    60
}
fn default_neighbors() -> usize {
    1024
}

/// Addresses of one port.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    /// `vecN`, as on the command line.
    pub port: String,
    /// `address/prefix`, IPv4 or IPv6.
    pub addresses: Vec<Cidr>,
}

/// A static route: to a prefix, via a gateway and/or out of a port.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub to: Cidr,
    /// Next-hop gateway (must be on a connected subnet).
    #[serde(default)]
    pub via: Option<IpAddr>,
    /// Output port for an on-link route without gateway.
    #[serde(default)]
    pub port: Option<String>,
}

/// An address with a prefix length, `10.0.0.1/24` or `fd00::1/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    /// The network (host bits cleared).
    pub fn network(&self) -> Cidr {
        Cidr {
            addr: mask(self.addr, self.len),
            len: self.len,
        }
    }

    /// `true` if `ip` lies inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == mask(self.addr, self.len)
    }
}

/// `ip` with everything after the first `len` bits cleared.
pub fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected ADDRESS/PREFIX, e.g. 10.0.0.1/24 or fd00::1/64";
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} has no /prefix; {expected}"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address; {expected}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = l
            .parse()
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(|| format!("prefix length {l:?} must be 0..={max}"))?;
        Ok(Cidr { addr, len })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Errors loading the configuration; every one names the file and, where known, the
/// line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {msg}")]
    Syntax {
        path: String,
        line: u64,
        col: u64,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
}

impl RouterConfig {
    /// Read and check `path`. `ports` are the guest's port names (`vec0`, ...).
    pub fn load(path: &Path, ports: &[String]) -> Result<RouterConfig, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&p, &text, ports)
    }

    /// Parse and check YAML `text` (named `path` in messages).
    pub fn parse(path: &str, text: &str, ports: &[String]) -> Result<RouterConfig, ConfigError> {
        let cfg: RouterConfig = serde_saphyr::from_str(text).map_err(|e| yaml_error(path, &e))?;
        cfg.check(ports).map_err(|msg| ConfigError::Invalid {
            path: path.to_string(),
            msg,
        })?;
        Ok(cfg)
    }

    /// Cross-field rules: known ports, each port once, gateways on connected subnets.
    pub fn check(&self, ports: &[String]) -> Result<(), String> {
        let port_ok = |name: &str, what: &str| -> Result<(), String> {
            if ports.iter().any(|p| p == name) {
                return Ok(());
            }
            let hint = crate::filter::text::nearest(
                name,
                &ports.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .map(|n| format!("; did you mean {n}?"))
            .unwrap_or_default();
            Err(format!(
                "{what}: port {name:?} is not an interface of this guest (it has {}){hint}",
                ports.join(", ")
            ))
        };
        let mut seen = Vec::new();
        for (n, i) in self.interfaces.iter().enumerate() {
            port_ok(&i.port, &format!("interfaces[{n}]"))?;
            if seen.contains(&&i.port) {
                return Err(format!("interfaces[{n}]: port {} is listed twice", i.port));
            }
            seen.push(&i.port);
        }
        for (n, r) in self.routes.iter().enumerate() {
            let what = format!("routes[{n}] (to {})", r.to);
            if let Some(p) = &r.port {
                port_ok(p, &what)?;
            }
            match (r.via, &r.port) {
                (None, None) => {
                    return Err(format!("{what}: needs `via: GATEWAY` or `port: vecN`"));
                }
                (Some(gw), _) => {
                    if gw.is_ipv4() != r.to.addr.is_ipv4() {
                        return Err(format!(
                            "{what}: gateway {gw} is not of the same IP version"
                        ));
                    }
                    let connected = self
                        .interfaces
                        .iter()
                        .flat_map(|i| &i.addresses)
                        .any(|a| a.contains(gw));
                    if !connected {
                        return Err(format!(
                            "{what}: gateway {gw} is not on any interface's subnet"
                        ));
                    }
                }
                _ => {}
            }
        }
        for (n, s) in self.neighbors.iter().enumerate() {
            port_ok(&s.port, &format!("neighbors[{n}]"))?;
        }
        if self.max_neighbors == 0 {
            return Err("max_neighbors must be at least 1".into());
        }
        Ok(())
    }
}

/// A YAML error as `file:line:col: message`.
pub fn yaml_error(path: &str, e: &serde_saphyr::Error) -> ConfigError {
    let (line, col) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let msg = e.without_snippet().to_string();
    // The message may repeat the position; keep the first line, which says what is wrong.
    let mut msg = msg.lines().next().unwrap_or("").to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    // "unknown field `adresses`, expected one of port, addresses": add the nearest word.
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((bad, tail)) = rest.split_once('`')
        && let Some(list) = tail.split_once("expected one of ").map(|(_, l)| l)
    {
        let words: Vec<&str> = list.split(", ").map(|w| w.trim_matches('`')).collect();
        if let Some(n) = crate::filter::text::nearest(bad, &words) {
            msg.push_str(&format!("; did you mean `{n}`?"));
        }
    }
    ConfigError::Syntax {
        path: path.to_string(),
        line,
        col,
        msg,
    }
}
