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

use serde::Serialize;
use spool_client::{
    Client, ClientError, Completed, Options, Session, SourceRecord, State, Status, Target,
};
use tokio::sync::{mpsc, watch};
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
    },
    /// Stop was asked for; the last fragment is being encoded.
    Stopped,
    /// The upload's own events (progress, reconnecting, stalled, …).
    Upload(spool_client::Event),
}

/// How far the upload keeps pace with the recording.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// "recording" while capturing; then the upload's state word
    /// ("uploading", "reconnecting", "stalled", "complete"); "saved" when
    /// recording locally only.
    pub state: String,
    pub elapsed_ms: u64,
    pub fragments_recorded: u64,
    pub fragments_confirmed: u64,
    /// Bytes of the recording on disk and queued for upload.
    pub recorded: u64,
    /// Bytes the server acknowledged.
    pub confirmed: u64,
    /// recorded − confirmed.
    pub backlog: u64,
    /// Retry attempt while reconnecting.
    pub attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub last_error: Option<String>,
    /// Capture ticks lost (encoder behind, or slow grabs).
    pub dropped: u64,
    /// The share link from Start (the server's page plays it live).
    pub live_url: Option<String>,
}

struct Shared {
    started: Instant,
    /// Upload offsets where each fragment ends (the init segment is not one).
    fragment_ends: Mutex<Vec<u64>>,
    recorded: std::sync::atomic::AtomicU64,
    capturing: std::sync::atomic::AtomicBool,
    stats: Arc<spool_capture::CaptureStats>,
    stopped_at: Mutex<Option<Instant>>,
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
    /// When Stop was asked for (or the capture ended).
    pub stopped_at: Instant,
    /// The upload, still running: call [`Recorded::finish_upload`].
    pub upload: Option<Session>,
}

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

        let (capture, frames) =
            spool_capture::start(source, settings.fps, (settings.fps as usize / 2).max(4))?;
        let config = spool_encode::Config {
            path: path.clone(),
            width,
            height,
            max_height: settings.max_height,
            fps: settings.fps,
            fragment: settings.fragment,
            preset: settings.preset.clone(),
            crf: settings.crf,
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
            started: Instant::now(),
            fragment_ends: Mutex::new(Vec::new()),
            recorded: Default::default(),
            capturing: std::sync::atomic::AtomicBool::new(true),
            stats: capture.stats.clone(),
            stopped_at: Mutex::new(None),
        });
        let stop = CancellationToken::new();
        let run = Run {
            path: path.clone(),
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

/// Computes [`Progress`] for a recording, during and after it.
#[derive(Clone)]
pub struct ProgressHandle {
    shared: Arc<Shared>,
    upload_status: Option<watch::Receiver<Status>>,
}

impl ProgressHandle {
    pub fn progress(&self) -> Progress {
        progress_of(
            &self.shared,
            self.upload_status.as_ref().map(|s| s.borrow().clone()),
        )
    }
}

fn progress_of(shared: &Shared, upload: Option<Status>) -> Progress {
    let recorded = shared.recorded.load(Ordering::Acquire);
    let capturing = shared.capturing.load(Ordering::Acquire);
    let confirmed = upload.as_ref().map_or(0, |s| s.confirmed);
    // Fragment ends only grow: count them without copying.
    let (fragments_recorded, fragments_confirmed) = shared
        .fragment_ends
        .lock()
        .map(|e| {
            (
                e.len() as u64,
                e.partition_point(|&end| end <= confirmed) as u64,
            )
        })
        .unwrap_or_default();
    let elapsed = match shared.stopped_at.lock().ok().and_then(|s| *s) {
        Some(at) => at.duration_since(shared.started),
        None => shared.started.elapsed(),
    };
    let dropped =
        shared.stats.dropped.load(Ordering::Relaxed) + shared.stats.missed.load(Ordering::Relaxed);
    let mut p = Progress {
        state: if capturing {
            "recording".into()
        } else {
            "saved".into()
        },
        elapsed_ms: elapsed.as_millis() as u64,
        fragments_recorded,
        recorded,
        dropped,
        ..Progress::default()
    };
    if let Some(s) = upload {
        p.confirmed = s.confirmed;
        p.fragments_confirmed = fragments_confirmed;
        p.backlog = recorded.saturating_sub(s.confirmed);
        p.attempt = s.attempt;
        p.next_retry_in_ms = s.next_retry_in_ms;
        p.last_error = s.last_error.clone();
        p.live_url = s.share_url.clone();
        // While capturing, a retrying or stalled upload is what the user must
        // see; otherwise "recording" says it all.
        p.state = match (capturing, s.state) {
            (true, State::Reconnecting | State::Stalled) => state_word(s.state).into(),
            (true, _) => "recording".into(),
            (false, st) => state_word(st).into(),
        };
    }
    p
}

/// The word a UI shows for an upload state.
pub fn state_word(state: State) -> &'static str {
    match state {
        State::Uploading => "uploading",
        State::Reconnecting => "reconnecting",
        State::Stalled => "stalled",
        State::Complete => "complete",
        State::Failed => "failed",
    }
}

struct Run {
    path: PathBuf,
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
            stopped_at,
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
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings {
        Settings {
            source: spool_capture::SourceSpec::parse("synthetic:320x240", None).unwrap(),
            fps: 15,
            fragment: Duration::from_millis(500),
            max_height: None,
            preset: spool_encode::Config::DEFAULT_PRESET.into(),
            crf: 30,
            output_dir: dir.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn records_locally_and_counts_fragments() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::start(settings(dir.path()), None).await.unwrap();
        let mut events = rec.take_events().unwrap();
        let progress = rec.progress_handle();
        assert_eq!(rec.progress().state, "recording");
        tokio::time::sleep(Duration::from_millis(1600)).await;
        rec.stop();
        let mut recorded = rec.finish().await.unwrap();
        assert!(recorded.fragments >= 3, "{} fragments", recorded.fragments);
        assert_eq!(
            std::fs::metadata(&recorded.path).unwrap().len(),
            recorded.bytes
        );
        let p = progress.progress();
        assert_eq!(p.state, "saved");
        assert_eq!(p.fragments_recorded, recorded.fragments);
        assert_eq!(p.recorded, recorded.bytes);
        assert_eq!(p.confirmed, 0);
        assert!(recorded.finish_upload(None).await.unwrap().is_none());
        let mut fragments = 0;
        let mut stopped = false;
        while let Ok(e) = events.try_recv() {
            match e {
                Event::Fragment { .. } => fragments += 1,
                Event::Stopped => stopped = true,
                Event::Upload(_) => panic!("no upload"),
            }
        }
        assert_eq!(fragments, recorded.fragments);
        assert!(stopped);
    }

    #[test]
    fn rejects_bad_settings() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.fragment = Duration::from_secs(20);
        assert!(matches!(s.validate(), Err(RecordError::Invalid(_))));
        let mut s = settings(dir.path());
        s.fps = 0;
        assert!(s.validate().is_err());
        let mut s = settings(dir.path());
        s.crf = 60;
        assert!(s.validate().is_err());
    }
}
