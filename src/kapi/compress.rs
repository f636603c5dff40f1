//! Message size: large bodies go gzip-compressed (`content_encoding: gzip`,
//! which Kazoo decodes on receipt: `gen_listener:handle_event/4`), small ones
//! stay plain so Kamailio and clients that read the body raw keep working, and
//! nothing larger than the broker accepts is ever published (RabbitMQ closes
//! the channel on a message over its `max_message_size`: 16 MiB by default
//! from 4.0, BROKERS.md).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use thiserror::Error;

pub const GZIP: &str = "gzip";
pub const ZSTD: &str = "zstd";

/// The configured bounds (`amqp.max_message_bytes`, `amqp.compress_above_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub compress_above_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 << 20,
            compress_above_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "{raw} bytes of JSON are {sent} bytes gzip-compressed, over the {max} bytes the broker takes"
)]
pub struct TooLarge {
    pub raw: usize,
    /// What compression got to (it stops once past the limit).
    pub sent: usize,
    pub max: usize,
}

/// A body being written: plain until it passes the compression threshold,
/// then streamed through gzip, so a large reply never sits in memory whole
/// and uncompressed. [`Body::spill`] after each piece (a channel) written to
/// [`Body::buf`].
pub struct Body {
    pub buf: Vec<u8>,
    gz: Option<GzEncoder<Vec<u8>>>,
    raw: usize,
    limits: Limits,
}

/// Compressed output is handed to the encoder in pieces about this big.
const SPILL: usize = 256 << 10;

impl Body {
    pub fn new(limits: Limits, capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(
                capacity.min(limits.compress_above_bytes.saturating_add(SPILL)),
            ),
            gz: None,
            raw: 0,
            limits,
        }
    }

    /// Moves what was written into the encoder once the body is past the
    /// threshold; fails as soon as the compressed body is past the limit.
    pub fn spill(&mut self) -> Result<(), TooLarge> {
        if self.gz.is_none() && self.buf.len() <= self.limits.compress_above_bytes {
            return Ok(());
        }
        if self.buf.len() < SPILL && self.gz.is_some() {
            return Ok(());
        }
        let gz = self
            .gz
            .get_or_insert_with(|| GzEncoder::new(Vec::new(), Compression::fast()));
        self.raw += self.buf.len();
        gz.write_all(&self.buf)
            .expect("writing to a Vec cannot fail");
        self.buf.clear();
        let sent = gz.get_ref().len();
        if sent > self.limits.max_message_bytes {
            return Err(TooLarge {
                raw: self.raw,
                sent,
                max: self.limits.max_message_bytes,
            });
        }
        Ok(())
    }

    /// The finished body and its content encoding.
    pub fn finish(mut self) -> Result<(Vec<u8>, Option<&'static str>), TooLarge> {
        let Some(mut gz) = self.gz.take() else {
            if self.buf.len() > self.limits.max_message_bytes {
                return Err(TooLarge {
                    raw: self.buf.len(),
                    sent: self.buf.len(),
                    max: self.limits.max_message_bytes,
                });
            }
            return Ok((self.buf, None));
        };
        self.raw += self.buf.len();
        gz.write_all(&self.buf)
            .expect("writing to a Vec cannot fail");
        let out = gz.finish().expect("writing to a Vec cannot fail");
        if out.len() > self.limits.max_message_bytes {
            return Err(TooLarge {
                raw: self.raw,
                sent: out.len(),
                max: self.limits.max_message_bytes,
            });
        }
        Ok((out, Some(GZIP)))
    }
}

/// A whole body, fitted as [`Body`] fits one written in pieces.
pub fn fit(body: Vec<u8>, limits: Limits) -> Result<(Vec<u8>, Option<&'static str>), TooLarge> {
    let mut b = Body::new(limits, 0);
    b.buf = body;
    b.spill()?;
    b.finish()
}

/// How a whole body between our own instances is compressed. Kazoo reads
/// gzip only; zstd is for peers that asked for it (a snapshot part), where it
/// decodes several times faster: the newcomer's side of a warm-up is the slow
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zstd,
}

impl Codec {
    /// The best of the encodings a requester accepts (`Accept-Encoding`).
    pub fn accepted<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        if names.into_iter().any(|n| n == ZSTD) {
            Codec::Zstd
        } else {
            Codec::Gzip
        }
    }
}

/// [`fit`] with `codec`.
pub fn fit_as(
    body: Vec<u8>,
    limits: Limits,
    codec: Codec,
) -> Result<(Vec<u8>, Option<&'static str>), TooLarge> {
    if codec == Codec::Gzip || body.len() <= limits.compress_above_bytes {
        return fit(body, limits);
    }
    // Level 1: the fastest; JSON of channels still shrinks about tenfold.
    let out = zstd::bulk::compress(&body, 1).expect("compressing to memory cannot fail");
    if out.len() > limits.max_message_bytes {
        return Err(TooLarge {
            raw: body.len(),
            sent: out.len(),
            max: limits.max_message_bytes,
        });
    }
    Ok((out, Some(ZSTD)))
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("content encoding {0:?} is neither gzip nor zstd")]
    Unknown(String),
    #[error("compressed body does not decode: {0}")]
    Corrupt(#[from] std::io::Error),
    #[error("compressed body decodes to more than {0} bytes")]
    TooLarge(usize),
}

