//! Virtual network labs from a topology file.
//!
//! A topology ([`topology`]) is read with line/column positions ([`diag`]), validated
//! into a [`plan::Plan`] ([`validate`]) without touching the kernel, then deployed
//! ([`deploy`]): namespaces, veth pairs, taps and underlays are created over netlink,
//! each recorded in a [`journal`] before it is made, and guests and UML kernels are
//! started in their own namespaces and supervised ([`supervise`]) with restart
//! policies. [`teardown`] removes exactly what the journal lists — also after a crash or
//! `kill -9` — and nothing vecbox did not make. [`graph`] draws a topology.

pub mod actions;
pub mod alloc;
pub mod apply;
pub mod control;
pub mod deploy;
pub mod diag;
pub mod diff;
pub mod execute;
pub mod graph;
pub mod guestctl;
pub mod hostnet;
pub mod hosts;
pub mod impair;
pub mod journal;
pub mod objects;
pub mod observe;
pub mod ops;
pub mod order;
pub mod plan;
pub mod state;
pub mod supervise;
pub mod teardown;
pub mod topology;
pub mod validate;

mod spawn;

use std::path::{Path, PathBuf};

pub use diag::Diagnostic;
pub use plan::Plan;

/// Everything that can go wrong with a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "lab `{lab}` is already up (supervisor pid {pid}); `vecbox apply FILE` changes it in place (`vecbox down --lab {lab}` removes it)"
    )]
    AlreadyUp { lab: String, pid: i32 },
    #[error("lab `{lab}` is not up: {why}")]
    NotUp { lab: String, why: String },
    #[error("the lab's supervisor: {0}")]
    Supervisor(String),
    #[error("stale plan: {0}")]
    Stale(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}: {source}")]
    Object {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what} already exists and was not made by this lab; {hint}")]
    Busy { what: String, hint: String },
    #[error("node `{node}` did not become ready within {secs} s{log}")]
    NotReady {
        node: String,
        secs: u32,
        log: String,
    },
    #[error("node `{node}` exited while starting ({status}){log}")]
    Died {
        node: String,
        status: String,
        log: String,
    },
    #[error("host `{node}`: command {cmd:?} failed ({status}){output}")]
    Exec {
        node: String,
        cmd: String,
        status: String,
        output: String,
    },
    #[error("no lab named `{0}` is up (nothing under {root}/{0})", root = plan::run_root().display())]
    NoLab(String),
    #[error("lab `{lab}` has no node `{node}`{hint}")]
    NoNode {
        lab: String,
        node: String,
        hint: String,
    },
}

impl LabError {
    /// Wrap an error from creating `what` (the object named in the message).
    pub fn object(
        what: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        LabError::Object {
            what: what.into(),
            source: Box::new(e),
        }
    }

    /// Process exit status: 2 for an invalid file, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            LabError::Invalid(_) => 2,
            _ => 1,
        }
    }
}

fn render(d: &[Diagnostic]) -> String {
    let mut s = d
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    if d.len() > 1 {
        s.push_str(&format!("\n{} problems found", d.len()));
    }
    s
}

/// Read and validate the topology file `file` for a new lab.
pub fn load(file: &Path) -> Result<Plan, LabError> {
    // A multi-host lab's allocations are kept in `NAME.lock.json` beside the file.
    let prior = hosts::read_lock(file).unwrap_or_default();
    load_with(file, &prior)
}

/// Read and validate `file`, keeping the allocations of `prior` (a running lab's lock)
/// for every object that is still in the file.
pub fn load_with(file: &Path, prior: &alloc::Lock) -> Result<Plan, LabError> {
    let text = std::fs::read_to_string(file).map_err(|source| LabError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    check_text_with(&file.display().to_string(), &text, &abs, prior)
}

/// Validate topology `text` named `name` whose absolute path is `abs`.
pub fn check_text(name: &str, text: &str, abs: &Path) -> Result<Plan, LabError> {
    check_text_with(name, text, abs, &alloc::Lock::default())
}

/// [`check_text`] keeping `prior`'s allocations.
pub fn check_text_with(
    name: &str,
    text: &str,
    abs: &Path,
    prior: &alloc::Lock,
) -> Result<Plan, LabError> {
    let topo = diag::parse(name, text).map_err(|d| LabError::Invalid(vec![d]))?;
    validate::validate(&topo, name, abs, prior).map_err(|d| LabError::Invalid(d.list))
}

/// Names of the labs that have a run directory.
pub fn labs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(plan::run_root())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The plan saved in a running lab's run directory.
pub fn saved_plan(lab: &str) -> Result<Plan, LabError> {
    let path = plan::run_dir(lab).join("plan.json");
    let text = std::fs::read_to_string(&path).map_err(|_| LabError::NoLab(lab.to_string()))?;
    serde_json::from_str(&text)
        .map_err(|e| LabError::object(format!("reading {}", path.display()), e))
}

/// The JSON Schema of the topology file.
pub fn schema() -> String {
    let s = schemars::schema_for!(topology::Topology);
    serde_json::to_string_pretty(&s).unwrap_or_default()
}
