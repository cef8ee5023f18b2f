//! `vecbox completions SHELL` and `vecbox man [COMMAND]...`: shell completion scripts
//! and manual pages, generated from the same clap definitions as `--help`, so they list
//! exactly the commands and options this binary has.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

pub const COMPLETIONS_HELP: &str = "\
Prints a completion script for SHELL on stdout. Install it where the shell looks:

  bash  vecbox completions bash > /usr/share/bash-completion/completions/vecbox
        (or ~/.local/share/bash-completion/completions/vecbox; or for this shell only:
        source <(vecbox completions bash))
  zsh   vecbox completions zsh > \"${fpath[1]}/_vecbox\"   (then: compinit)
  fish  vecbox completions fish > ~/.config/fish/completions/vecbox.fish

Subcommands, options and their fixed values (--format dot|mermaid, ...) complete;
file arguments complete as files.";

pub const MAN_HELP: &str = "\
Prints the manual page (roff) of vecbox, or of one subcommand, on stdout:

  vecbox man | man -l -          read vecbox(1) without installing it
  vecbox man up | man -l -       the page of `vecbox up` (vecbox-up(1))
  vecbox man bpf asm             the page of `vecbox bpf asm`, as roff

--install DIR writes every page (vecbox.1, vecbox-up.1, vecbox-bpf-asm.1, ...) into
DIR, creating it if needed:

  vecbox man --install /usr/local/share/man/man1 && mandb -q
  man vecbox-up";

/// Shells `vecbox completions` writes scripts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShellName {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// Shell to write the completion script for.
    #[arg(value_enum)]
    shell: ShellName,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Subcommand whose page to print (`up`, `bpf asm`, ...); without one, vecbox(1).
    #[arg(value_name = "COMMAND")]
    command: Vec<String>,
    /// Write one page per command into DIR instead of printing.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    install: Option<PathBuf>,
}

/// `vecbox completions SHELL` for the command line `cmd`.
pub fn completions(a: &CompletionsArgs, mut cmd: clap::Command) -> i32 {
    let shell = match a.shell {
        ShellName::Bash => clap_complete::Shell::Bash,
        ShellName::Zsh => clap_complete::Shell::Zsh,
        ShellName::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vecbox", &mut out);
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> i32 {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        // A reader that stopped early (`| head`) is not an error worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("vecbox: error: writing to stdout: {e}");
            1
        }
    }
}

/// `vecbox man` for the command line `cmd`.
pub fn man(a: &ManArgs, cmd: clap::Command) -> i32 {
    let mut root = cmd.disable_help_subcommand(true);
    root.build();
    if let Some(dir) = &a.install {
        return install(&root, dir);
    }
    let mut page = &root;
    for (i, word) in a.command.iter().enumerate() {
        let Some(sub) = page.find_subcommand(word) else {
            let known: Vec<&str> = page.get_subcommands().map(|c| c.get_name()).collect();
            let at = if i == 0 {
                "vecbox".to_string()
            } else {
                format!("vecbox {}", a.command[..i].join(" "))
            };
            eprintln!(
                "vecbox: error: `{at}` has no subcommand `{word}`; it has: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
            return 2;
        };
        page = sub;
    }
    let mut out = Vec::new();
    if let Err(e) = render(page, &mut out) {
        eprintln!("vecbox: error: rendering the manual page: {e}");
        return 1;
    }
    write_stdout(&out)
}

/// Every page of `root`, depth first: vecbox, vecbox-up, vecbox-bpf, vecbox-bpf-asm, ...
fn pages(root: &clap::Command) -> Vec<&clap::Command> {
    let mut all = vec![root];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        all.extend(pages(sub));
    }
    all
}

fn page_name(cmd: &clap::Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

fn install(root: &clap::Command, dir: &std::path::Path) -> i32 {
    let result = (|| -> io::Result<usize> {
        std::fs::create_dir_all(dir)?;
        let all = pages(root);
        for cmd in &all {
            let mut out = Vec::new();
            render(cmd, &mut out)?;
            std::fs::write(dir.join(format!("{}.1", page_name(cmd))), out)?;
        }
        Ok(all.len())
    })();
    match result {
        Ok(n) => {
            eprintln!(
                "vecbox: wrote {n} manual pages to {} (vecbox.1, vecbox-up.1, ...)",
                dir.display()
            );
            0
        }
        Err(e) => {
            eprintln!(
                "vecbox: error: writing manual pages to {}: {e}",
                dir.display()
            );
            1
        }
    }
}

/// One page: clap_mangen's sections, then the long help text after the options as
/// DETAILS (kept as written: it holds tables and examples), then SEE ALSO.
fn render(cmd: &clap::Command, w: &mut Vec<u8>) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    if let Some(text) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        w.extend_from_slice(b".SH DETAILS\n.nf\n");
        for line in text.to_string().lines() {
            w.extend_from_slice(escape(line).as_bytes());
            w.push(b'\n');
        }
        w.extend_from_slice(b".fi\n");
    }
    let mut see: Vec<String> = Vec::new();
    if cmd.get_name() != "vecbox" {
        see.push("vecbox(1)".into());
    }
    see.extend(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("{}(1)", page_name(s))),
    );
    if !see.is_empty() {
        w.extend_from_slice(format!(".SH \"SEE ALSO\"\n{}\n", see.join(", ")).as_bytes());
    }
    man.render_version_section(w)?;
    // Each section above starts with the same two-line preamble; once is enough.
    let text = String::from_utf8_lossy(w).into_owned();
    let preamble = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    if let Some(first) = text.find(preamble) {
        let rest = text[first + preamble.len()..].replace(preamble, "");
        *w = format!("{}{rest}", &text[..first + preamble.len()]).into_bytes();
    }
    Ok(())
}

/// A line of plain text as roff in no-fill mode: backslashes and minus signs escaped,
/// a leading `.` or `'` kept from being read as a request.
fn escape(line: &str) -> String {
    let mut s = String::with_capacity(line.len() + 8);
    if line.starts_with(['.', '\'']) {
        s.push_str("\\&");
    }
    for c in line.chars() {
        match c {
            '\\' => s.push_str("\\e"),
            '-' => s.push_str("\\-"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_escapes() {
        assert_eq!(escape("a-b\\c"), "a\\-b\\ec");
        assert_eq!(escape(".x"), "\\&.x");
        assert_eq!(escape("'x"), "\\&'x");
        assert_eq!(escape("  x.y"), "  x.y");
    }
}
