//! The Prometheus side: a [`prometheus::core::Collector`] over the shared regions of any
//! number of guests. Each guest's series get the labels `lab` (when not empty) and
//! `node` (the guest's umid); every guest also yields `vecbox_guest_up`. The guest's
//! own `metrics=ADDR` endpoint and the lab supervisor both use it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use super::region::{ReadError, RegionReader, State};
use super::sink::{Kind, Series};

/// Name of the per-guest liveness gauge.
pub const UP: &str = "vecbox_guest_up";

struct Source {
    lab: String,
    node: String,
    path: PathBuf,
    reader: Option<RegionReader>,
    /// `iface` label values to replace (`vec0` → the lab's name for that interface).
    ifnames: Vec<(String, String)>,
}

/// Collects the metrics of many guests from their regions.
#[derive(Default)]
pub struct GuestCollector {
    sources: Mutex<Vec<Source>>,
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    pid > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

impl GuestCollector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add guest `node` of `lab` whose region file is `path` (it may not exist yet).
    pub fn add(&self, lab: &str, node: &str, path: PathBuf) {
        self.add_named(lab, node, path, Vec::new());
    }

    /// As [`GuestCollector::add`], reporting interface `vecN` as the name paired with it
    /// in `ifnames` (a lab's own interface names).
    pub fn add_named(&self, lab: &str, node: &str, path: PathBuf, ifnames: Vec<(String, String)>) {
        let mut s = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        s.push(Source {
            lab: lab.to_string(),
            node: node.to_string(),
            path,
            reader: None,
            ifnames,
        });
    }

    /// Stop collecting guest `node` of `lab` (a lab node removed by `vecbox apply`, or
    /// added again with new interface names).
    pub fn remove(&self, lab: &str, node: &str) {
        let mut s = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|x| !(x.lab == lab && x.node == node));
    }

    /// Every family, merged over all guests, sorted by name.
    pub fn families(&self) -> Vec<MetricFamily> {
        let mut fams: BTreeMap<String, MetricFamily> = BTreeMap::new();
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        for src in sources.iter_mut() {
            let up = read_source(src, &mut fams);
            let mut base = Vec::new();
            if !src.lab.is_empty() {
                base.push(label("lab", &src.lab));
            }
            base.push(label("node", &src.node));
            let mut g = Gauge::default();
            g.set_value(if up { 1.0 } else { 0.0 });
            let mut m = Metric::default();
            m.set_label(base);
            m.set_gauge(g);
            push(
                &mut fams,
                UP,
                "1 if the guest is running and publishing its counters.",
                MetricType::GAUGE,
                m,
            );
        }
        fams.into_values().collect()
    }

    /// The Prometheus text exposition of every guest.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = prometheus::Encoder::encode(&enc, &self.families(), &mut out) {
            return format!("# error encoding metrics: {e}\n");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

fn push(
    fams: &mut BTreeMap<String, MetricFamily>,
    name: &str,
    help: &str,
    t: MetricType,
    m: Metric,
) {
    let f = fams.entry(name.to_string()).or_insert_with(|| {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(t);
        f
    });
    if f.get_field_type() == t {
        f.mut_metric().push(m);
    }
}

/// Read one guest into `fams`; `true` if it is up.
fn read_source(src: &mut Source, fams: &mut BTreeMap<String, MetricFamily>) -> bool {
    if src.reader.is_none() {
        match RegionReader::open(&src.path) {
            Ok(r) => src.reader = Some(r),
            Err(_) => return false,
        }
    }
    let Some(reader) = src.reader.as_mut() else {
        return false;
    };
    let reading = match reader.read() {
        Ok(r) => r,
        Err(ReadError::Busy) => return true,
        Err(e) => {
            tracing::debug!(node = %src.node, error = %e, "cannot read metrics region");
            src.reader = None;
            return false;
        }
    };
    let up = reading.state != State::Exited && pid_alive(reading.pid);
    let mut slot = 0;
    for s in reading.series {
        let n = s.kind.slots();
        let Some(v) = reading.values.get(slot..slot + n) else {
            break;
        };
        slot += n;
        let mut labels = Vec::with_capacity(s.labels.len() + 2);
        if !src.lab.is_empty() {
            labels.push(label("lab", &src.lab));
        }
        labels.push(label("node", &src.node));
        labels.extend(s.labels.iter().map(|(k, v)| {
            let v = match src
                .ifnames
                .iter()
                .find(|(from, _)| k == "iface" && from == v)
            {
                Some((_, to)) => to.as_str(),
                None => v.as_str(),
            };
            label(k, v)
        }));
        let (t, m) = metric(s, v, labels);
        push(fams, &s.name, &s.help, t, m);
    }
    if !up {
        // The guest is gone; a restarted guest creates a new file at the same path.
        src.reader = None;
    }
    up
}

