//! What an upload is, read with FFmpeg (ffmpeg-next): container, streams,
//! codecs, duration. A file counts as a video only when FFmpeg finds a real
//! moving-picture stream in it (not cover art, not a still image read by an
//! image demuxer) whose codec it can decode; everything else is
//! [`MediaError::Unsupported`], because some demuxers will happily "open"
//! random bytes.

use std::path::Path;

use ff::format::context::Input;
use ff::media::Type;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::MediaError;

/// A video stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStream {
    /// FFmpeg's codec name (`h264`, `vp9`, `av1`, `hevc`, `mpeg4`, …).
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

/// An audio stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStream {
    /// FFmpeg's codec name (`aac`, `opus`, `mp3`, `pcm_s16le`, …).
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
}

/// The probe's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// FFmpeg's demuxer name (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, …).
    pub format: String,
    pub duration_ms: Option<u64>,
    /// The first (default) video stream; always present (no video =
    /// [`MediaError::Unsupported`]).
    pub video: VideoStream,
    pub audio: Option<AudioStream>,
}

/// Probes the file. Anything without a decodable video stream (text, an
/// image-only or audio-only file, random bytes) is [`MediaError::Unsupported`].
pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    crate::init_ffmpeg()?;
    let ictx = open_input(path)?;
    let format = ictx.format().name().to_string();
    if is_image_demuxer(&format) {
        return Err(MediaError::Unsupported(format!(
            "a still image ({format}), not a video"
        )));
    }
    let vi = best_video(&ictx).ok_or_else(|| {
        MediaError::Unsupported(format!("no decodable video stream (read as {format})"))
    })?;
    let vs = ictx
        .stream(vi)
        .ok_or_else(|| MediaError::Ffmpeg("video stream vanished".into()))?;
    let vdec = ff::codec::context::Context::from_parameters(vs.parameters())?
        .decoder()
        .video()
        .map_err(|e| MediaError::Unsupported(format!("cannot decode the video: {e}")))?;
    let video = VideoStream {
        codec: vs.parameters().id().name().to_string(),
        width: vdec.width(),
        height: vdec.height(),
    };
    let audio = best_audio(&ictx).and_then(|ai| {
        let st = ictx.stream(ai)?;
        let dec = ff::codec::context::Context::from_parameters(st.parameters())
            .ok()?
            .decoder()
            .audio()
            .ok()?;
        Some(AudioStream {
            codec: st.parameters().id().name().to_string(),
            sample_rate: dec.rate(),
            channels: u32::from(dec.channels()),
        })
    });
    Ok(Probe {
        format,
        duration_ms: duration_ms(&ictx, vi),
        video,
        audio,
    })
}

/// Opens `path` for demuxing; a missing file is [`MediaError::Io`], a file
/// FFmpeg cannot read as media is [`MediaError::Unsupported`].
///
/// An MP4 still being written can end inside a `moof` box, and FFmpeg's
/// mov demuxer, which reads every fragment header when it opens a file,
/// then fails outright. Such a file is opened again through FFmpeg's
/// `subfile` protocol, cut at the end of its last complete top-level box,
/// so the complete fragments stay readable without copying anything.
pub(crate) fn open_input(path: &Path) -> Result<Input, MediaError> {
    // Missing or unreadable files are I/O errors, not bad media.
    std::fs::File::open(path)?;
    let err = match ff::format::input(path) {
        Ok(ictx) => return Ok(ictx),
        Err(e) => e,
    };
    let unsupported =
        |e: ff::Error| MediaError::Unsupported(format!("FFmpeg cannot read it as media: {e}"));
    match (complete_prefix(path)?, path.to_str()) {
        (Some(end), Some(p)) => {
            // `file:` keeps a colon in the path from reading as a protocol.
            ff::format::input(&format!("subfile,,start,0,end,{end},,:file:{p}"))
                .map_err(unsupported)
        }
        _ => Err(unsupported(err)),
    }
}

