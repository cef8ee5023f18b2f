//! `vecbox apply`: validate the file, observe the running lab, compare, plan, and run
//! the plan through the journal. `up` is the same on an empty lab ([`make_plan`] with
//! [`super::observe::empty`]); `down` removes everything from the journal alone.

use std::path::Path;

use super::actions::{ApplyPlan, PLAN_VERSION};
use super::control::Client;
use super::execute::{self, Done, Fault, Progress};
use super::objects::Objects;
use super::observe::{self, Observed};
use super::plan::Plan;
use super::{LabError, diff, order};

/// The plan that takes the observed lab to `desired`.
pub fn make_plan(obs: &Observed, desired: Plan) -> Result<ApplyPlan, LabError> {
    let want = Objects::of(&desired);
    let d = diff::diff(obs, &want)?;
    let actions = order::build(obs, &want, &d);
    let mut drift: Vec<String> = obs
        .interrupted
        .iter()
        .map(|i| format!("interrupted apply: {i}"))
        .collect();
    drift.extend(obs.drift.iter().map(|d| d.describe()));
    Ok(ApplyPlan {
        version: PLAN_VERSION,
        lab: obs.lab.clone(),
        generation: obs.generation,
        digest: obs.digest(),
        drift,
        actions,
        desired,
    })
}

/// Validate `file` (nothing is touched when it is invalid), observe its running lab and
/// plan the change.
pub fn prepare(file: &Path) -> Result<(Observed, ApplyPlan), LabError> {
    let t0 = std::time::Instant::now();
    let first = super::load(file)?;
    refuse_hosts(&first)?;
    let t1 = std::time::Instant::now();
    let obs = observe::observe(&first.lab)?;
    let t2 = std::time::Instant::now();
    let desired = super::load_with(file, &obs.lock())?;
    if desired.metrics != obs.saved.metrics {
        return Err(LabError::Unsupported(format!(
            "lab `{}`: the metrics address changes ({} → {}); the supervisor binds it at `up`: `vecbox down` then `vecbox up` to change it",
            desired.lab,
            obs.saved.metrics.as_deref().unwrap_or("none"),
            desired.metrics.as_deref().unwrap_or("none")
        )));
    }
    let plan = make_plan(&obs, desired)?;
    tracing::debug!(
        validate_ms = (t1 - t0).as_secs_f64() * 1e3,
        observe_ms = (t2 - t1).as_secs_f64() * 1e3,
        plan_ms = t2.elapsed().as_secs_f64() * 1e3,
        "apply prepared"
    );
    Ok((obs, plan))
}

/// `apply` changes the lab of one machine; a lab with a `hosts:` map is brought up
/// and down per host (`up FILE --host NAME`, `down --lab NAME`), so it is refused before
/// anything is observed or changed.
fn refuse_hosts(p: &super::Plan) -> Result<(), LabError> {
    if p.hosts.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = p.hosts.iter().map(|h| h.name.as_str()).collect();
    Err(LabError::Unsupported(format!(
        "lab `{}` spans hosts ({}): `vecbox apply` does not change multi-host labs; on each host run `vecbox down --lab {}` then `vecbox up {} --host NAME` (docs/multihost.md)",
        p.lab,
        names.join(", "),
        p.lab,
        p.file.display()
    )))
}

/// Read a saved plan and observe its lab, refusing a plan that is stale: the lab's
/// generation moved, or the lab looks different from when the plan was made.
pub fn prepare_saved(path: &Path) -> Result<(Observed, ApplyPlan), LabError> {
    let text = std::fs::read_to_string(path).map_err(|source| LabError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let plan: ApplyPlan = serde_json::from_str(&text)
        .map_err(|e| LabError::object(format!("reading the plan {}", path.display()), e))?;
    if plan.version != PLAN_VERSION {
        return Err(LabError::Stale(format!(
            "{} is a version {} plan; this vecbox reads version {PLAN_VERSION}: make it again",
            path.display(),
            plan.version
        )));
    }
    refuse_hosts(&plan.desired)?;
    let obs = observe::observe(&plan.lab)?;
    if obs.generation != plan.generation {
        return Err(LabError::Stale(format!(
            "lab `{}` changed since the plan was made (generation {} then, {} now); run `vecbox apply {}` again",
            plan.lab,
            plan.generation,
            obs.generation,
            plan.desired.file.display()
        )));
    }
    if obs.digest() != plan.digest {
        return Err(LabError::Stale(format!(
            "lab `{}` looks different from when the plan was made (a process restarted, or something changed outside vecbox); run `vecbox apply {}` again",
            plan.lab,
            plan.desired.file.display()
        )));
    }
    Ok((obs, plan))
}

/// Hold the lab's apply lock: one apply at a time changes a lab (released when the
/// process ends, however it ends).
pub fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, LabError> {
    let path = dir.join("apply.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LabError::object(format!("opening {}", path.display()), e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        LabError::Busy {
            what: format!("lab {}", dir.display()),
            hint: "another `vecbox apply` is changing it; wait for it to end".into(),
        }
    })
}

/// Run `plan` on the observed lab through its supervisor.
pub fn run(
    plan: &ApplyPlan,
    obs: Observed,
    fault: Option<Fault>,
    progress: Progress<'_>,
) -> Result<Done, LabError> {
    let mut client = Client::connect(&obs.dir)?;
    execute::execute(plan, obs.recorded, &mut client, fault, progress)
}
