//! `vecbox console UMID` without a command: an interactive prompt `(UMID) ` with line
//! editing, history (this session) and completion of command names and `proc` files.
//! Local commands, as in `uml_mconsole`: `quit`, `switch NAME`, `mconsole-version`.

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::client::Client;
use super::commands::TABLE;

const LOCAL: [&str; 3] = ["quit", "switch", "mconsole-version"];
const PROC_FILES: [&str; 7] = [
    "net/dev",
    "stats",
    "fdb",
    "routes",
    "neigh",
    "rules",
    "conntrack",
];

/// Completion candidates for the line `line` up to the cursor `pos`.
pub fn complete(line: &str, pos: usize) -> (usize, Vec<String>) {
    let head = &line[..pos.min(line.len())];
    if let Some(arg) = head.strip_prefix("proc ") {
        let start = head.len() - arg.len();
        return (
            start,
            PROC_FILES
                .iter()
                .filter(|f| f.starts_with(arg))
                .map(|f| f.to_string())
                .collect(),
        );
    }
    if head.contains(' ') {
        return (pos, Vec::new());
    }
    let words = TABLE.iter().map(|(n, _)| *n).chain(LOCAL);
    (
        0,
        words
            .filter(|w| w.starts_with(head))
            .map(|w| w.to_string())
            .collect(),
    )
}

struct Words;

impl Completer for Words {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, c) = complete(line, pos);
        Ok((
            start,
            c.into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}
impl Hinter for Words {
    type Hint = String;
}
impl Highlighter for Words {}
impl Validator for Words {}
impl Helper for Words {}

/// Run the prompt against `name` until `quit` or end of input; returns the exit status
/// (the error flag of the last command).
pub fn run(name: &str) -> i32 {
    let mut name = name.to_string();
    let mut client = match Client::connect(&name) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            return 1;
        }
    };
    let mut ed: Editor<Words, rustyline::history::DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("vecbox: error: terminal: {e}");
            return 1;
        }
    };
    ed.set_helper(Some(Words));
    let mut status = 0;
    loop {
        let line = match ed.readline(&format!("({name}) ")) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("vecbox: error: {e}");
                return 1;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = ed.add_history_entry(line);
        if line == "quit" {
            break;
        }
        if line == "mconsole-version" {
            println!("vecbox console (mconsole protocol version 2)");
            continue;
        }
        if let Some(new) = line.strip_prefix("switch ") {
            match Client::connect(new.trim()) {
                Ok(c) => {
                    client = c;
                    name = new.trim().to_string();
                }
                Err(e) => eprintln!("vecbox: error: {e}"),
            }
            continue;
        }
        match client.request(line) {
            Ok(r) => {
                println!("{}", r.line());
                status = i32::from(r.err != 0);
            }
            Err(e) => {
                eprintln!("vecbox: error: {e}");
                status = 1;
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_commands_and_proc_files() {
        assert_eq!(complete("ve", 2), (0, vec!["version".to_string()]));
        let (_, all) = complete("", 0);
        assert!(all.contains(&"halt".to_string()) && all.contains(&"quit".to_string()));
        assert_eq!(
            complete("proc ne", 7),
            (5, vec!["net/dev".into(), "neigh".into()])
        );
        assert_eq!(complete("config v", 8).1, Vec::<String>::new());
    }
}