/// Where the last complete top-level ISO-BMFF box ends, when the file looks
/// like an MP4 (starts with `ftyp`) whose last box is cut short. Reads only
/// the box headers, so a multi-gigabyte file costs a few thousand reads.
fn complete_prefix(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut at = 0u64;
    let mut header = [0u8; 16];
    while at + 8 <= len {
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut header[..8])?;
        if at == 0 && &header[4..8] != b"ftyp" {
            return Ok(None);
        }
        let size = match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
            1 if at + 16 <= len => {
                f.read_exact(&mut header[8..16])?;
                u64::from_be_bytes(header[8..16].try_into().unwrap_or([0; 8]))
            }
            // Size 0 ("to the end of the file") is complete by definition.
            0 => return Ok(None),
            n => u64::from(n),
        };
        if size < 8 {
            return Ok(None);
        }
        if at + size > len {
            break;
        }
        at += size;
    }
    Ok((at > 0 && at < len).then_some(at))
}

/// Demuxers that read single pictures (`image2`, `png_pipe`, `jpeg_pipe`, …)
/// or text (`tty`): whatever they find is not a video.
fn is_image_demuxer(name: &str) -> bool {
    name == "image2" || name.ends_with("_pipe") || TEXT_DEMUXERS.contains(&name) || name == "ico"
}

/// Demuxers for text art (ANSI, BinText, XBin…): they accept nearly any
/// bytes, random ones included, and "decode" them as a picture of text.
const TEXT_DEMUXERS: &[&str] = &["tty", "bin", "xbin", "adf", "idf"];

/// Codecs that draw text rather than pictures.
const TEXT_CODECS: &[&str] = &["ansi", "bintext", "xbin", "idf"];

/// The video stream to use: a real moving picture (not attached cover art)
/// with a size and a decoder, the default-flagged one first.
pub(crate) fn best_video(ictx: &Input) -> Option<usize> {
    use ff::format::stream::Disposition;
    let usable: Vec<_> = ictx
        .streams()
        .filter(|s| s.parameters().medium() == Type::Video)
        .filter(|s| !s.disposition().contains(Disposition::ATTACHED_PIC))
        .filter(|s| !TEXT_CODECS.contains(&s.parameters().id().name()))
        // A single frame is a still image in a video container.
        .filter(|s| s.frames() != 1)
        .filter(|s| {
            ff::codec::context::Context::from_parameters(s.parameters())
                .and_then(|c| c.decoder().video())
                .is_ok_and(|d| d.width() > 0 && d.height() > 0)
        })
        .map(|s| (s.index(), s.disposition().contains(Disposition::DEFAULT)))
        .collect();
    usable
        .iter()
        .find(|(_, default)| *default)
        .or(usable.first())
        .map(|(i, _)| *i)
}

/// The audio stream to use: FFmpeg's best one, if it can be decoded.
pub(crate) fn best_audio(ictx: &Input) -> Option<usize> {
    let st = ictx.streams().best(Type::Audio)?;
    ff::codec::decoder::find(st.parameters().id())?;
    Some(st.index())
}

/// The container's duration, else the video stream's.
pub(crate) fn duration_ms(ictx: &Input, video: usize) -> Option<u64> {
    let d = ictx.duration();
    if d > 0 {
        return Some((d as f64 / f64::from(ff::ffi::AV_TIME_BASE) * 1000.0).round() as u64);
    }
    let st = ictx.stream(video)?;
    let (d, tb) = (st.duration(), st.time_base());
    (d > 0 && tb.denominator() > 0).then(|| (d as f64 * f64::from(tb) * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_demuxers_are_not_video() {
        assert!(is_image_demuxer("png_pipe"));
        assert!(is_image_demuxer("image2"));
        assert!(!is_image_demuxer("matroska,webm"));
    }

    #[test]
    fn missing_file_is_io() {
        let e = probe(Path::new("/nonexistent/spool-probe")).unwrap_err();
        assert!(matches!(e, MediaError::Io(_)), "{e:?}");
    }
}
