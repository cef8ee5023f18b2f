//! Golden error tests for `vecbox check`: every tests/errors/NAME.yaml is checked and
//! its output (stderr, with file:line:col and the hint) must equal NAME.txt exactly.
//! Set VECBOX_BLESS=1 to rewrite the .txt files after an intended change, then review
//! the diff. Also: the published JSON Schema is the one generated from the types, every
//! repository topology is valid, and `--json` output.

use std::path::Path;
use std::process::Command;

const VECBOX: &str = env!("CARGO_BIN_EXE_vecbox");

fn check(dir: &Path, file: &str, extra: &[&str]) -> std::process::Output {
    Command::new(VECBOX)
        .current_dir(dir)
        .arg("check")
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn golden_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let bless = std::env::var_os("VECBOX_BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "golden files missing: {files:?}");
    let mut failures = Vec::new();
    for f in &files {
        let out = check(&dir, f, &[]);
        assert_eq!(out.status.code(), Some(2), "{f}: expected exit status 2");
        let got = String::from_utf8_lossy(&out.stderr).into_owned();
        let golden = dir.join(f.replace(".yaml", ".txt"));
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!("{f}:\n--- want\n{want}--- got\n{got}"));
        }
        assert!(
            got.starts_with(&format!("{f}:")),
            "{f}: no file:line:col: {got}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let out = check(&dir, "dangling-endpoint.yaml", &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 8);
    assert_eq!(v["errors"][0]["column"], 17);
    assert!(
        v["errors"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("`server`")
    );
}

#[test]
fn repository_topologies_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    for f in [
        "quickstart.yaml",
        "router-triangle.yaml",
        "uml-mixed.yaml",
        "bench.yaml",
        "lan.yaml",
    ] {
        let out = check(&dir, f, &[]);
        assert!(
            out.status.success(),
            "{f}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn published_schema_matches_the_types() {
    let out = Command::new(VECBOX)
        .args(["check", "--schema"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = String::from_utf8_lossy(&out.stdout);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/topology.schema.json");
    if std::env::var_os("VECBOX_BLESS").is_some() {
        std::fs::write(&path, got.as_bytes()).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        got, want,
        "docs/topology.schema.json is stale: run VECBOX_BLESS=1 cargo test --test lab_check"
    );
    let v: serde_json::Value = serde_json::from_str(&want).unwrap();
    assert_eq!(v["additionalProperties"], false);
    assert!(v["properties"]["nodes"].is_object());
}
