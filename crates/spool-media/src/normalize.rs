//! Turns any probed upload into the fragmented MP4 the player needs:
//! keyframe-led fragments (`frag_keyframe+empty_moov+default_base_moof`),
//! H.264, VP9 and AV1 video copied as they are and AAC/Opus audio copied;
//! any other video codec transcoded to H.264 (libx264) and any other audio
//! to AAC-LC, with progress reported as it goes. Packets are streamed one at
//! a time, so memory stays bounded whatever the size of the upload.

mod audio;
mod video;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ff::{Dictionary, Packet, Rational, Rescale, encoder, format};
use ffmpeg_next as ff;

use crate::MediaError;
use crate::probe::{Probe, best_audio, best_video, open_input};

use audio::AudioTranscoder;
use video::VideoTranscoder;

pub(crate) use video::fit;

/// What [`normalize`] will do with each stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Every stream is copied (no re-encoding).
    Remux,
    /// Video is re-encoded to H.264 (audio copied or re-encoded as needed).
    TranscodeVideo,
    /// Video copied, audio re-encoded to AAC.
    TranscodeAudio,
}

/// Video codecs browsers play from MP4 as they are.
fn video_copyable(codec: &str) -> bool {
    matches!(codec, "h264" | "vp9" | "av1")
}

/// Audio codecs browsers play from MP4 as they are.
fn audio_copyable(codec: &str) -> bool {
    matches!(codec, "aac" | "opus")
}

/// The plan for `probe`.
pub fn plan(probe: &Probe) -> Plan {
    let audio_ok = probe
        .audio
        .as_ref()
        .is_none_or(|a| audio_copyable(&a.codec));
    match (video_copyable(&probe.video.codec), audio_ok) {
        (true, true) => Plan::Remux,
        (true, false) => Plan::TranscodeAudio,
        (false, _) => Plan::TranscodeVideo,
    }
}

/// How often progress is reported at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What happens to one input stream's packets.
enum Route {
    Drop,
    Copy(Copy),
    Video(Box<VideoTranscoder>),
    Audio(Box<AudioTranscoder>),
}

/// A stream copied packet by packet.
struct Copy {
    ost_index: usize,
    in_tb: Rational,
    /// The input's start time in `in_tb`, taken off every timestamp.
    start: i64,
    /// The last dts written, in the output time base: the muxer refuses
    /// timestamps that go backwards.
    last_dts: Option<i64>,
}

/// Writes `output` (a fragmented MP4) from `input`. `progress` is called
/// with 0..=1 as input time advances (at most a few times a second);
/// `cancel` stops it with [`MediaError::Cancelled`]. Runs on the calling
/// thread (blocking). `output` is written in place: callers write to a
/// temporary name and rename.
///
/// Returns the plan carried out: [`plan`]'s, except that AAC without a
/// decoder configuration (ADTS, as MPEG-TS carries it) is re-encoded, so
/// a [`Plan::Remux`] becomes [`Plan::TranscodeAudio`]; and video whose
/// keyframes are too far apart to copy in bounded memory is transcoded
/// ([`Plan::TranscodeVideo`]).
pub fn normalize(
    input: &Path,
    output: &Path,
    probe: &Probe,
    progress: &mut dyn FnMut(f64),
    cancel: &AtomicBool,
) -> Result<Plan, MediaError> {
    crate::init_ffmpeg()?;
    let mut reporter = Progress::new(probe.duration_ms.map(|ms| ms as f64 / 1000.0));
    match run(
        input,
        output,
        probe,
        None,
        MAX_FRAGMENT_BYTES,
        &mut reporter,
        progress,
        cancel,
    )? {
        Some(plan) => Ok(plan),
        // The copied video's keyframes are too far apart for the muxer to
        // hold a fragment in memory: make new ones.
        None => run(
            input,
            output,
            probe,
            Some(Plan::TranscodeVideo),
            u64::MAX,
            &mut reporter,
            progress,
            cancel,
        )?
        .ok_or_else(|| MediaError::Ffmpeg("transcode restarted twice".into())),
    }
}

