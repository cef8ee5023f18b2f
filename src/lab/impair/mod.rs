//! Link impairments in a lab (docs/impairments.md, "Labs").
//!
//! - [`parse`]: `impair:` on a link and in `defaults`, read with positions and turned
//!   into per-direction settings by the one impairment parser ([`crate::impair::Change`]).
//! - [`realise`]: where each direction of a link is impaired: A→B at A's `tx` stage when
//!   A is a vecbox guest, else at B's `rx` stage when B is one, else on an xconnect
//!   datapath vecbox inserts on the link. The result is the plan's [`LinkImpair`] table
//!   and the guests' specs.
//! - [`live`]: the running lab: every link's settings, a change of one direction or both,
//!   link down and up, through the guests' control sockets. `vecbox impair`, `vecbox
//!   link` and `vecbox apply` use it.

pub mod live;
pub mod parse;
pub mod realise;

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Deserialize as De, Serialize};
use serde_saphyr::Spanned;

use super::topology::{LinkType, Scalar};

/// `impair:` as written: keys with their positions, values scalars or nested maps
/// (`a_to_b:`, `loss: {model: ...}`, `reorder: {probability, gap}`).
#[derive(Clone, Debug, Default)]
pub struct ImpairMap(pub Vec<(Spanned<String>, Spanned<ImpairValue>)>);

/// One value of an `impair:` map.
#[derive(Clone, Debug)]
pub enum ImpairValue {
    Scalar(Scalar),
    Map(ImpairMap),
}

/// Where one direction of a link is impaired: the guest, its port and stage.
#[derive(Clone, Debug, Serialize, De, PartialEq, Eq)]
pub struct StageAt {
    /// Plan node name of the guest.
    pub node: String,
    /// Its umid (control socket `~/.uml/UMID/mconsole`).
    pub umid: String,
    /// Its port, `vecN`.
    pub port: String,
    /// `tx` or `rx`.
    pub dir: String,
}

impl fmt::Display for StageAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} {}", self.node, self.port, self.dir)
    }
}

/// The impairments of one link of the file, as planned.
#[derive(Clone, Debug, Serialize, De, PartialEq, Eq)]
pub struct LinkImpair {
    /// The ends as written, `NODE:IF` (A, B).
    pub ends: [String; 2],
    pub kind: LinkType,
    /// Settings from the file, A→B then B→A, as `key=value` words (`none`: nothing).
    pub set: [String; 2],
    /// Where A→B and B→A are realised; `None` when no vecbox datapath is on the link
    /// (both ends hosts or UML kernels and no `impair:` in the file).
    pub at: Option<[StageAt; 2]>,
    /// The xconnect node vecbox inserted on the link, if any.
    pub datapath: Option<String>,
}

impl LinkImpair {
    /// `A – B`.
    pub fn title(&self) -> String {
        format!("{} – {}", self.ends[0], self.ends[1])
    }

    /// How direction `d` (0 = A→B) is realised, in words.
    pub fn where_(&self, d: usize) -> String {
        match (&self.at, &self.datapath) {
            (None, _) => "no vecbox datapath".into(),
            (Some(at), Some(_)) => format!("{} on the datapath vecbox inserted", at[d]),
            (Some(at), None) => at[d].to_string(),
        }
    }
}

/// One line per impaired link (or link with an inserted datapath): what the file sets
/// per direction and where it is realised.
pub fn summary(impairs: &[LinkImpair]) -> Vec<String> {
    impairs
        .iter()
        .filter(|l| l.datapath.is_some() || l.set.iter().any(|s| s != "none"))
        .map(|l| {
            let dir = |d: usize| {
                format!(
                    "{} → {}: {} (at {})",
                    l.ends[d],
                    l.ends[1 - d],
                    l.set[d],
                    l.where_(d)
                )
            };
            format!("{}; {}", dir(0), dir(1))
        })
        .collect()
}

/// The settings of link `l` as a short label (`A→B delay=20ms / B→A none`), for graphs.
pub fn label(l: &LinkImpair) -> String {
    if l.set[0] == l.set[1] {
        l.set[0].clone()
    } else {
        format!("A→B {} / B→A {}", l.set[0], l.set[1])
    }
}

struct MapVisit;

impl<'de> Visitor<'de> for MapVisit {
    type Value = ImpairValue;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value (20ms, 1%, 10mbit, true) or a mapping")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ImpairValue, E> {
        Ok(ImpairValue::Scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ImpairValue, E> {
        Ok(ImpairValue::Scalar(Scalar::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ImpairValue, E> {
        Ok(ImpairValue::Scalar(match i64::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::Str(v.to_string()),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ImpairValue, E> {
        Ok(ImpairValue::Scalar(Scalar::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ImpairValue, E> {
        Ok(ImpairValue::Scalar(Scalar::Str(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ImpairValue, E> {
        Ok(ImpairValue::Map(ImpairMap::default()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ImpairValue, A::Error> {
        let mut out: Vec<(Spanned<String>, Spanned<ImpairValue>)> = Vec::new();
        while let Some(k) = map.next_key::<Spanned<String>>()? {
            if out.iter().any(|(o, _)| o.value == k.value) {
                return Err(de::Error::custom(format!("`{}` is given twice", k.value)));
            }
            let v = map.next_value()?;
            out.push((k, v));
        }
        Ok(ImpairValue::Map(ImpairMap(out)))
    }
}

impl<'de> Deserialize<'de> for ImpairValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MapVisit)
    }
}

impl<'de> Deserialize<'de> for ImpairMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(MapVisit)? {
            ImpairValue::Map(m) => Ok(m),
            ImpairValue::Scalar(s) => Err(de::Error::custom(format!(
                "impair: expected a mapping of impairment keys, found {s:?}; e.g. impair: {{delay: 20ms, loss: 1%}}"
            ))),
        }
    }
}
