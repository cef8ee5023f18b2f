//! The mconsole wire format (UML `arch/um/drivers/mconsole.h`, protocol version 2).
//!
//! A request is one datagram of 524 bytes: `magic` (0xcafebabe), `version` (2), `len`
//! (bytes of command text, < 512), then 512 bytes of NUL-terminated text. A reply is one
//! or more datagrams of `err`, `more`, `len` (text length + 1) and at most 511 bytes of
//! text plus its NUL; `err` is set only on the first packet of a reply and `more` is 1
//! on every packet but the last. All integers are in host byte order.
//!
//! Requests come from any local process, so [`decode_request`] accepts any bytes and
//! never panics; every way a datagram can be wrong has its own [`RequestError`] with the
//! reply UML gives (or vecbox's, where UML reads stale memory).

/// `MCONSOLE_MAGIC`.
pub const MAGIC: u32 = 0xcafe_babe;
/// `MCONSOLE_VERSION`.
pub const VERSION: u32 = 2;
/// `MCONSOLE_MAX_DATA`: size of the text field of requests and replies.
pub const MAX_DATA: usize = 512;
/// Size of the fixed request header (`magic`, `version`, `len`).
pub const HEADER: usize = 12;
/// Size of a whole request datagram.
pub const REQUEST_LEN: usize = HEADER + MAX_DATA;
/// Largest text chunk in one reply packet (one byte is left for the NUL).
pub const CHUNK: usize = MAX_DATA - 1;
/// Largest reply datagram.
pub const REPLY_MAX: usize = HEADER + MAX_DATA;

/// The raw text UML sends (without any header) to a client whose magic is wrong.
pub const VERSION0_REPLY: &str = "ERR Version 0 mconsole clients are not supported by this driver";
/// Reply to a request whose `len` is 512 or more.
pub const TOO_LARGE: &str = "Request too large";
/// Reply to a request whose version is not 2 (UML then processes the request anyway).
pub const BAD_VERSION: &str = "This driver only supports version 2 clients";
/// Reply to an unknown command.
pub const UNKNOWN: &str = "Unknown command";
/// vecbox's reply to a datagram shorter than the header or than `12 + len` (UML would
/// read whatever its static buffer held from the previous request).
pub const TRUNCATED: &str = "Request truncated: send the whole 524-byte request";

/// A well-formed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The version field (a request with a version other than 2 is still served, after
    /// a [`BAD_VERSION`] reply, as UML does).
    pub version: u32,
    /// Command text: `data[..len]`, cut at the first NUL.
    pub text: &'a [u8],
}

/// Why a request datagram is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Wrong magic (or fewer than 4 bytes): answered with the raw [`VERSION0_REPLY`].
    #[error("bad magic: not an mconsole version 2 request")]
    BadMagic,
    /// `len` ≥ 512: answered with [`TOO_LARGE`].
    #[error("request length {0} is not below {MAX_DATA}")]
    TooLarge(u32),
    /// Shorter than its header or its own `len`: answered with [`TRUNCATED`].
    #[error("datagram of {got} bytes is shorter than the {want} bytes its header needs")]
    Truncated { got: usize, want: usize },
}

impl RequestError {
    /// The reply text the server sends for this error.
    pub fn reply_text(&self) -> &'static str {
        match self {
            RequestError::BadMagic => VERSION0_REPLY,
            RequestError::TooLarge(_) => TOO_LARGE,
            RequestError::Truncated { .. } => TRUNCATED,
        }
    }
}

fn word(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i * 4..i * 4 + 4)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Decode one request datagram. Checks in UML's order: magic, length, then version
/// (which does not stop processing: see [`Request::version`]).
pub fn decode_request(dgram: &[u8]) -> Result<Request<'_>, RequestError> {
    if word(dgram, 0) != Some(MAGIC) {
        return Err(RequestError::BadMagic);
    }
    let (Some(version), Some(len)) = (word(dgram, 1), word(dgram, 2)) else {
        return Err(RequestError::Truncated {
            got: dgram.len(),
            want: HEADER,
        });
    };
    if len as usize >= MAX_DATA {
        return Err(RequestError::TooLarge(len));
    }
    let end = HEADER + len as usize;
    let Some(data) = dgram.get(HEADER..end) else {
        return Err(RequestError::Truncated {
            got: dgram.len(),
            want: end,
        });
    };
    let text = data.split(|&b| b == 0).next().unwrap_or(&[]);
    Ok(Request { version, text })
}

/// Encode a request as `uml_mconsole` does: the whole 524 bytes, text cut to 511 bytes,
/// NUL-terminated, the rest zero.
pub fn encode_request(text: &str) -> [u8; REQUEST_LEN] {
    let bytes = text.as_bytes();
    let n = bytes.len().min(CHUNK);
    let mut out = [0u8; REQUEST_LEN];
    out[0..4].copy_from_slice(&MAGIC.to_ne_bytes());
    out[4..8].copy_from_slice(&VERSION.to_ne_bytes());
    out[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
    out[HEADER..HEADER + n].copy_from_slice(&bytes[..n]);
    out
}

/// One reply packet, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub err: u32,
    pub more: bool,
    /// Text up to the first NUL (or the end of the datagram).
    pub text: Vec<u8>,
}

/// Why a reply datagram could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply of {0} bytes is shorter than its 12-byte header")]
    Short(usize),
    /// A raw text datagram (UML's answer to a bad magic).
    #[error("{0}")]
    Raw(String),
}

/// Decode one reply datagram.
pub fn decode_reply(dgram: &[u8]) -> Result<Reply, ReplyError> {
    if dgram.starts_with(b"ERR ") {
        let t = dgram.split(|&b| b == 0).next().unwrap_or(&[]);
        return Err(ReplyError::Raw(String::from_utf8_lossy(t).into_owned()));
    }
    let (Some(err), Some(more), Some(len)) = (word(dgram, 0), word(dgram, 1), word(dgram, 2))
    else {
        return Err(ReplyError::Short(dgram.len()));
    };
    let data = &dgram[HEADER..];
    let data = &data[..data.len().min(len as usize)];
    let text = data.split(|&b| b == 0).next().unwrap_or(&[]).to_vec();
    Ok(Reply {
        err,
        more: more != 0,
        text,
    })
}

/// Split reply `text` into packets as UML's `mconsole_reply_len` does: chunks of at most
/// 511 bytes, `err` only on the first, `more=1` on all but the last, whose `more` is
/// `more_last`; an empty text still gives one packet. Each packet is passed to `send`
/// (built in `buf`, no allocation).
pub fn encode_reply(
    err: u32,
    text: &[u8],
    more_last: bool,
    buf: &mut [u8; REPLY_MAX],
    mut send: impl FnMut(&[u8]),
) {
    let mut rest = text;
    let mut first = true;
    loop {
        let n = rest.len().min(CHUNK);
        let last = n == rest.len();
        let e = if first { err } else { 0 };
        let more = u32::from(!last || more_last);
        buf[0..4].copy_from_slice(&e.to_ne_bytes());
        buf[4..8].copy_from_slice(&more.to_ne_bytes());
        buf[8..12].copy_from_slice(&(n as u32 + 1).to_ne_bytes());
        buf[HEADER..HEADER + n].copy_from_slice(&rest[..n]);
        buf[HEADER + n] = 0;
        send(&buf[..HEADER + n + 1]);
        rest = &rest[n..];
        first = false;
        if last {
            break;
        }
    }
}

#[cfg(test)]
mod tests;