/// The most bytes of copied video one fragment may hold. The mp4 muxer
/// keeps the current fragment in memory until the next keyframe, so a copy
/// of a file with keyframes minutes apart (some screen recorders write one)
/// would buffer most of it; past this, the video is transcoded instead.
const MAX_FRAGMENT_BYTES: u64 = 192 << 20;

/// One attempt at [`normalize`] with `force`d plan (else [`plan`]'s);
/// `None` when a copied video fragment would exceed `max_fragment` bytes.
#[allow(clippy::too_many_arguments)]
fn run(
    input: &Path,
    output: &Path,
    probe: &Probe,
    force: Option<Plan>,
    max_fragment: u64,
    reporter: &mut Progress,
    progress: &mut dyn FnMut(f64),
    cancel: &AtomicBool,
) -> Result<Option<Plan>, MediaError> {
    let mut plan = force.unwrap_or_else(|| plan(probe));
    let mut ictx = open_input(input)?;
    let vi = best_video(&ictx)
        .ok_or_else(|| MediaError::Unsupported("no decodable video stream".into()))?;
    let ai = best_audio(&ictx);
    let mut octx = format::output_as(output, "mp4")?;

    // Output starts at zero, as players and the HLS indexer expect: MPEG-TS
    // and some cameras start their clocks well above it.
    let start_us = [Some(vi), ai]
        .into_iter()
        .flatten()
        .filter_map(|i| ictx.stream(i))
        .filter(|s| s.start_time() != ff::ffi::AV_NOPTS_VALUE)
        .map(|s| {
            s.start_time()
                .rescale(s.time_base(), ff::rescale::TIME_BASE)
        })
        .min()
        .filter(|t| *t > 0)
        .unwrap_or(0);
    let mut routes: Vec<Route> = (0..ictx.nb_streams()).map(|_| Route::Drop).collect();
    for ist in ictx.streams() {
        let i = ist.index();
        let start = start_us.rescale(ff::rescale::TIME_BASE, ist.time_base());
        let copy_video = plan != Plan::TranscodeVideo;
        routes[i] = if i == vi && copy_video {
            Route::Copy(add_copy(&ist, &mut octx, start)?)
        } else if i == vi {
            Route::Video(Box::new(VideoTranscoder::new(&ist, &mut octx, start)?))
        } else if Some(i) == ai
            && audio_copyable(ist.parameters().id().name())
            && has_extradata(&ist.parameters())
        {
            Route::Copy(add_copy(&ist, &mut octx, start)?)
        } else if Some(i) == ai {
            // ADTS AAC (MPEG-TS, raw .aac) has no decoder config for the
            // MP4 header and FFmpeg 5.1's muxer refuses it; re-encoding a
            // few kbit/s of audio is cheaper than a bitstream filter.
            if plan == Plan::Remux {
                plan = Plan::TranscodeAudio;
            }
            Route::Audio(Box::new(AudioTranscoder::new(&ist, &mut octx, start)?))
        } else {
            Route::Drop
        };
    }

    let mut opts = Dictionary::new();
    opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
    // FFmpeg 5.1 still calls Opus in MP4 experimental.
    opts.set("strict", "experimental");
    octx.write_header_with(opts)?;
    let ost_tbs: Vec<Rational> = octx.streams().map(|s| s.time_base()).collect();

    let video_tb = ictx
        .stream(vi)
        .map(|s| s.time_base())
        .unwrap_or(Rational(1, 1000));
    let video_start = start_us.rescale(ff::rescale::TIME_BASE, video_tb);
    let mut packet = Packet::empty();
    let mut fragment_bytes = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(MediaError::Cancelled);
        }
        match packet.read(&mut ictx) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            // The demuxer resyncs past a corrupt packet.
            Err(ff::Error::InvalidData) => continue,
            Err(e) => return Err(e.into()),
        }
        let si = packet.stream();
        if si == vi
            && let Some(t) = packet.pts().or(packet.dts())
        {
            reporter.at((t - video_start) as f64 * f64::from(video_tb), progress);
        }
        if si == vi && matches!(routes.get(si), Some(Route::Copy(_))) {
            fragment_bytes = if packet.is_key() {
                0
            } else {
                fragment_bytes + packet.size() as u64
            };
            if fragment_bytes > max_fragment {
                return Ok(None);
            }
        }
        match routes.get_mut(si) {
            Some(Route::Copy(c)) => write_copy(c, &mut packet, ost_tbs[c.ost_index], &mut octx)?,
            Some(Route::Video(t)) => t.push(&packet, &mut octx)?,
            Some(Route::Audio(t)) => t.push(&packet, &mut octx)?,
            Some(Route::Drop) | None => {}
        }
    }
    for route in &mut routes {
        match route {
            Route::Video(t) => t.finish(&mut octx)?,
            Route::Audio(t) => t.finish(&mut octx)?,
            Route::Copy(_) | Route::Drop => {}
        }
    }
    octx.write_trailer()?;
    progress(1.0);
    Ok(Some(plan))
}

