//! Wire formats and packet arithmetic: virtio-net headers, Ethernet,
//! Internet checksums, software GSO and the tunnel headers (GRE, L2TPv3, the IPv4
//! header raw sockets deliver).
//!
//! Conventions (after smoltcp): a typed view `Header<T: AsRef<[u8]>>`
//! reads fields in place (setters need `AsMut<[u8]>`); a `Repr` holds the
//! validated meaning and converts with `parse`/`emit`. Each module has one
//! `Copy` error enum.
//!
//! Panic contract: accessors of a view built with `new_checked` never
//! panic; `new_unchecked` views panic on out-of-range access and are for
//! buffers whose length is already known. Every function that reads
//! untrusted bytes (`Repr::parse`, `ethernet::l3_offset`,
//! `checksum::complete`, `gso::segment`, `gso::finish_partial`, ...)
//! reports malformed input as an error or `None`, never by panicking.
//! Parsing, emitting, checksumming and segmenting do not allocate.

pub mod checksum;
pub mod coalesce;
pub mod ethernet;
pub mod gre;
pub mod gso;
pub mod ipv4;
pub mod l2tpv3;
pub mod offload;
pub mod vnet;

pub use checksum::ChecksumError;
pub use ethernet::{EtherType, EthernetError, Mac, MacAddr};
pub use gso::{
    CsumMode, GsoError, MAX_HEADERS, Plan, Segment, SegmentStats, finish_partial, segment,
};
pub use vnet::{Csum, GsoType, VnetError};
