//! Spool's recording pipeline, shared by `spool record` and the desktop app:
//! a [`Recorder`] captures a source (spool-capture), encodes it into one
//! fragmented MP4 (spool-encode) and, when given an [`Upload`], appends the
//! init segment and every finished fragment to a deferred-length upload
//! (spool-client) while capture goes on. Stopping encodes the frames still
//! queued into the last fragment; [`Recorded::finish_upload`] then declares
//! the length and waits while the upload makes progress. The local file is
//! always kept, and [`Recorder::progress`] tells how far the upload keeps
//! pace (fragments and bytes recorded against acknowledged, the backlog,
//! the upload's state).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spool_capture::audio::{AudioCapture, AudioRequest};
use spool_client::{Client, ClientError, Completed, Options, Session, SourceRecord, State, Target};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What to record and how.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: spool_capture::SourceSpec,
    pub fps: u32,
    /// Fragment (and keyframe interval) duration, 0.5 s to 10 s.
    pub fragment: Duration,
    /// Scale down to at most this many pixels tall.
    pub max_height: Option<u32>,
    pub preset: String,
    pub crf: u8,
    /// Where the local .mp4 goes (created if missing).
    pub output_dir: PathBuf,
    /// The sound to record (none by default).
    pub audio: AudioRequest,
}

impl Settings {
    pub const DEFAULT_FPS: u32 = 30;
    pub const DEFAULT_FRAGMENT_SECS: f64 = 2.0;

    /// Checks the numbers a user can get wrong.
    pub fn validate(&self) -> Result<(), RecordError> {
        if !(1..=240).contains(&self.fps) {
            return Err(RecordError::Invalid(
                "the frame rate must be between 1 and 240".into(),
            ));
        }
        if !(0.5..=10.0).contains(&self.fragment.as_secs_f64()) {
            return Err(RecordError::Invalid(
                "the fragment duration must be between 0.5 and 10 seconds".into(),
            ));
        }
        if self.crf > 51 {
            return Err(RecordError::Invalid(
                "the quality (CRF) must be between 0 and 51".into(),
            ));
        }
        if self.max_height.is_some_and(|h| h < 16) {
            return Err(RecordError::Invalid(
                "the downscale height must be at least 16 pixels".into(),
            ));
        }
        Ok(())
    }
}