/// Adds an output stream that takes `ist`'s packets unchanged.
fn add_copy(
    ist: &format::stream::Stream,
    octx: &mut format::context::Output,
    start: i64,
) -> Result<Copy, MediaError> {
    let mut ost = octx.add_stream(encoder::find(ff::codec::Id::None))?;
    ost.set_parameters(ist.parameters());
    clear_codec_tag(&mut ost);
    copy_display_matrix(ist, &mut ost);
    Ok(Copy {
        ost_index: ost.index(),
        in_tb: ist.time_base(),
        start,
        last_dts: None,
    })
}

/// Lets the mp4 muxer choose the codec tag: the input container's tag (an
/// AVI fourcc, a Matroska one) is often invalid in MP4 and the muxer would
/// refuse the stream. ffmpeg-next has no safe setter for it.
#[allow(unsafe_code)]
fn clear_codec_tag(ost: &mut format::stream::StreamMut) {
    // SAFETY: the parameters belong to a live output stream of an output
    // context we hold mutably; codec_tag is a plain integer field.
    unsafe {
        (*ost.parameters().as_mut_ptr()).codec_tag = 0;
    }
}

/// Carries the input's display matrix (a phone's portrait rotation) over:
/// frames are stored as shot, and the player turns them. ffmpeg-next can
/// read stream side data but not add it.
#[allow(unsafe_code)]
pub(crate) fn copy_display_matrix(
    ist: &format::stream::Stream,
    ost: &mut format::stream::StreamMut,
) {
    use ff::codec::packet::side_data::Type;
    for sd in ist
        .side_data()
        .filter(|sd| sd.kind() == Type::DisplayMatrix)
    {
        let data = sd.data();
        // SAFETY: av_stream_new_side_data allocates `data.len()` bytes owned
        // by the output stream (or returns NULL); we copy exactly that many
        // from a slice of the same length, and the regions cannot overlap.
        unsafe {
            let dst = ff::ffi::av_stream_new_side_data(
                ost.as_mut_ptr(),
                ff::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                data.len() as _,
            );
            if !dst.is_null() {
                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            }
        }
    }
}

/// Whether the stream carries its decoder configuration (AAC's
/// AudioSpecificConfig, Opus's header) out of band, as MP4 needs.
#[allow(unsafe_code)]
fn has_extradata(params: &ff::codec::Parameters) -> bool {
    // SAFETY: reads a plain integer field of parameters owned by a stream
    // of the input context, which outlives this call.
    unsafe { (*params.as_ptr()).extradata_size > 0 }
}

/// Rescales and writes one copied packet; packets without any timestamp,
/// or whose dts would go backwards, are dropped (the muxer refuses them).
fn write_copy(
    c: &mut Copy,
    packet: &mut Packet,
    ost_tb: Rational,
    octx: &mut format::context::Output,
) -> Result<(), MediaError> {
    let (pts, dts) = match (packet.pts(), packet.dts()) {
        (None, None) => return Ok(()),
        (p, d) => (p.or(d), d.or(p)),
    };
    packet.set_pts(pts.map(|t| t - c.start));
    packet.set_dts(dts.map(|t| t - c.start));
    packet.rescale_ts(c.in_tb, ost_tb);
    packet.set_position(-1);
    packet.set_stream(c.ost_index);
    if let (Some(d), Some(last)) = (packet.dts(), c.last_dts)
        && d <= last
    {
        let fixed = last + 1;
        if packet.pts().is_some_and(|p| p < fixed) {
            return Ok(());
        }
        packet.set_dts(Some(fixed));
    }
    c.last_dts = packet.dts();
    packet.write_interleaved(octx)?;
    Ok(())
}

