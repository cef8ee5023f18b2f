//! Building a new lab: its run directory, journal and saved plan ([`begin`]), then the
//! same planner and executor as `vecbox apply`, applied to an empty lab ([`build`]).
//!
//! Every kernel object is journaled before it is created. When any step fails the
//! caller tears down from the journal ([`super::teardown`]); the error names the object
//! that failed.

use std::path::PathBuf;

use super::execute::{self, Progress};
use super::journal::{self, Entry, Journal};
use super::observe::{self, Recorded};
use super::plan::{self, Plan};
use super::supervise::Supervisor;
use super::{LabError, apply};

/// Create the run directory and journal of `plan`, recording this process as the
/// supervisor, and save the plan. Fails if the directory exists (the caller cleans up
/// leftovers first).
pub fn begin(plan: &Plan) -> Result<(PathBuf, Journal), LabError> {
    let dir = plan.run_dir();
    let root = plan::run_root();
    std::fs::create_dir_all(&root)
        .map_err(|e| LabError::object(format!("creating {}", root.display()), e))?;
    std::fs::create_dir(&dir)
        .map_err(|e| LabError::object(format!("creating {}", dir.display()), e))?;
    let mut journal = Journal::open(&dir)
        .map_err(|e| LabError::object(format!("creating the journal in {}", dir.display()), e))?;
    let me = std::process::id() as i32;
    journal
        .record(&Entry::Run {
            pid: me,
            start: journal::start_time(me).unwrap_or(0),
            file: plan.file.clone(),
        })
        .map_err(|e| LabError::object("writing the journal", e))?;
    let text =
        serde_json::to_string_pretty(plan).map_err(|e| LabError::object("saving the plan", e))?;
    std::fs::write(dir.join("plan.json"), text)
        .map_err(|e| LabError::object("saving the plan", e))?;
    Ok((dir, journal))
}

/// Build everything and start every node under `sup` (apply to an empty lab); on error
/// the caller stops the nodes and tears down.
pub fn build(plan: &Plan, sup: &mut Supervisor, progress: Progress<'_>) -> Result<(), LabError> {
    let obs = observe::empty(&plan.lab, plan);
    let p = apply::make_plan(&obs, plan.clone())?;
    execute::execute(&p, Recorded::default(), sup, None, progress).map(drop)
}
