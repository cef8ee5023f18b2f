//! Problems found in a topology file, each with `file:line:col`, what is wrong and a
//! suggestion; and reading the file into [`Topology`].

use std::fmt;

use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use super::topology::Topology;

/// One problem in a topology file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something to suggest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.line, self.column, self.message
            )?;
        } else {
            write!(f, "{}: error: {}", self.file, self.message)?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub struct Diags {
    pub file: String,
    pub list: Vec<Diagnostic>,
}

impl Diags {
    /// An empty collection for `file`.
    pub fn new(file: &str) -> Diags {
        Diags {
            file: file.to_string(),
            list: Vec::new(),
        }
    }

    /// Record a problem at `at`.
    pub fn at(&mut self, at: Location, message: impl Into<String>, hint: Option<String>) {
        self.list.push(Diagnostic {
            file: self.file.clone(),
            line: at.line() as u32,
            column: at.column() as u32,
            message: message.into(),
            hint,
        });
    }

    /// Record a problem at the value `s`.
    pub fn on<T>(&mut self, s: &Spanned<T>, message: impl Into<String>, hint: Option<String>) {
        self.at(s.referenced, message, hint);
    }

    /// `true` when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Most bytes a topology file may have.
pub const MAX_FILE: usize = 4 << 20;

/// Parse YAML `text` (named `file` in messages) into a [`Topology`]; a syntax or type
/// error becomes one [`Diagnostic`].
pub fn parse(file: &str, text: &str) -> Result<Topology, Diagnostic> {
    if text.len() > MAX_FILE {
        return Err(Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: format!(
                "the file is {} bytes; at most {MAX_FILE} are read",
                text.len()
            ),
            hint: None,
        });
    }
    serde_saphyr::from_str::<Topology>(text).map_err(|e| from_yaml(file, &e))
}

fn from_yaml(file: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((0, 0));
    let raw = e.without_snippet().to_string();
    let message = strip_location(&raw);
    let hint = suggest(&message);
    Diagnostic {
        file: file.to_string(),
        line,
        column,
        message,
        hint,
    }
}

/// serde-saphyr appends " at line L, column C" (and similar); the location is printed
/// separately, so drop it.
fn strip_location(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or("").trim();
    let cut = [" at line ", ", line ", " line "]
        .iter()
        .filter_map(|p| first.find(p))
        .min()
        .unwrap_or(first.len());
    first[..cut].trim_end_matches([',', ' ', ':']).to_string()
}

/// "did you mean" for serde's unknown field / unknown variant messages:
/// "unknown field `x`, expected one of a, b, c" (words possibly in backticks).
fn suggest(msg: &str) -> Option<String> {
    let (what, rest) = if let Some(r) = msg.strip_prefix("unknown field `") {
        ("key", r)
    } else if let Some(r) = msg.strip_prefix("unknown variant `") {
        ("value", r)
    } else {
        return None;
    };
    let (word, tail) = rest.split_once('`')?;
    let list = tail
        .split_once("expected one of ")
        .or_else(|| tail.split_once("expected "))?
        .1;
    let accepted: Vec<&str> = list
        .split([',', ' '])
        .map(|w| w.trim_matches('`'))
        .filter(|w| !w.is_empty() && *w != "or")
        .collect();
    if accepted.is_empty() {
        return None;
    }
    closest(word, &accepted)
        .map(|c| format!("did you mean `{c}`?"))
        .or_else(|| Some(format!("accepted {what}s: {}", accepted.join(", "))))
}

/// The candidate nearest to `word` (case-insensitive match or small edit distance).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if word.len() > 64 {
        return None;
    }
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(word)) {
        return Some(c);
    }
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= if c.len() <= 4 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting an adjacent transposition as one edit (`hots` → `host`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_has_location_and_suggestion() {
        let e = parse(
            "t.yaml",
            "name: a\nnodes:\n  x:\n    kind: host\n    kinds: 1\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (5, 5), "{e}");
        assert!(e.message.contains("kinds"), "{e}");
        assert!(e.hint.as_deref().unwrap().contains("`kind`"), "{e}");
    }

    #[test]
    fn unknown_kind_suggests() {
        let e = parse("t.yaml", "name: a\nnodes:\n  x:\n    kind: hots\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.hint.as_deref().unwrap().contains("`host`"), "{e}");
    }

    #[test]
    fn closest_words() {
        assert_eq!(closest("brige", &["bridge", "router"]), Some("bridge"));
        assert_eq!(closest("zzz", &["bridge", "router"]), None);
    }
}
