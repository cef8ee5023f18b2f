//! Machine-readable output names what it counts: a real guest's JSON exit report (drops
//! by reason name, batch histograms with their bounds) against docs/metrics.md and the
//! published JSON Schema. (`vecbox status --json` is checked in tests/lab.rs.)

mod common;

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Guest, Lab, VECBOX, port_drops, port_drops_total};

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The reasons in docs/metrics.md's "Drop reasons" table.
fn documented_reasons() -> BTreeSet<String> {
    let doc = repo_file("docs/metrics.md");
    let start = doc
        .find("## Drop reasons")
        .expect("docs/metrics.md has Drop reasons");
    let section = &doc[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn published_report_schema_matches_the_types() {
    let out = Command::new(VECBOX)
        .args(["guest", "--report-schema"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let generated = String::from_utf8(out.stdout).unwrap();
    let published = repo_file("docs/guest-report.schema.json");
    assert!(
        generated.trim() == published.trim(),
        "docs/guest-report.schema.json is stale; regenerate it with\n  \
         vecbox guest --report-schema > docs/guest-report.schema.json"
    );
    let schema: serde_json::Value = serde_json::from_str(&published).unwrap();
    let required: BTreeSet<String> = schema["$defs"]["DropCounts"]["required"]
        .as_array()
        .expect("DropCounts lists its reasons")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(required, documented_reasons(), "schema vs docs/metrics.md");
}

/// A real xconnect between a veth and an inherited socketpair: three runts written into
/// the pair are found in the report under `drops.runt`, every documented reason is a key,
/// and the batch histograms carry their bounds.
#[test]
fn a_real_guests_report_names_its_drops_and_buckets() {
    let mut lab = Lab::new();
    let (a, g) = (lab.ns("a"), lab.ns("g"));
    lab.veth(&a, "a0", &g, "ga");
    lab.quiet(&g, "ga");
    lab.addr(&a, "a0", "10.78.0.1/24");
    let (mine, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
    nix::fcntl::fcntl(
        &theirs,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let fd = format!("vec1:transport=fd,fd={}", theirs.as_raw_fd());
    let guest = Guest::start(&lab, &g, "xconnect", &["vec0:transport=raw,ifname=ga", &fd]);
    drop(theirs);
    for junk in [&[][..], &[1u8; 5][..], &[2u8; 13][..]] {
        mine.send(junk).unwrap();
    }
    // ARP requests for an absent neighbour cross ga → vec1 and arrive here.
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = lab.exec(
        &a,
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.78.0.9"],
    );
    let mut buf = [0u8; 2048];
    let n = mine
        .recv(&mut buf)
        .expect("a frame forwarded onto the fd port");
    assert!(n >= 42, "an Ethernet frame: {n} bytes");
    let r = guest.stop();

    // Looked up by name.
    assert_eq!(port_drops(&r, 1, "runt"), 3, "{r}");
    assert_eq!(r["ports"][1]["drops"]["ring_full"], 0, "{r}");
    assert_eq!(port_drops_total(&r, 1), 3, "nothing else dropped: {r}");
    for p in 0..2 {
        let keys: BTreeSet<String> = r["ports"][p]["drops"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            documented_reasons(),
            "port {p}: report vs docs/metrics.md"
        );
        assert!(
            r["ports"][p]["stats"].get("drops").is_none(),
            "no unnamed array: {r}"
        );
    }
    // Histograms: contiguous buckets from 1, the last open, counts adding up.
    let rx = &r["ports"][0]["stats"]["rx_batch"];
    let buckets = rx["buckets"].as_array().unwrap();
    let mut next_min = 1;
    let mut total = 0;
    for (i, b) in buckets.iter().enumerate() {
        assert_eq!(b["min"], next_min, "bucket {i}: {rx}");
        total += b["batches"].as_u64().unwrap();
        match b["max"].as_u64() {
            Some(max) => next_min = max + 1,
            None => assert_eq!(i, buckets.len() - 1, "only the last is open: {rx}"),
        }
    }
    assert!(buckets.last().unwrap()["max"].is_null(), "{rx}");
    assert!(total > 0, "frames were received on vec0: {rx}");
    assert_eq!(rx["batches"].as_u64(), Some(total), "{rx}");
    assert!(r["function_state"].is_object(), "{r}");
}
