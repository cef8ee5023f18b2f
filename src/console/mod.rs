//! The control socket, compatible with UML's management console (mconsole v2): the wire
//! codec ([`proto`]), the command table ([`commands`]), the run directory
//! ([`rundir`]: `~/.uml/UMID/{pid,mconsole,metrics}`), the guest's server ([`server`])
//! and the client behind `vecbox console` ([`client`], [`repl`]). The guest executes
//! the commands (src/guest/control.rs). See docs/console.md.

pub mod client;
pub mod commands;
pub mod proto;
pub mod repl;
pub mod rundir;
pub mod server;

pub use client::{Client, ClientError, Response};
pub use commands::Command;
pub use rundir::{RunDir, RunDirError};
pub use server::{Incoming, Server};
