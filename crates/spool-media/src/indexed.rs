//! The progressive MP4 that seeks at once, made of the uploaded bytes without
//! copying them: a header (the init segment with its durations filled in,
//! then a `sidx` box indexing every segment) followed by the object's bytes
//! from the first segment to the end of the last. Players read the duration
//! and every seek point from the first request.
//!
//! The durations are patched byte for byte at the offsets of the fields
//! (`mvhd`, the video track's `tkhd` and `mdhd`, `mvex/mehd`), so boxes the
//! parser does not know survive untouched and the header keeps its length.
//! A version 0 field that cannot hold the value is set to `u32::MAX`.

use crate::MediaError;
use crate::index::{InitInfo, Segment, be};

/// The header: `init_bytes` (the object's bytes `[0, init.len)`) with the
/// movie/track durations patched in place where the boxes have them, plus a
/// `sidx` box. The full file is `header ++ object[segments[0].offset ..
/// last.offset + last.len]`.
///
/// Each sidx reference covers a segment up to the next one's offset, so the
/// references stay contiguous even if bytes lie between two segments.
pub fn header(
    init_bytes: &[u8],
    init: &InitInfo,
    segments: &[Segment],
) -> Result<Vec<u8>, MediaError> {
    if init_bytes.len() as u64 != init.len {
        return Err(MediaError::Malformed(format!(
            "init segment is {} bytes, the index says {}",
            init_bytes.len(),
            init.len
        )));
    }
    let (Some(first), Some(_)) = (segments.first(), segments.last()) else {
        return Err(MediaError::Malformed("no segments to index".into()));
    };
    if init.timescale == 0 {
        return Err(MediaError::Malformed("video timescale is 0".into()));
    }
    let total = segments
        .iter()
        .fold(0u64, |a, s| a.saturating_add(s.duration));

    let mut out = init_bytes.to_vec();
    patch_durations(&mut out, init, total)?;

    // sidx, version 1.
    let count = u16::try_from(segments.len())
        .map_err(|_| MediaError::Malformed("more than 65535 segments for one sidx".into()))?;
    let size = 12 + 4 + 4 + 8 + 8 + 2 + 2 + 12 * segments.len();
    out.reserve(size);
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(b"sidx");
    out.extend_from_slice(&0x0100_0000u32.to_be_bytes()); // version 1, flags 0
    out.extend_from_slice(&init.track_id.to_be_bytes());
    out.extend_from_slice(&init.timescale.to_be_bytes());
    out.extend_from_slice(&first.start.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes()); // first_offset
    out.extend_from_slice(&0u16.to_be_bytes()); // reserved
    out.extend_from_slice(&count.to_be_bytes());
    for (i, s) in segments.iter().enumerate() {
        let len = match segments.get(i + 1) {
            Some(next) => next.offset.checked_sub(s.offset).ok_or_else(|| {
                MediaError::Malformed(format!("segment at {} is out of order", next.offset))
            })?,
            None => s.len,
        };
        let size = u32::try_from(len)
            .ok()
            .filter(|l| *l <= 0x7FFF_FFFF)
            .ok_or_else(|| MediaError::Malformed(format!("segment at {} too large", s.offset)))?;
        let dur = u32::try_from(s.duration).map_err(|_| {
            MediaError::Malformed(format!("segment at {} too long for sidx", s.offset))
        })?;
        out.extend_from_slice(&size.to_be_bytes()); // reference_type 0
        out.extend_from_slice(&dur.to_be_bytes());
        out.extend_from_slice(&0x9000_0000u32.to_be_bytes()); // SAP 1, type 1, delta 0
    }
    Ok(out)
}

/// A box inside a byte slice: `[start, end)` with its body at `body`.
struct BoxAt {
    kind: [u8; 4],
    body: usize,
    end: usize,
}

/// The boxes in `buf[from..to]`.
fn boxes(buf: &[u8], from: usize, to: usize) -> Result<Vec<BoxAt>, MediaError> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        if to - pos < 8 {
            return Err(MediaError::Malformed(format!(
                "truncated box header at {pos}"
            )));
        }
        let size32 = be(&buf[pos..pos + 4]);
        let kind = [buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]];
        let (hl, size) = match size32 {
            0 => (8, (to - pos) as u64),
            1 => {
                if to - pos < 16 {
                    return Err(MediaError::Malformed(format!(
                        "truncated box header at {pos}"
                    )));
                }
                (16, be(&buf[pos + 8..pos + 16]))
            }
            n => (8, n),
        };
        if size < hl as u64 || size > (to - pos) as u64 {
            return Err(MediaError::Malformed(format!(
                "bad box size {size} at {pos}"
            )));
        }
        let end = pos + size as usize;
        out.push(BoxAt {
            kind,
            body: pos + hl,
            end,
        });
        pos = end;
    }
    Ok(out)
}