fn metric(s: &Series, v: &[u64], labels: Vec<LabelPair>) -> (MetricType, Metric) {
    let mut m = Metric::default();
    m.set_label(labels);
    let t = match &s.kind {
        Kind::Counter => {
            let mut c = Counter::default();
            c.set_value(v[0] as f64);
            m.set_counter(c);
            MetricType::COUNTER
        }
        Kind::Gauge => {
            let mut g = Gauge::default();
            g.set_value(f64::from_bits(v[0]));
            m.set_gauge(g);
            MetricType::GAUGE
        }
        Kind::Histogram { bounds, nanos } => {
            let scale = if *nanos { 1e-9 } else { 1.0 };
            let mut h = Histogram::default();
            let mut cum = 0u64;
            let mut buckets = Vec::with_capacity(bounds.len());
            for (i, b) in bounds.iter().enumerate() {
                cum += v[i];
                let mut bk = Bucket::default();
                bk.set_upper_bound(*b as f64 * scale);
                bk.set_cumulative_count(cum);
                buckets.push(bk);
            }
            cum += v[bounds.len()];
            h.set_bucket(buckets);
            h.set_sample_count(cum);
            h.set_sample_sum(v[bounds.len() + 1] as f64 * scale);
            m.set_histogram(h);
            MetricType::HISTOGRAM
        }
    };
    (t, m)
}

impl Collector for GuestCollector {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::region::RegionWriter;
    use crate::metrics::sink::{MetricSink, Snapshot};

    #[test]
    fn many_guests_merge_into_one_family_each() {
        let dir = std::env::temp_dir().join(format!("vecbox-collect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = GuestCollector::new();
        let mut writers = Vec::new();
        for (i, node) in ["r1", "r2"].iter().enumerate() {
            let path = dir.join(node);
            let _ = std::fs::remove_file(&path);
            let mut w = RegionWriter::create(&path).unwrap();
            let mut s = Snapshot::default();
            s.begin();
            s.counter(
                "vecbox_rx_packets_total",
                "Rx.",
                &[("iface", "vec0")],
                10 + i as u64,
            );
            s.end();
            w.publish(&mut s);
            writers.push(w);
            c.add("lab1", node, path);
        }
        c.add("lab1", "gone", dir.join("nosuch"));
        c.add_named(
            "lab1",
            "r1-named",
            dir.join("r1"),
            vec![("vec0".into(), "uplink".into())],
        );
        let text = c.encode();
        assert_eq!(
            text.matches("# TYPE vecbox_rx_packets_total counter")
                .count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("vecbox_rx_packets_total{lab=\"lab1\",node=\"r1\",iface=\"vec0\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("vecbox_rx_packets_total{lab=\"lab1\",node=\"r2\",iface=\"vec0\"} 11"),
            "{text}"
        );
        assert!(
            text.contains("vecbox_guest_up{lab=\"lab1\",node=\"r1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vecbox_guest_up{lab=\"lab1\",node=\"gone\"} 0"),
            "{text}"
        );
        // A guest that exits is down.
        writers.pop();
        assert!(
            c.encode()
                .contains("vecbox_guest_up{lab=\"lab1\",node=\"r2\"} 0")
        );
        // It also works through a prometheus Registry.
        let reg = prometheus::Registry::new();
        reg.register(Box::new(c)).unwrap();
        assert!(reg.gather().iter().any(|f| f.name() == "vecbox_guest_up"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
