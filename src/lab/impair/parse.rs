//! `impair:` maps of a topology file → the settings of each direction, through the one
//! impairment parser ([`Change::set`], [`Params::apply`]). Problems are reported at
//! the key or value they are about, with the accepted form.

use serde_saphyr::{Location, Spanned};

use super::{ImpairMap, ImpairValue};
use crate::impair::{Change, ImpairError, Params};
use crate::lab::diag::Diags;
use crate::lab::topology::Scalar;

/// The two directions' keys of a map.
const DIRS: [&str; 2] = ["a_to_b", "b_to_a"];

/// The topology form of a key's example: `delay=20ms` → `impair: {delay: 20ms}`.
fn file_form(e: &ImpairError) -> Option<String> {
    let example = match e {
        ImpairError::BadValue { example, .. } => example.as_str(),
        ImpairError::Needs { example, .. } => example,
        ImpairError::Duplicate { example, .. } => example,
        _ => "delay=20ms loss=1%",
    };
    let pairs: Vec<String> = example
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    (!pairs.is_empty()).then(|| format!("in a topology file: impair: {{{}}}", pairs.join(", ")))
}

fn report(d: &mut Diags, at: Location, what: &str, e: &ImpairError) {
    d.at(at, format!("{what}: {e}"), file_form(e));
}

fn scalar(v: &Spanned<ImpairValue>) -> Option<String> {
    match &v.value {
        ImpairValue::Scalar(Scalar::Str(s)) => Some(s.clone()),
        ImpairValue::Scalar(Scalar::Bool(b)) => Some(b.to_string()),
        ImpairValue::Scalar(s) => Some(s.to_string()),
        ImpairValue::Map(_) => None,
    }
}

/// `loss: {model: gilbert-elliott, p, r, h, k}` or `{model: 4-state, p13, p31, p32, p23,
/// p14}` or `{model: random, p}` → the `loss=` form.
fn loss_map(m: &ImpairMap) -> Result<String, String> {
    let get = |k: &str| m.0.iter().find(|(x, _)| x.value == k).map(|(_, v)| v);
    let model = get("model").and_then(scalar).ok_or(
        "loss: a loss map needs `model` (random, gilbert-elliott or 4-state); e.g. loss: {model: gilbert-elliott, p: 1%, r: 25%}",
    )?;
    let (prefix, params): (&str, &[&str]) = match model.as_str() {
        "random" | "bernoulli" => ("", &["p"]),
        "gilbert-elliott" | "gemodel" | "ge" => ("gemodel:", &["p", "r", "h", "k"]),
        "4-state" | "state" | "markov4" => ("state:", &["p13", "p31", "p32", "p23", "p14"]),
        other => {
            return Err(format!(
                "loss: model {other:?} is not a loss model; expected random, gilbert-elliott or 4-state"
            ));
        }
    };
    for (k, _) in &m.0 {
        if k.value != "model" && !params.contains(&k.value.as_str()) {
            return Err(format!(
                "loss: `{}` is not a parameter of model {model}; it takes {}",
                k.value,
                params.join(", ")
            ));
        }
    }
    let mut vals = Vec::new();
    for (i, p) in params.iter().enumerate() {
        match get(p).map(|v| scalar(v).ok_or(())) {
            Some(Ok(v)) => vals.push(v),
            Some(Err(())) => return Err(format!("loss: `{p}` takes a probability, e.g. 1%")),
            None if i == 0 => {
                return Err(format!("loss: model {model} needs `{p}`, e.g. {p}: 1%"));
            }
            None => {
                if let Some(later) = params[i..].iter().find(|x| get(x).is_some()) {
                    return Err(format!(
                        "loss: `{later}` needs `{p}` too (the parameters before it), e.g. {p}: 1%"
                    ));
                }
                break;
            }
        }
    }
    Ok(format!("{prefix}{}", vals.join(":")))
}

