//! The counters as JSON (the guest's exit report, `stats=FILE`): drops as a map from
//! reason name to count, batch histograms as buckets that carry their bounds. Each form
//! has a JSON Schema generated with the rest of the report's (docs/guest-report.schema.json).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

use super::{BatchStats, DropReason};

/// Every drop counter of a port by reason name, zeros included, in counter order:
/// `{"runt": 0, "oversize": 2, ...}`. The names are those of the `reason` label in
/// docs/metrics.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropCounts(pub [u64; DropReason::COUNT]);

impl Serialize for DropCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            DropReason::ALL
                .iter()
                .map(|r| (r.name(), self.0[*r as usize])),
        )
    }
}

impl JsonSchema for DropCounts {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DropCounts".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let count = serde_json::json!({"type": "integer", "format": "uint64", "minimum": 0});
        let props: serde_json::Map<String, serde_json::Value> = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), count.clone()))
            .collect();
        let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        json_schema!({
            "description": "Frames dropped by the port, by reason: every reason vecbox counts is present (0 when none); the reasons are explained in docs/metrics.md (Drop reasons). A later vecbox may add reasons.",
            "type": "object",
            "properties": props,
            "required": names,
            "additionalProperties": count,
        })
    }
}

/// One bucket of a batch-size histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct BatchBucket {
    /// Smallest batch (frames per system call) counted in this bucket.
    pub min: u64,
    /// Largest batch counted in this bucket; `null` for the last, unbounded one.
    pub max: Option<u64>,
    /// Batches of `min..=max` frames (not cumulative).
    pub batches: u64,
}

/// The buckets of `b` with their bounds: 1, 2, 3–4, 5–8, ..., 129–256, 257 and more.
pub fn batch_buckets(b: &BatchStats) -> Vec<BatchBucket> {
    (0..BatchStats::BUCKETS)
        .map(|i| BatchBucket {
            min: if i == 0 {
                1
            } else {
                BatchStats::bucket_le(i - 1).unwrap_or(0) + 1
            },
            max: BatchStats::bucket_le(i),
            batches: b.buckets[i],
        })
        .collect()
}

/// `serialize_with` for [`BatchStats::buckets`].
pub fn serialize_buckets<S: Serializer>(
    buckets: &[u64; BatchStats::BUCKETS],
    s: S,
) -> Result<S::Ok, S::Error> {
    let b = BatchStats {
        buckets: *buckets,
        ..BatchStats::default()
    };
    batch_buckets(&b).serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_named_and_complete() {
        let mut c = [0u64; DropReason::COUNT];
        c[DropReason::RingFull as usize] = 7;
        let v = serde_json::to_value(DropCounts(c)).unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(m.len(), DropReason::COUNT);
        assert_eq!(m["ring_full"], 7);
        assert_eq!(m["runt"], 0);
        let schema = serde_json::to_value(schemars::schema_for!(DropCounts)).unwrap();
        assert_eq!(
            schema["required"].as_array().unwrap().len(),
            DropReason::COUNT
        );
        assert!(schema["properties"]["bad_vnet_header"].is_object());
    }

    #[test]
    fn buckets_carry_their_bounds() {
        let mut b = BatchStats::default();
        for n in [1, 3, 4, 256, 257, 5000] {
            b.record(n);
        }
        let v = serde_json::to_value(b).unwrap();
        let buckets = v["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), BatchStats::BUCKETS);
        assert_eq!(
            buckets[0],
            serde_json::json!({"min": 1, "max": 1, "batches": 1})
        );
        assert_eq!(
            buckets[1],
            serde_json::json!({"min": 2, "max": 2, "batches": 0})
        );
        assert_eq!(
            buckets[2],
            serde_json::json!({"min": 3, "max": 4, "batches": 2})
        );
        assert_eq!(
            buckets[8],
            serde_json::json!({"min": 129, "max": 256, "batches": 1})
        );
        assert_eq!(
            buckets[9],
            serde_json::json!({"min": 257, "max": null, "batches": 2})
        );
        assert_eq!(v["batches"], 6);
    }
}
