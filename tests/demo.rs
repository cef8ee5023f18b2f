//! `vecbox demo`, the README's main job: it must move real traffic and leave nothing.

mod common;

use std::process::Command;

fn run_demo(args: &[&str]) -> String {
    common::require_root();
    let child = Command::new(common::VECBOX)
        .arg("demo")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = format!("vbd{}-", child.id());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ns.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "the demo left namespaces behind: {left:?}");
    text
}

#[test]
fn demo_moves_ping_and_tcp_and_cleans_up() {
    let text = run_demo(&["--seconds", "1"]);
    assert!(text.contains("5 sent, 5 received"), "{text}");
    let gbps: f64 = text
        .lines()
        .find(|l| l.starts_with("TCP A -> B"))
        .and_then(|l| l.split(" = ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no TCP line: {text}"));
    assert!(gbps > 0.05, "{text}");
    assert!(
        text.contains("--- guest report ---") && text.contains("vec1   raw"),
        "{text}"
    );
}

#[test]
fn demo_over_a_tap_with_software_segmentation() {
    let text = run_demo(&[
        "--seconds",
        "1",
        "--transport",
        "tap",
        "--gro",
        "0",
        "--function",
        "bridge",
    ]);
    assert!(text.contains("5 sent, 5 received"), "{text}");
    assert!(text.contains("vec1   tap"), "{text}");
}
