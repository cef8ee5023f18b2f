//! Setting a capture up: the section header, an interface block per end and side, a
//! ring per guest (its ports as configuration slots), a packet socket per host end.

use std::io::Write;

use super::{
    Counted, End, GuestPlan, GuestSrc, HostSrc, Iface, Options, Route, Run, Source, StreamError,
};
use crate::capture::config::{Config, PortSel};
use crate::capture::host::HostCapture;
use crate::capture::pcapng::{Interface, Section, Writer};
use crate::capture::remote::GuestCapture;
use crate::capture::{Side, now_ns};

impl<W: Write> Run<W> {
    pub(super) fn open(ends: &[End], opts: &Options, out: W) -> Result<Run<W>, StreamError> {
        let app = format!("vecbox {}", env!("CARGO_PKG_VERSION"));
        let os = nix::sys::utsname::uname()
            .map(|u| {
                format!(
                    "{} {}",
                    u.sysname().to_string_lossy(),
                    u.release().to_string_lossy()
                )
            })
            .ok();
        let section = Section {
            application: Some(&app),
            os: os.as_deref(),
            hardware: None,
        };
        let mut run = Run {
            out: Writer::new(out, &section).map_err(StreamError::Write)?,
            guests: Vec::new(),
            hosts: Vec::new(),
            ifaces: Vec::new(),
            written: 0,
            limit: opts.count,
            started_ns: now_ns(),
            backlog: false,
        };
        let filter_text = opts.filter.as_ref().map(|(t, _)| t.as_str());
        let mut seen = std::collections::BTreeSet::new();
        // Guests first, grouped: one ring per guest.
        let mut plans: Vec<GuestPlan> = Vec::new();
        for end in ends.iter().filter(|e| seen.insert(e.name.clone())) {
            match &end.source {
                Source::Guest { socket, ports } => {
                    let gi = match plans.iter().position(|p| &p.0 == socket) {
                        Some(i) => i,
                        None => {
                            plans.push((socket.clone(), Vec::new(), Vec::new(), end.name.clone()));
                            plans.len() - 1
                        }
                    };
                    let mut slots = Vec::new();
                    for port in ports {
                        let slot = match plans[gi].1.iter().position(|u| *u == port.unit) {
                            Some(s) => s,
                            None => {
                                plans[gi].1.push(port.unit);
                                plans[gi].2.push(Vec::new());
                                plans[gi].1.len() - 1
                            }
                        };
                        slots.push(slot);
                    }
                    let (pre, post) =
                        run.guest_ifaces(end, opts.side, opts.snaplen, filter_text, gi, &slots)?;
                    for (port, slot) in ports.iter().zip(slots) {
                        plans[gi].2[slot].push(Route {
                            pre,
                            post,
                            points: port.points,
                            flip: port.flip,
                        });
                    }
                }
                Source::Host {
                    netns,
                    ifname,
                    flip,
                } => {
                    let cap = HostCapture::open(
                        netns.as_deref(),
                        ifname,
                        opts.filter.as_ref().map(|(_, p)| p),
                        opts.snaplen,
                    )
                    .map_err(|source| StreamError::Host {
                        end: end.name.clone(),
                        source,
                    })?;
                    let iface = run.add_iface(
                        &end.name,
                        &end.description,
                        opts.snaplen,
                        filter_text,
                        Counted::Host(run.hosts.len()),
                    )?;
                    run.hosts.push(HostSrc {
                        cap,
                        iface,
                        flip: *flip,
                        ended: None,
                    });
                }
            }
        }
        let ring_bytes = opts
            .ring_bytes
            .unwrap_or_else(|| crate::capture::ring::auto_bytes(plans.len()));
        for (socket, units, slots, first) in plans {
            let config = Config {
                ports: units
                    .iter()
                    .zip(&slots)
                    .map(|(&unit, routes)| PortSel {
                        unit,
                        points: opts.side.points() & routes.iter().fold(0, |m, r| m | r.points),
                    })
                    .collect(),
                snaplen: opts.snaplen,
                filter: opts.filter.as_ref().map(|(_, p)| p.clone()),
            };
            let cap = GuestCapture::start(&socket, &config, ring_bytes)
                .map_err(|source| StreamError::Guest { end: first, source })?;
            run.guests.push(GuestSrc {
                cap,
                slots,
                ended: None,
            });
        }
        run.out.flush().map_err(StreamError::Write)?;
        Ok(run)
    }

    fn add_iface(
        &mut self,
        name: &str,
        description: &str,
        snaplen: u32,
        filter: Option<&str>,
        counted: Counted,
    ) -> Result<u32, StreamError> {
        let id = self
            .out
            .add_interface(&Interface {
                name,
                description,
                snaplen,
                filter,
            })
            .map_err(StreamError::Write)?;
        self.ifaces.push(Iface {
            counted,
            written: 0,
        });
        Ok(id)
    }

    /// Interface blocks of a guest end (its ports are `slots` of guest `g`): one per
    /// side asked for; their ids, pre and post.
    fn guest_ifaces(
        &mut self,
        end: &End,
        side: Side,
        snaplen: u32,
        filter: Option<&str>,
        g: usize,
        slots: &[usize],
    ) -> Result<(Option<u32>, Option<u32>), StreamError> {
        let (mut pre, mut post) = (None, None);
        for is_post in [false, true] {
            let wanted = match side {
                Side::Pre => !is_post,
                Side::Post => is_post,
                Side::Both => true,
            };
            if !wanted {
                continue;
            }
            let which = if is_post { "post" } else { "pre" };
            let name = if side == Side::Both {
                format!("{}:{which}", end.name)
            } else {
                end.name.clone()
            };
            let description = format!("{}; point {which}", end.description);
            let id = self.add_iface(
                &name,
                &description,
                snaplen,
                filter,
                Counted::Guest {
                    g,
                    slots: slots.to_vec(),
                    post: is_post,
                },
            )?;
            if is_post {
                post = Some(id);
            } else {
                pre = Some(id);
            }
        }
        Ok((pre, post))
    }
}