fn convert(ticks: u64, from: u32, to: u32) -> u64 {
    ((ticks as u128 * to as u128 + from as u128 / 2) / from as u128) as u64
}

/// Writes a full box's duration-like field: `v0` / `v1` are the offsets
/// from the start of the body (after version+flags) for either version.
fn patch(buf: &mut [u8], b: &BoxAt, v0: usize, v1: usize, value: u64) -> Result<(), MediaError> {
    let version = *buf
        .get(b.body)
        .ok_or_else(|| MediaError::Malformed("empty full box".into()))?;
    let body = b.body + 4;
    let (at, width) = match version {
        0 => (body + v0, 4),
        1 => (body + v1, 8),
        v => {
            return Err(MediaError::Malformed(format!(
                "{} version {v}",
                String::from_utf8_lossy(&b.kind)
            )));
        }
    };
    if at + width > b.end {
        return Err(MediaError::Malformed(format!(
            "{} too short",
            String::from_utf8_lossy(&b.kind)
        )));
    }
    if width == 4 {
        let v = u32::try_from(value).unwrap_or(u32::MAX);
        buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    } else {
        buf[at..at + 8].copy_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

fn read_u32(buf: &[u8], at: usize, end: usize) -> Result<u32, MediaError> {
    if at + 4 > end {
        return Err(MediaError::Malformed("full box too short".into()));
    }
    Ok(be(&buf[at..at + 4]) as u32)
}

/// The timescale of an mvhd/mdhd (same layout).
fn timescale(buf: &[u8], b: &BoxAt) -> Result<u32, MediaError> {
    let body = b.body + 4;
    match buf.get(b.body) {
        Some(0) => read_u32(buf, body + 8, b.end),
        Some(1) => read_u32(buf, body + 16, b.end),
        _ => Err(MediaError::Malformed("mvhd/mdhd version".into())),
    }
}

fn patch_durations(buf: &mut [u8], init: &InitInfo, ticks: u64) -> Result<(), MediaError> {
    let top = boxes(buf, 0, buf.len())?;
    let moov = top
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or_else(|| MediaError::Malformed("init segment without moov".into()))?;
    let children = boxes(buf, moov.body, moov.end)?;
    let mvhd = children
        .iter()
        .find(|b| &b.kind == b"mvhd")
        .ok_or_else(|| MediaError::Malformed("moov without mvhd".into()))?;
    let movie_ts = timescale(buf, mvhd)?;
    if movie_ts == 0 {
        return Err(MediaError::Malformed("mvhd timescale is 0".into()));
    }
    let movie = convert(ticks, init.timescale, movie_ts);
    patch(buf, mvhd, 12, 20, movie)?;

    let mut found = false;
    for trak in children.iter().filter(|b| &b.kind == b"trak") {
        let parts = boxes(buf, trak.body, trak.end)?;
        let Some(tkhd) = parts.iter().find(|b| &b.kind == b"tkhd") else {
            continue;
        };
        let id_at = match buf.get(tkhd.body) {
            Some(0) => tkhd.body + 4 + 8,
            Some(1) => tkhd.body + 4 + 16,
            _ => return Err(MediaError::Malformed("tkhd version".into())),
        };
        if read_u32(buf, id_at, tkhd.end)? != init.track_id {
            continue;
        }
        found = true;
        patch(buf, tkhd, 16, 24, movie)?;
        if let Some(mdia) = parts.iter().find(|b| &b.kind == b"mdia") {
            let inner = boxes(buf, mdia.body, mdia.end)?;
            if let Some(mdhd) = inner.iter().find(|b| &b.kind == b"mdhd") {
                let ts = timescale(buf, mdhd)?;
                let d = if ts == init.timescale || ts == 0 {
                    ticks
                } else {
                    convert(ticks, init.timescale, ts)
                };
                patch(buf, mdhd, 12, 20, d)?;
            }
        }
    }
    if !found {
        return Err(MediaError::Malformed(format!(
            "no trak with track_ID {}",
            init.track_id
        )));
    }
    if let Some(mvex) = children.iter().find(|b| &b.kind == b"mvex") {
        for mehd in boxes(buf, mvex.body, mvex.end)?
            .iter()
            .filter(|b| &b.kind == b"mehd")
        {
            patch(buf, mehd, 0, 0, movie)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use mp4_atom::{
        Decode, Encode, FourCC, Ftyp, Hdlr, Mdhd, Mdia, Mehd, Moov, Mvex, Mvhd, Sidx, Tkhd, Trak,
    };

    use super::*;

    fn trak(id: u32, timescale: u32, handler: &[u8; 4]) -> Trak {
        Trak {
            tkhd: Tkhd {
                track_id: id,
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale,
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: FourCC::new(handler),
                    name: String::new(),
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// ftyp + a version-1 moov (mp4-atom writes version 1) with a box it
    /// does not know inside.
    fn init_bytes() -> Vec<u8> {
        let mut out = Vec::new();
        Ftyp {
            major_brand: FourCC::new(b"iso6"),
            minor_version: 0,
            compatible_brands: vec![],
        }
        .encode(&mut out)
        .unwrap();
        let moov = Moov {
            mvhd: Mvhd {
                timescale: 1000,
                ..Default::default()
            },
            mvex: Some(Mvex {
                mehd: Some(Mehd {
                    fragment_duration: 0,
                }),
                trex: vec![],
            }),
            trak: vec![trak(1, 48000, b"soun"), trak(2, 90000, b"vide")],
            ..Default::default()
        };
        let at = out.len();
        moov.encode(&mut out).unwrap();
        out.extend_from_slice(&[0, 0, 0, 12, b'z', b'z', b'z', b'z', 1, 2, 3, 4]);
        let size = (out.len() - at) as u32;
        out[at..at + 4].copy_from_slice(&size.to_be_bytes());
        out
    }

    #[test]
    fn patches_version_1_boxes_and_keeps_the_rest() {
        let bytes = init_bytes();
        let init = InitInfo {
            len: bytes.len() as u64,
            timescale: 90000,
            track_id: 2,
            width: 0,
            height: 0,
            codecs: String::new(),
        };
        let segs = [
            Segment {
                offset: bytes.len() as u64,
                len: 1000,
                start: 3000,
                duration: 180_000,
            },
            Segment {
                offset: bytes.len() as u64 + 1000,
                len: 500,
                start: 183_000,
                duration: 45_045,
            },
        ];
        let head = header(&bytes, &init, &segs).unwrap();
        assert_eq!(head.len(), bytes.len() + 40 + 2 * 12);
        // Same length, same bytes but the durations; the unknown box is there.
        assert_eq!(
            &head[bytes.len() - 12..bytes.len()],
            &bytes[bytes.len() - 12..]
        );
        let moov_at = 8 + 8;
        let moov = Moov::decode(&mut &head[moov_at..bytes.len()]).unwrap();
        // 225045 ticks at 90 kHz = 2500.5 ms, rounded half up.
        assert_eq!(moov.mvhd.duration, 2501);
        assert_eq!(moov.mvex.unwrap().mehd.unwrap().fragment_duration, 2501);
        assert_eq!(moov.trak[1].tkhd.duration, 2501);
        assert_eq!(moov.trak[1].mdia.mdhd.duration, 225_045);
        // The audio track is left alone.
        assert_eq!(moov.trak[0].tkhd.duration, 0);
        assert_eq!(moov.trak[0].mdia.mdhd.duration, 0);

        let sidx = Sidx::decode(&mut &head[bytes.len()..]).unwrap();
        assert_eq!(head[bytes.len() + 8], 1);
        assert_eq!(sidx.reference_id, 2);
        assert_eq!(sidx.timescale, 90000);
        assert_eq!(sidx.earliest_presentation_time, 3000);
        assert_eq!(sidx.first_offset, 0);
        let refs: Vec<(u32, u32)> = sidx
            .references
            .iter()
            .map(|r| (r.referenced_size, r.subsegment_duration))
            .collect();
        assert_eq!(refs, vec![(1000, 180_000), (500, 45_045)]);
    }

    #[test]
    fn patches_version_0_fields() {
        let mut mehd = vec![0, 0, 0, 16, b'm', b'e', b'h', b'd', 0, 0, 0, 0, 0, 0, 0, 0];
        let b = BoxAt {
            kind: *b"mehd",
            body: 8,
            end: 16,
        };
        patch(&mut mehd, &b, 0, 0, 1234).unwrap();
        assert_eq!(be(&mehd[12..16]), 1234);
        // Too big for 32 bits: saturates.
        patch(&mut mehd, &b, 0, 0, 1 << 40).unwrap();
        assert_eq!(be(&mehd[12..16]), u64::from(u32::MAX));
        // A box too short for its version's fields.
        let mut short = mehd[..14].to_vec();
        short[3] = 14;
        let b = BoxAt {
            kind: *b"mehd",
            body: 8,
            end: 14,
        };
        assert!(matches!(
            patch(&mut short, &b, 0, 0, 1),
            Err(MediaError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_inconsistent_input() {
        let bytes = init_bytes();
        let init = InitInfo {
            len: bytes.len() as u64,
            timescale: 90000,
            track_id: 2,
            width: 0,
            height: 0,
            codecs: String::new(),
        };
        assert!(header(&bytes, &init, &[]).is_err());
        let seg = Segment {
            offset: bytes.len() as u64,
            len: 10,
            start: 0,
            duration: 10,
        };
        assert!(header(&bytes[1..], &init, std::slice::from_ref(&seg)).is_err());
        let other = InitInfo {
            track_id: 7,
            ..init.clone()
        };
        assert!(header(&bytes, &other, std::slice::from_ref(&seg)).is_err());
        assert!(header(&bytes, &init, &[seg]).is_ok());
    }
}
