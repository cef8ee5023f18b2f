//! What sits in front of the Ethernet frame on a transport's descriptor: nothing (fd,
//! bess) or a virtio-net header (tap, hybrid, raw). Encapsulations (GRE, L2TPv3) join
//! this enum as further variants.

use crate::metrics::DropReason;
use crate::wire::vnet;

/// Longest transmit prefix a framing writes before the frame.
pub const MAX_TX_PREFIX: usize = 32;

/// Per-transport header handling on receive and transmit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The descriptor carries bare Ethernet frames.
    Bare,
    /// Each frame is preceded by a 10-byte `virtio_net_hdr`.
    Vnet,
}

/// A successfully decapsulated frame: where it starts and its offload metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapped {
    pub off: usize,
    pub vnet: vnet::Repr,
}

impl Framing {
    /// Bytes in front of the frame on receive.
    pub fn rx_header_len(&self) -> usize {
        match self {
            Framing::Bare => 0,
            Framing::Vnet => vnet::HEADER_LEN,
        }
    }

    /// `true` if frames carry checksum/GSO metadata.
    pub fn has_vnet(&self) -> bool {
        matches!(self, Framing::Vnet)
    }

    /// Parse what precedes the frame in `msg` (a whole received datagram).
    pub fn decap(&mut self, msg: &[u8]) -> Result<Decapped, DropReason> {
        match self {
            Framing::Bare => Ok(Decapped {
                off: 0,
                vnet: vnet::Repr::default(),
            }),
            Framing::Vnet => {
                let hdr = vnet::Header::new_checked(msg).map_err(|_| DropReason::Runt)?;
                let repr = vnet::Repr::parse(&hdr).map_err(|_| DropReason::BadVnetHeader)?;
                Ok(Decapped {
                    off: vnet::HEADER_LEN,
                    vnet: repr,
                })
            }
        }
    }

    /// Write the transmit prefix for a frame with offload state `meta` into `out`;
    /// returns its length.
    pub fn encap(&mut self, meta: &vnet::Repr, out: &mut [u8]) -> usize {
        match self {
            Framing::Bare => 0,
            Framing::Vnet => {
                let mut tx = *meta;
                // DATA_VALID is a receive-side hint; it means nothing on transmit.
                tx.data_valid = false;
                let mut hdr = vnet::Header::new_unchecked(&mut out[..vnet::HEADER_LEN]);
                tx.emit(&mut hdr);
                vnet::HEADER_LEN
            }
        }
    }
}
