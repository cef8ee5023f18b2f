//! Errors of impairment settings: one line naming the key (as the user wrote it, e.g.
//! `tx_delay` in a spec), the bad value, what is wrong and the accepted form.

/// A refused impairment setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImpairError {
    /// A value that does not parse or is out of range.
    #[error("{key}: {value:?} {problem}; expected {expected}, e.g. {example}")]
    BadValue {
        key: String,
        value: String,
        problem: String,
        expected: &'static str,
        example: String,
    },
    /// A key no impairment has.
    #[error(
        "unknown impairment key {key:?}{}; keys: {}; e.g. {prefix}{}",
        hint(.prefix, *.suggestion),
        keys(.prefix),
        example(*.suggestion)
    )]
    UnknownKey {
        key: String,
        suggestion: Option<&'static str>,
        /// Prefix of the keys as written (`tx_` in a spec), for the suggestion and list.
        prefix: &'static str,
    },
    /// A word that is not `KEY=VALUE`.
    #[error("{word:?} is not KEY=VALUE; e.g. delay=20ms loss=1%")]
    NotPair { word: String },
    /// The same key twice in one change.
    #[error(
        "{key} is given twice; give each key once, e.g. {key}={}",
        value_of(example)
    )]
    Duplicate { key: String, example: &'static str },
    /// A key that only means something together with another one.
    #[error("{key}: needs {needs} ({why}); e.g. {example}")]
    Needs {
        key: String,
        needs: String,
        why: &'static str,
        example: &'static str,
    },
    /// Settings whose frames in flight would need more memory than a stage may hold.
    #[error(
        "{what} keeps up to {need} bytes in flight, more than the {max} bytes one \
         direction may hold; lower the rate, delay or queue"
    )]
    TooLarge { what: String, need: u64, max: u64 },
}

fn hint(prefix: &str, s: Option<&'static str>) -> String {
    s.map(|k| format!(" (did you mean {prefix}{k}?)"))
        .unwrap_or_default()
}

fn example(suggestion: Option<&'static str>) -> &'static str {
    suggestion
        .and_then(super::keys::key)
        .map_or("delay=20ms", |k| k.example)
}

fn value_of(example: &str) -> &str {
    example.split_once('=').map_or(example, |x| x.1)
}

fn keys(prefix: &str) -> String {
    super::keys::KEYS
        .iter()
        .map(|k| format!("{prefix}{}", k.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ImpairError {
    /// The same error with every key name prefixed (`delay` → `tx_delay`), for specs.
    pub fn prefixed(self, prefix: &'static str) -> ImpairError {
        let p = |k: String| format!("{prefix}{k}");
        match self {
            ImpairError::BadValue {
                key,
                value,
                problem,
                expected,
                example,
            } => ImpairError::BadValue {
                key: p(key),
                value,
                problem,
                expected,
                example: p(example),
            },
            ImpairError::UnknownKey {
                key, suggestion, ..
            } => ImpairError::UnknownKey {
                key: p(key),
                suggestion,
                prefix,
            },
            ImpairError::Duplicate { key, example } => ImpairError::Duplicate {
                key: p(key),
                example,
            },
            ImpairError::Needs {
                key,
                needs,
                why,
                example,
            } => ImpairError::Needs {
                key: p(key),
                needs: p(needs),
                why,
                example,
            },
            other => other,
        }
    }

    /// The key the error is about, as written.
    pub fn key(&self) -> Option<&str> {
        match self {
            ImpairError::BadValue { key, .. }
            | ImpairError::UnknownKey { key, .. }
            | ImpairError::Duplicate { key, .. }
            | ImpairError::Needs { key, .. } => Some(key),
            _ => None,
        }
    }
}
