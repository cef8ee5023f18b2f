//! An apply's conversation with running guests and UML kernels, over their consoles
//! (the mconsole protocol): ports added (`config vecN:SPEC`) and removed (`remove
//! vecN`), the ports a guest has (`proc net/dev`), files re-read (`reload`) and function
//! options replaced (`options`). Each operation is idempotent.

use std::fs::File;

use super::LabError;
use crate::console::client::{Client, Response};

/// `-ENODEV`, UML's (and vecbox's) answer to removing a port that is not there.
const ENODEV: u32 = (-libc::ENODEV) as u32;

/// Send `text` to the console of `umid`.
pub fn request(umid: &str, text: &str) -> Result<Response, LabError> {
    let mut c =
        Client::connect(umid).map_err(|e| LabError::object(format!("console of {umid}"), e))?;
    c.request(text)
        .map_err(|e| LabError::object(format!("console of {umid}: {text}"), e))
}

fn check(umid: &str, text: &str, r: Response) -> Result<(), LabError> {
    if r.err == 0 {
        Ok(())
    } else {
        Err(LabError::Supervisor(format!(
            "{umid} refused `{text}`: {}",
            r.text.trim()
        )))
    }
}

/// The unit of `spec` (`vecN:...` → N).
pub fn unit_of_spec(spec: &str) -> Option<u32> {
    super::alloc::unit_of(spec.split(':').next()?)
}

/// Add port `spec` to `umid`. For a vecbox guest, a port of that number that exists with
/// another spec is replaced; for a UML kernel (which cannot say what a port is) an
/// existing port is kept.
pub fn port_add(umid: &str, spec: &str, uml: bool) -> Result<(), LabError> {
    let text = format!("config {spec}");
    let r = request(umid, &text)?;
    if r.err == 0 {
        return Ok(());
    }
    if !r.text.contains("already configured") {
        return check(umid, &text, r);
    }
    if uml {
        return Ok(());
    }
    let unit = unit_of_spec(spec).unwrap_or(0);
    let now = request(umid, &format!("config vec{unit}"))?;
    if now.err == 0 && same_spec(&now.text, spec) {
        return Ok(());
    }
    port_remove(umid, unit)?;
    let r = request(umid, &text)?;
    check(umid, &text, r)
}

/// Two specs are the same port (a tap handed over at run time has another descriptor
/// number than the one its spec names).
fn same_spec(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        let s = s.trim();
        if s.contains("transport=fd") {
            s.split(',')
                .filter(|kv| !kv.starts_with("fd="))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            s.to_string()
        }
    };
    match (
        a.trim().parse::<crate::transport::Spec>(),
        b.parse::<crate::transport::Spec>(),
    ) {
        (Ok(x), Ok(y)) => norm(&x.to_string()) == norm(&y.to_string()),
        _ => norm(a) == norm(b),
    }
}

/// Remove port `vecN` from `umid`; a port that is not there is fine.
pub fn port_remove(umid: &str, unit: u32) -> Result<(), LabError> {
    let text = format!("remove vec{unit}");
    let r = request(umid, &text)?;
    if r.err == 0 || r.err == ENODEV || r.text.contains("doesn't exist") {
        return Ok(());
    }
    check(umid, &text, r)
}

/// The port numbers a vecbox guest has now (from `proc net/dev`).
pub fn ports(umid: &str) -> Result<Vec<u32>, LabError> {
    let r = request(umid, "proc net/dev")?;
    if r.err != 0 {
        return Err(LabError::Supervisor(format!(
            "{umid}: proc net/dev: {}",
            r.text.trim()
        )));
    }
    let mut v: Vec<u32> = r
        .text
        .lines()
        .filter_map(|l| super::alloc::unit_of(l.split(':').next()?.trim()))
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// The guest re-reads its router configuration or firewall rules.
pub fn reload(umid: &str) -> Result<(), LabError> {
    let r = request(umid, "reload")?;
    check(umid, "reload", r)
}

/// The guest rebuilds its function with `options` (`key=value` each).
pub fn options(umid: &str, options: &[String]) -> Result<(), LabError> {
    let text = format!("options {}", options.join(" "));
    let r = request(umid, &text)?;
    check(umid, &text, r)
}

/// Add port `spec` (transport=fd) to the guest `umid`, handing it `tap` with the request.
pub fn attach(umid: &str, spec: &str, tap: &File) -> Result<(), LabError> {
    let mut c =
        Client::connect(umid).map_err(|e| LabError::object(format!("console of {umid}"), e))?;
    let text = format!("config {spec}");
    let r = c
        .request_with_fd(&text, tap)
        .map_err(|e| LabError::object(format!("console of {umid}: {text}"), e))?;
    if r.err != 0 && r.text.contains("already configured") {
        return Ok(());
    }
    check(umid, &text, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_compare_by_meaning() {
        assert!(same_spec(
            "vec1:transport=raw,ifname=x,depth=64",
            "vec1:transport=raw,ifname=x,depth=64\n"
        ));
        assert!(!same_spec(
            "vec1:transport=raw,ifname=x,depth=64",
            "vec1:transport=raw,ifname=x,depth=32"
        ));
        assert!(same_spec(
            "vec2:transport=fd,fd=9,vec=0",
            "vec2:transport=fd,fd=3,vec=0"
        ));
        assert_eq!(unit_of_spec("vec12:transport=raw"), Some(12));
    }
}
