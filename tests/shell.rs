//! `vecbox completions` and `vecbox man`: the bash script sourced by a real bash and
//! driven the way bash's completion does it (COMP_WORDS/COMP_CWORD), the manual pages
//! rendered by man-db's `man -l`, both checked against the subcommands `--help` lists.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{VECBOX, require_tool};

fn vecbox(args: &[&str]) -> Output {
    Command::new(VECBOX).args(args).output().unwrap()
}

fn stdout_ok(args: &[&str]) -> String {
    let out = vecbox(args);
    assert!(
        out.status.success(),
        "vecbox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands `vecbox --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let help = stdout_ok(&["--help"]);
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("--help has a Commands section");
    let names: Vec<String> = list
        .lines()
        .take_while(|l| !l.trim().is_empty())
        // Names are indented by two; wrapped descriptions by more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    for expected in ["guest", "up", "status", "completions", "man"] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    names
}

/// Source the bash script, then complete `line` (the word under the cursor is the last
/// one; a trailing space starts an empty word) as bash would; returns COMPREPLY.
fn bash_complete(script: &std::path::Path, line: &str) -> Vec<String> {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    if line.ends_with(' ') {
        words.push("");
    }
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let cmd = format!(
        "set -e; source '{}'
         f=$(complete -p vecbox | sed -E 's/.*-F ([^ ]+).*/\\1/')
         [ -n \"$f\" ] || {{ echo 'no completion function registered for vecbox' >&2; exit 3; }}
         COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}
         \"$f\" vecbox '{}' '{prev}'
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words[cword],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &cmd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash completion of {line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_options_and_values() {
    require_tool("bash");
    let dir = std::env::temp_dir().join(format!("vbt{}-bashcomp", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("vecbox.bash");
    std::fs::write(&script, stdout_ok(&["completions", "bash"])).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("vecbox sta", &["status"]),
        ("vecbox comp", &["completions"]),
        ("vecbox up --det", &["--detach"]),
        ("vecbox completions ", &["bash", "fish", "zsh"]),
        ("vecbox graph lab.yaml --format ", &["dot", "mermaid"]),
    ];
    let mut failures = Vec::new();
    for (line, want) in cases {
        let mut got = bash_complete(&script, line);
        got.sort();
        // Where a value is expected bash is also offered the options (`-h`, ...);
        // compare the values.
        if !want.iter().any(|w| w.starts_with('-')) {
            got.retain(|w| !w.starts_with('-'));
        }
        if got != *want {
            failures.push(format!("{line:?}: got {got:?}, want {want:?}"));
        }
    }
    // Every subcommand is offered after `vecbox `.
    let all = bash_complete(&script, "vecbox ");
    for sub in subcommands() {
        if !all.contains(&sub) {
            failures.push(format!("`vecbox <TAB>` lacks {sub}: {all:?}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    let zsh = stdout_ok(&["completions", "zsh"]);
    let fish = stdout_ok(&["completions", "fish"]);
    assert!(
        zsh.starts_with("#compdef vecbox"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    assert!(fish.contains("complete -c vecbox"));
    for sub in subcommands() {
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}");
        assert!(fish.contains(&format!("-a \"{sub}\"")), "fish lacks {sub}");
    }
    let bad = vecbox(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bash"));
}

/// `roff | man -l -` as plain text (formatting stripped).
fn man_render(roff: &[u8]) -> String {
    require_tool("man");
    let mut child = Command::new("man")
        .args(["-P", "cat", "-l", "-"])
        .env("MANWIDTH", "120")
        .env("MAN_KEEP_FORMATTING", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(roff).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "man -l -: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Overstrike bold/underline (`X\bX`, `_\bX`) if any survived.
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn man_page_renders_and_names_every_subcommand() {
    let page = man_render(stdout_ok(&["man"]).as_bytes());
    assert!(page.contains("NAME") && page.contains("SYNOPSIS"), "{page}");
    assert!(page.contains("vecbox - "), "{page}");
    for sub in subcommands() {
        assert!(
            page.contains(&format!("vecbox-{sub}(1)")),
            "vecbox(1) does not name {sub}:\n{page}"
        );
    }
    // A subcommand's page keeps its long help as written (tables, examples).
    let up = man_render(stdout_ok(&["man", "up"]).as_bytes());
    assert!(up.contains("--detach"), "{up}");
    assert!(up.contains("DETAILS"), "{up}");
    let guest = man_render(stdout_ok(&["man", "guest"]).as_bytes());
    assert!(
        guest.contains("  xconnect   exactly two ports"),
        "layout kept:\n{guest}"
    );
    let asm = stdout_ok(&["man", "bpf", "asm"]);
    assert!(
        asm.contains("vecbox\\-bpf\\-asm") || asm.contains("vecbox-bpf-asm"),
        "{asm}"
    );
    let bad = vecbox(&["man", "nosuch"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no subcommand `nosuch`") && err.contains("status"),
        "{err}"
    );
}

#[test]
fn man_install_writes_one_page_per_command() {
    let dir = std::env::temp_dir().join(format!("vbt{}-man", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = vecbox(&["man", "--install", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = vec!["vecbox.1".into(), "vecbox-bpf-asm.1".into()];
    want.extend(subcommands().iter().map(|s| format!("vecbox-{s}.1")));
    for w in &want {
        assert!(files.contains(w), "{w} missing: {files:?}");
    }
    assert!(!files.iter().any(|f| f.contains("help")), "{files:?}");
    let status = man_render(&std::fs::read(dir.join("vecbox-status.1")).unwrap());
    assert!(status.contains("--json"), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}