/// A received body as JSON text: decompressed when so encoded, at most `max`
/// bytes once decoded (a small compressed body can expand enormously).
pub fn decode(
    body: Vec<u8>,
    content_encoding: Option<&str>,
    max: usize,
) -> Result<Vec<u8>, DecodeError> {
    match content_encoding {
        None | Some("") | Some("identity") => Ok(body),
        Some(GZIP) => {
            // The trailer's ISIZE (the size modulo 2^32) sizes the buffer once:
            // a tenfold expansion grown by doubling is copied four times.
            let size = body
                .last_chunk::<4>()
                .map_or(0, |t| u32::from_le_bytes(*t) as usize);
            let mut out = Vec::with_capacity(size.max(body.len()).min(max));
            let read = GzDecoder::new(&body[..])
                .take(max as u64 + 1)
                .read_to_end(&mut out)?;
            bounded(out, read, max)
        }
        Some(ZSTD) => {
            let size = zstd::zstd_safe::get_frame_content_size(&body)
                .ok()
                .flatten()
                .map_or(body.len() * 8, |n| n as usize);
            let mut out = Vec::with_capacity(size.min(max));
            let read = zstd::stream::read::Decoder::with_buffer(&body[..])?
                .take(max as u64 + 1)
                .read_to_end(&mut out)?;
            bounded(out, read, max)
        }
        Some(other) => Err(DecodeError::Unknown(other.to_owned())),
    }
}

fn bounded(out: Vec<u8>, read: usize, max: usize) -> Result<Vec<u8>, DecodeError> {
    if read > max {
        return Err(DecodeError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, above: usize) -> Limits {
        Limits {
            max_message_bytes: max,
            compress_above_bytes: above,
        }
    }

    #[test]
    fn small_bodies_stay_plain() {
        let (b, enc) = fit(b"{\"a\":1}".to_vec(), Limits::default()).unwrap();
        assert_eq!((b.as_slice(), enc), (&b"{\"a\":1}"[..], None));
    }

    #[test]
    fn large_bodies_are_gzipped_and_decode_back() {
        let json: Vec<u8> = format!("[{}]", vec!["{\"uuid\":\"x\"}"; 100_000].join(",")).into();
        let (b, enc) = fit(json.clone(), limits(16 << 20, 1024)).unwrap();
        assert_eq!(enc, Some(GZIP));
        assert!(b.len() < json.len() / 20, "{} of {}", b.len(), json.len());
        assert_eq!(decode(b, enc, 1 << 30).unwrap(), json);
    }

    #[test]
    fn written_in_pieces_it_stops_past_the_limit() {
        let mut body = Body::new(limits(10_000, 100), 0);
        let mut failed = None;
        for i in 0..1_000_000u64 {
            // Incompressible enough: every piece differs.
            body.buf.extend_from_slice(
                format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).as_bytes(),
            );
            if let Err(e) = body.spill() {
                failed = Some((i, e));
                break;
            }
        }
        let (i, e) = failed.expect("stops");
        assert!(i < 100_000, "stopped early, at piece {i}");
        assert!(e.sent > e.max);
        let plain = fit(vec![b' '; 200], limits(100, 1000));
        assert!(plain.is_err(), "a plain body over the limit is refused too");
    }

    #[test]
    fn zstd_for_peers_that_accept_it_and_decodes_back_bounded() {
        assert_eq!(Codec::accepted(["gzip"]), Codec::Gzip);
        assert_eq!(Codec::accepted(["zstd", "gzip"]), Codec::Zstd);
        let json: Vec<u8> = format!("[{}]", vec!["{\"uuid\":\"x\"}"; 100_000].join(",")).into();
        let (b, enc) = fit_as(json.clone(), limits(16 << 20, 1024), Codec::Zstd).unwrap();
        assert_eq!(enc, Some(ZSTD));
        assert!(b.len() < json.len() / 20, "{} of {}", b.len(), json.len());
        assert_eq!(decode(b.clone(), enc, 1 << 30).unwrap(), json);
        assert!(matches!(
            decode(b, enc, 1000),
            Err(DecodeError::TooLarge(1000))
        ));
        let small = fit_as(b"{}".to_vec(), limits(16 << 20, 1024), Codec::Zstd).unwrap();
        assert_eq!(small.1, None, "small bodies stay plain");
        assert!(fit_as(json, limits(100, 10), Codec::Zstd).is_err());
        assert!(matches!(
            decode(vec![0x28, 0xb5, 0x2f, 0xfd, 9, 9], Some(ZSTD), 1000),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn a_decoded_body_is_bounded() {
        let (b, enc) = fit(vec![b' '; 1 << 20], limits(16 << 20, 10)).unwrap();
        assert!(matches!(
            decode(b, enc, 1000),
            Err(DecodeError::TooLarge(1000))
        ));
        assert!(matches!(
            decode(vec![1, 2], Some("br"), 10),
            Err(DecodeError::Unknown(_))
        ));
    }
}