/// The change one flat map of keys gives (`None` after reporting a problem).
fn change(d: &mut Diags, m: &ImpairMap) -> Option<Change> {
    let mut c = Change::default();
    let mut ok = true;
    for (k, v) in &m.0 {
        let r = match (&v.value, k.value.as_str()) {
            (ImpairValue::Map(sub), "loss") => match loss_map(sub) {
                Ok(s) => c.set("loss", &s),
                Err(msg) => {
                    d.at(v.referenced, msg, None);
                    ok = false;
                    continue;
                }
            },
            (ImpairValue::Map(sub), "reorder") => reorder_map(d, &mut c, sub, v.referenced),
            (ImpairValue::Map(_), key) => {
                d.at(
                    v.referenced,
                    format!("impair: `{key}` takes one value, not a mapping"),
                    Some(format!(
                        "only loss ({{model: ...}}) and reorder ({{probability, gap}}) take a mapping; e.g. {}",
                        crate::impair::params::key(key).map_or("delay: 20ms".to_string(), |x| x.example.replacen('=', ": ", 1))
                    )),
                );
                ok = false;
                continue;
            }
            (_, key) => c.set(key, &scalar(v).unwrap_or_default()),
        };
        if let Err(e) = r {
            let at = match e {
                ImpairError::BadValue { .. } => v.referenced,
                _ => k.referenced,
            };
            report(d, at, "impair", &e);
            ok = false;
        }
    }
    ok.then_some(c)
}

fn reorder_map(
    d: &mut Diags,
    c: &mut Change,
    m: &ImpairMap,
    at: Location,
) -> Result<(), ImpairError> {
    for (k, v) in &m.0 {
        let key = match k.value.as_str() {
            "probability" => "reorder",
            "gap" => "gap",
            other => {
                d.at(
                    k.referenced,
                    format!("reorder: `{other}` is not a reorder parameter"),
                    Some("reorder: {probability: 25%, gap: 5}".into()),
                );
                continue;
            }
        };
        c.set(key, &scalar(v).unwrap_or_default())?;
    }
    if c.reorder.is_none() {
        d.at(
            at,
            "reorder: a reorder map needs `probability`",
            Some("reorder: {probability: 25%, gap: 5}".into()),
        );
    }
    Ok(())
}

/// The changes of an `impair:` map: A→B and B→A (the same for a flat map).
pub fn changes(d: &mut Diags, m: &Spanned<ImpairMap>) -> Option<[Change; 2]> {
    let directional = m
        .value
        .0
        .iter()
        .any(|(k, _)| DIRS.contains(&k.value.as_str()));
    if !directional {
        let c = change(d, &m.value)?;
        return Some([c.clone(), c]);
    }
    let mut out = [Change::default(), Change::default()];
    let mut ok = true;
    for (k, v) in &m.value.0 {
        let Some(i) = DIRS.iter().position(|x| *x == k.value) else {
            d.at(
                k.referenced,
                format!(
                    "impair: `{}` next to a_to_b/b_to_a; give every key inside a direction",
                    k.value
                ),
                Some("impair: {a_to_b: {delay: 20ms}, b_to_a: {delay: 5ms}}".into()),
            );
            ok = false;
            continue;
        };
        match &v.value {
            ImpairValue::Map(sub) => match change(d, sub) {
                Some(c) => out[i] = c,
                None => ok = false,
            },
            ImpairValue::Scalar(_) => {
                d.at(
                    v.referenced,
                    format!("impair: `{}` takes a mapping of keys", k.value),
                    Some(format!("{}: {{delay: 20ms, loss: 1%}}", k.value)),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `base` with `changes` applied, per direction; a combination the settings refuse
/// (`jitter` without `delay`) is reported at `at`, naming `what`.
pub fn merged(
    d: &mut Diags,
    base: &[Params; 2],
    changes: &[Change; 2],
    at: Location,
    what: &str,
) -> Option<[Params; 2]> {
    let mut out = *base;
    for (i, c) in changes.iter().enumerate() {
        match base[i].apply(c) {
            Ok(p) => out[i] = p,
            Err(e) => {
                let dir = if changes[0] == changes[1] {
                    String::new()
                } else {
                    format!(" ({})", DIRS[i])
                };
                report(d, at, &format!("{what}{dir}"), &e);
                return None;
            }
        }
    }
    Some(out)
}
