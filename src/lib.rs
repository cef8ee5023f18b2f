//! vecbox: a network-function sandbox appliance built on User Mode Linux's vector
//! transports.
//!
//! Layers, top to bottom (each may call only those below it):
//! - [`cli`]: the `vecbox` command.
//! - [`bench`]: `vecbox bench`, vecbox against the kernel and UML, side by side.
//! - [`lab`]: topology files → validated plans → labs deployed, supervised, torn down.
//! - [`guest`]: one guest process — transports, sandbox, event loop, counters.
//! - [`nf`]: network functions over batches of frames (xconnect, bridge).
//! - [`transport`]: the `vecN:` spec and the vector transports (raw, tap, hybrid, fd).
//! - [`capture`]: pcapng, the shared capture ring, port taps, capture sessions.
//! - [`console`]: the mconsole-compatible control socket (server, client, codec).
//! - [`netlink`]: namespaces and links over rtnetlink.
//! - [`filter`]: classic BPF programs.
//! - [`wire`]: typed views of headers, checksums, software segmentation.
//! - [`buf`], [`metrics`]: the buffer pool and the counters, shared by all.
//! - [`sys`]: every `unsafe` system call wrapper.
#![deny(unsafe_code)]

pub mod bench;
pub mod buf;
pub mod capture;
pub mod cli;
pub mod console;
pub mod filter;
pub mod guest;
pub mod impair;
pub mod lab;
pub mod metrics;
pub mod netlink;
pub mod nf;
pub mod sys;
pub mod transport;
pub mod uml;
pub mod wire;