/// Where a recording is uploaded while it is made.
pub struct Upload {
    pub client: Client,
    pub target: Target,
    pub options: Options,
}

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Capture(#[from] spool_capture::CaptureError),
    #[error("{0}")]
    Audio(#[from] spool_capture::audio::AudioError),
    #[error("encoding failed (the fragments finished so far are kept): {0}")]
    Encode(#[from] spool_encode::EncodeError),
    #[error(transparent)]
    Upload(#[from] ClientError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
    #[error(
        "no upload progress for {0} s; the recording is kept and its upload stays in the journal"
    )]
    NoProgress(u64),
}

impl RecordError {
    /// The stable code of the errors that have one.
    pub fn code(&self) -> Option<spool_proto::ErrorCode> {
        match self {
            RecordError::Audio(spool_capture::audio::AudioError::Unavailable(_)) => {
                Some(spool_proto::ErrorCode::AudioUnavailable)
            }
            RecordError::Upload(e) => e.code(),
            _ => None,
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RecordError {
    let context = context.into();
    move |source| RecordError::Io { context, source }
}

/// What a recorder announces, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// A fragment is on disk (and queued for upload).
    Fragment {
        index: u64,
        bytes: u64,
        duration: Duration,
        /// Why it ended there (its duration, a pause, the end).
        reason: spool_encode::Cut,
    },
    /// Capture is paused: the fragment being written is closed, everything
    /// recorded so far keeps uploading.
    Paused,
    /// Capture goes on, continuing the timeline where it paused.
    Resumed,
    /// The sound was muted (silence recorded, timing kept) or unmuted.
    Muted(bool),
    /// A sound source started, was lost (silence in its place) or came back.
    Audio(spool_capture::audio::AudioEvent),
    /// Stop was asked for; the last fragment is being encoded.
    Stopped,
    /// The upload's own events (progress, reconnecting, stalled, …).
    Upload(spool_client::Event),
}

pub(crate) struct Shared {
    /// The recording's timeline (stands still while paused).
    pub(crate) clock: Arc<spool_capture::Clock>,
    /// Upload offsets where each fragment ends (the init segment is not one).
    pub(crate) fragment_ends: Mutex<Vec<u64>>,
    pub(crate) recorded: std::sync::atomic::AtomicU64,
    pub(crate) capturing: std::sync::atomic::AtomicBool,
    pub(crate) stats: Arc<spool_capture::CaptureStats>,
    pub(crate) stopped_at: Mutex<Option<Instant>>,
    /// The sound's mix and each source's newest state, when recording sound.
    pub(crate) audio: Option<AudioShared>,
}

/// A recording in progress.
pub struct Recorder {
    /// The local fragmented MP4.
    pub path: PathBuf,
    /// A human-readable name of the source.
    pub description: String,
    pub width: u32,
    pub height: u32,
    /// The journal id of its upload, when uploading.
    pub upload_id: Option<String>,
    stop: CancellationToken,
    controls: Controls,
    progress: ProgressHandle,
    events: Option<mpsc::Receiver<Event>>,
    task: JoinHandle<Result<Recorded, RecordError>>,
}

/// A finished recording (capture and encoding done).
pub struct Recorded {
    pub path: PathBuf,
    pub frames: u64,
    pub fragments: u64,
    pub bytes: u64,
    pub duration: Duration,
    pub dropped: u64,
    /// Time spent paused (not part of `duration`).
    pub paused: Duration,
    /// When Stop was asked for (or the capture ended).
    pub stopped_at: Instant,
    /// The sound track, when sound was recorded.
    pub audio: Option<AudioSummary>,
    /// The upload, still running: call [`Recorded::finish_upload`].
    pub upload: Option<Session>,
}

mod audio;
pub mod codes;
mod controls;
mod progress;

pub use audio::AudioSummary;
pub(crate) use audio::{AudioShared, start_audio};
pub use controls::{Controls, countdown};
pub use progress::{AudioProgress, Progress, ProgressHandle, state_word};

/// The queue between the recorder and its consumer; an event a consumer is
/// too slow for is dropped (the [`Progress`] counters stay exact).
const EVENT_QUEUE: usize = 256;

impl Recorder {
    /// Opens the source, creates the upload (when given), and starts
    /// capturing and encoding.
    pub async fn start(
        settings: Settings,
        upload: Option<Upload>,
    ) -> Result<Recorder, RecordError> {
        settings.validate()?;
        // Sound asked for but unavailable fails here, before an upload exists.
        let audio = if settings.audio.is_empty() {
            None
        } else {
            let request = settings.audio.clone();
            Some(
                tokio::task::spawn_blocking(move || spool_capture::audio::prepare(&request))
                    .await
                    .map_err(|e| RecordError::Internal(e.to_string()))??,
            )
        };
        let spec = settings.source.clone();
        let source = tokio::task::spawn_blocking(move || spool_capture::open(&spec))
            .await
            .map_err(|e| RecordError::Internal(e.to_string()))??;
        let (width, height) = source.size();
        let description = source.describe();

        std::fs::create_dir_all(&settings.output_dir)
            .map_err(io(format!("creating {}", settings.output_dir.display())))?;
        let dir = std::fs::canonicalize(&settings.output_dir)
            .map_err(io(format!("opening {}", settings.output_dir.display())))?;
        let path = dir.join(format!(
            "spool-{}.mp4",
            chrono::Local::now().format("%Y%m%d-%H%M%S%.3f")
        ));

        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        // The upload is created at Start, so its link exists before the
        // first fragment does.
        let mut session = None;
        if let Some(Upload {
            client,
            target,
            mut options,
        }) = upload
        {
            let filename = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if !options.metadata.iter().any(|(k, _)| k == "filename") {
                options.metadata.push(("filename".into(), filename));
            }
            // The fragmenter starts every fragment with a keyframe; saying
            // so lets the server publish each one live as soon as it is in.
            if !options.metadata.iter().any(|(k, _)| k == "fragments") {
                options
                    .metadata
                    .push(("fragments".into(), "keyframe".into()));
            }
            let mut s = client
                .start(
                    target,
                    SourceRecord::Stream {
                        label: path.display().to_string(),
                    },
                    options,
                )
                .await?;
            if let Some(mut rx) = s.take_events() {
                let tx = events_tx.clone();
                tokio::spawn(async move {
                    while let Some(e) = rx.recv().await {
                        let _ = tx.try_send(Event::Upload(e));
                    }
                });
            }
            session = Some(s);
        }
        let upload_id = session.as_ref().map(|s| s.id.clone());
        let upload_status = session.as_ref().map(Session::status);

        let clock = Arc::new(spool_capture::Clock::new());
        let audio = match audio {
            Some(prepared) => Some(start_audio(prepared, clock.clone(), events_tx.clone())?),
            None => None,
        };
        let (capture, frames) = spool_capture::start(
            source,
            settings.fps,
            (settings.fps as usize / 2).max(4),
            clock.clone(),
        )?;
        let config = spool_encode::Config {
            path: path.clone(),
            width,
            height,
            max_height: settings.max_height,
            fps: settings.fps,
            fragment: settings.fragment,
            preset: settings.preset.clone(),
            crf: settings.crf,
            audio: audio.as_ref().map(|(c, _)| c.mixer()),
        };
        let (etx, erx) = std::sync::mpsc::channel();
        let encoder = match spool_encode::spawn(config, frames, etx) {
            Ok(e) => e,
            Err(e) => {
                capture.stop();
                return Err(io("starting the encoder thread")(e));
            }
        };
        // Encoder events cross to the async side through a small bridge thread.
        let (atx, arx) = mpsc::channel::<spool_encode::Event>(64);
        std::thread::Builder::new()
            .name("spool-encode-events".into())
            .spawn(move || {
                for e in erx {
                    if atx.blocking_send(e).is_err() {
                        break;
                    }
                }
            })
            .map_err(io("starting the encoder bridge"))?;

        let shared = Arc::new(Shared {
            clock,
            fragment_ends: Mutex::new(Vec::new()),
            recorded: Default::default(),
            capturing: std::sync::atomic::AtomicBool::new(true),
            stats: capture.stats.clone(),
            stopped_at: Mutex::new(None),
            audio: audio.as_ref().map(|(c, states)| AudioShared {
                mixer: c.mixer(),
                states: states.clone(),
            }),
        });
        let stop = CancellationToken::new();
        let controls = Controls {
            shared: shared.clone(),
            events: events_tx.clone(),
        };
        let run = Run {
            path: path.clone(),
            audio: audio.map(|(c, _)| c),
            capture,
            encoder,
            encoder_events: arx,
            session,
            shared: shared.clone(),
            events: events_tx,
            stop: stop.clone(),
        };
        let span = tracing::info_span!("record", path = %path.display());
        let task = tokio::spawn(tracing::Instrument::instrument(run.run(), span));
        Ok(Recorder {
            path,
            description,
            width,
            height,
            upload_id,
            stop,
            controls,
            progress: ProgressHandle {
                shared,
                upload_status,
            },
            events: Some(events_rx),
            task,
        })
    }

    /// Asks the recording to stop: capture ends, the frames already taken
    /// are encoded into the last fragment.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// A handle that stops the recording from elsewhere.
    pub fn stop_handle(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Pause and resume, from anywhere.
    pub fn controls(&self) -> Controls {
        self.controls.clone()
    }

    /// Takes the event stream (once).
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<Event>> {
        self.events.take()
    }

    /// How far the upload keeps pace, now.
    pub fn progress(&self) -> Progress {
        self.progress.progress()
    }

    /// A cheap handle that computes [`Recorder::progress`] after the
    /// recorder itself has been consumed by [`Recorder::finish`].
    pub fn progress_handle(&self) -> ProgressHandle {
        self.progress.clone()
    }

    /// Waits until capture and encoding are done (after [`Recorder::stop`],
    /// or a failure).
    pub async fn finish(self) -> Result<Recorded, RecordError> {
        drop(self.events);
        self.task
            .await
            .map_err(|e| RecordError::Internal(format!("the recorder task failed: {e}")))?
    }
}

struct Run {
    path: PathBuf,
    audio: Option<AudioCapture>,
    capture: spool_capture::Capture,
    encoder: std::thread::JoinHandle<Result<spool_encode::Summary, spool_encode::EncodeError>>,
    encoder_events: mpsc::Receiver<spool_encode::Event>,
    session: Option<Session>,
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
}

impl Run {
    async fn run(mut self) -> Result<Recorded, RecordError> {
        let mut fragments = 0u64;
        let mut append_error = None;
        loop {
            tokio::select! {
                _ = self.stop.cancelled(), if self.shared.capturing.load(Ordering::Acquire) => {
                    self.mark_stopped();
                    tracing::info!("stop requested");
                    let _ = self.events.try_send(Event::Stopped);
                }
                event = self.encoder_events.recv() => {
                    let Some(event) = event else { break };
                    let (offset, len) = match &event {
                        spool_encode::Event::Init { len } => (0, *len),
                        spool_encode::Event::Fragment(f) => (f.offset, f.len),
                    };
                    if let Some(s) = &self.session
                        && let Err(e) = s.append_file(&self.path, offset, len).await
                    {
                        // Without the journal nothing more can be queued:
                        // stop the recording rather than lose track.
                        tracing::error!(error = %e, "queueing a fragment for upload failed; stopping");
                        append_error = Some(e);
                        self.mark_stopped();
                    }
                    self.shared.recorded.store(offset + len, Ordering::Release);
                    if let spool_encode::Event::Fragment(f) = event {
                        fragments += 1;
                        if let Ok(mut ends) = self.shared.fragment_ends.lock() {
                            ends.push(f.offset + f.len);
                        }
                        let _ = self.events.try_send(Event::Fragment {
                            index: f.index,
                            bytes: f.len,
                            duration: f.duration,
                            reason: f.reason,
                        });
                    }
                }
            }
        }
        // The channel closed: the encoder is done (capture stopped, or failed).
        self.mark_stopped();
        let encoder = self.encoder;
        let summary = tokio::task::spawn_blocking(move || encoder.join())
            .await
            .map_err(|e| RecordError::Internal(e.to_string()))?
            .map_err(|_| RecordError::Internal("the encoder thread panicked".into()))?;
        let capture_result = self.capture.join();
        // The encoder has taken the sound up to the end: the sources can go.
        let t = Instant::now();
        let audio_report = self.audio.take().map(AudioCapture::finish);
        tracing::debug!(took = ?t.elapsed(), "sound sources stopped");
        let summary = summary?;
        capture_result?;
        if let Some(e) = append_error {
            return Err(e.into());
        }
        let dropped = self.shared.stats.dropped.load(Ordering::Relaxed)
            + self.shared.stats.missed.load(Ordering::Relaxed);
        let stopped_at = self
            .shared
            .stopped_at
            .lock()
            .ok()
            .and_then(|s| *s)
            .unwrap_or_else(Instant::now);
        Ok(Recorded {
            path: self.path,
            frames: summary.frames,
            fragments,
            bytes: summary.bytes,
            duration: summary.duration,
            dropped,
            paused: self.shared.clock.paused(),
            stopped_at,
            audio: audio_report.map(|r| AudioSummary {
                tracks: 1,
                sources: r.sources,
                duration: summary.audio.unwrap_or_default(),
                av_offset_ms: r.offset_ms,
                max_av_offset_ms: r.max_offset_ms,
            }),
            upload: self.session,
        })
    }

    fn mark_stopped(&self) {
        self.capture.stop();
        if self.shared.capturing.swap(false, Ordering::AcqRel)
            && let Ok(mut s) = self.shared.stopped_at.lock()
        {
            *s = Some(Instant::now());
        }
    }
}

impl Recorded {
    /// Declares the upload's length and waits while it makes progress; gives
    /// up (leaving it in the journal for a later resume) when the confirmed
    /// offset has not moved for `patience` (`None`: never gives up, the
    /// session retries for as long as it runs). `Ok(None)` when recording
    /// locally.
    pub async fn finish_upload(
        &mut self,
        patience: Option<Duration>,
    ) -> Result<Option<Completed>, RecordError> {
        let Some(session) = self.upload.take() else {
            return Ok(None);
        };
        session.finish().await?;
        let mut status = session.status();
        let stopper = session.stop_handle();
        let wait = session.wait();
        tokio::pin!(wait);
        let mut last = status.borrow().confirmed;
        let mut since = Instant::now();
        loop {
            tokio::select! {
                r = &mut wait => return Ok(Some(r?)),
                changed = status.changed() => {
                    if changed.is_ok() {
                        let s = status.borrow().clone();
                        if s.confirmed > last || s.state == State::Complete {
                            last = s.confirmed;
                            since = Instant::now();
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if let Some(patience) = patience.filter(|p| since.elapsed() > *p) {
                stopper.cancel();
                let _ = (&mut wait).await;
                return Err(RecordError::NoProgress(patience.as_secs()));
            }
        }
    }
}

/// SHA-256 of a whole file, hex.
pub fn sha256_file(path: &Path) -> Result<String, RecordError> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).map_err(io(format!("reading {}", path.display())))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io(format!("reading {}", path.display())))?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests;