/// Throttled, monotonic progress from packet timestamps.
struct Progress {
    duration_s: Option<f64>,
    last_at: Option<Instant>,
    last: f64,
}

impl Progress {
    fn new(duration_s: Option<f64>) -> Self {
        Progress {
            duration_s: duration_s.filter(|d| *d > 0.0),
            last_at: None,
            last: 0.0,
        }
    }

    fn at(&mut self, t_s: f64, report: &mut dyn FnMut(f64)) {
        let Some(d) = self.duration_s else { return };
        // Packets arrive in decode order, so the value can dip; it is
        // reported only when it grows.
        let p = (t_s / d).clamp(0.0, 0.999);
        if p <= self.last || self.last_at.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = p;
        self.last_at = Some(Instant::now());
        report(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{AudioStream, VideoStream};

    fn probe(v: &str, a: Option<&str>) -> Probe {
        Probe {
            format: "x".into(),
            duration_ms: Some(1000),
            video: VideoStream {
                codec: v.into(),
                width: 2,
                height: 2,
            },
            audio: a.map(|c| AudioStream {
                codec: c.into(),
                sample_rate: 48_000,
                channels: 2,
            }),
        }
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&probe("h264", Some("aac"))), Plan::Remux);
        assert_eq!(plan(&probe("vp9", Some("opus"))), Plan::Remux);
        assert_eq!(plan(&probe("av1", None)), Plan::Remux);
        assert_eq!(plan(&probe("h264", Some("mp3"))), Plan::TranscodeAudio);
        assert_eq!(plan(&probe("vp9", Some("vorbis"))), Plan::TranscodeAudio);
        assert_eq!(
            plan(&probe("h264", Some("pcm_s16le"))),
            Plan::TranscodeAudio
        );
        for v in [
            "hevc",
            "mpeg4",
            "mpeg2video",
            "vp8",
            "mjpeg",
            "prores",
            "theora",
        ] {
            assert_eq!(plan(&probe(v, Some("aac"))), Plan::TranscodeVideo, "{v}");
        }
        assert_eq!(plan(&probe("vp8", Some("vorbis"))), Plan::TranscodeVideo);
    }

    #[test]
    fn progress_is_throttled_and_monotonic() {
        let mut seen = Vec::new();
        let mut p = Progress::new(Some(10.0));
        for t in [1.0, 0.5, 2.0, 3.0] {
            p.at(t, &mut |x| seen.push(x));
        }
        // The first report passes; the rest fall within the throttle window.
        assert_eq!(seen, vec![0.1]);
    }

    /// A copy whose one fragment would outgrow the cap is abandoned, and
    /// the transcode that replaces it has fragments again.
    #[test]
    fn sparse_keyframes_fall_back_to_transcoding() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("sparse.mp4");
        let ok = std::process::Command::new("ffmpeg")
            .args(["-y", "-v", "error", "-nostdin", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x240:rate=25:duration=4")
            .args([
                "-c:v",
                "libx264",
                "-g",
                "1000",
                "-x264-params",
                "scenecut=0",
            ])
            .arg(&input)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let p = crate::probe::probe(&input).unwrap();
        assert_eq!(plan(&p), Plan::Remux);
        let output = dir.path().join("out.mp4");
        let cancel = AtomicBool::new(false);
        let mut reporter = Progress::new(Some(4.0));
        let mut seen = Vec::new();
        let mut report = |x| seen.push(x);
        let first = run(
            &input,
            &output,
            &p,
            None,
            20_000,
            &mut reporter,
            &mut report,
            &cancel,
        );
        assert_eq!(first.unwrap(), None);
        let second = run(
            &input,
            &output,
            &p,
            Some(Plan::TranscodeVideo),
            u64::MAX,
            &mut reporter,
            &mut report,
            &cancel,
        );
        assert_eq!(second.unwrap(), Some(Plan::TranscodeVideo));
        let bytes = std::fs::read(&output).unwrap();
        let moofs = bytes.windows(4).filter(|w| w == b"moof").count();
        assert!(moofs >= 2, "{moofs} fragments");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    }
}
