//! The [`Recorder`]: [`Recorder::start`] opens the source, creates the
//! upload and wires capture → encoder thread → the [`Run`](crate::run::Run)
//! task that appends each fragment; the handle then stops, pauses, reports
//! progress and finally hands over the [`Recorded`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spool_client::{Session, SourceRecord};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::run::Run;
use crate::{
    AudioShared, Controls, Progress, ProgressHandle, RecordError, Recorded, Settings, Upload, io,
    start_audio,
};

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
        /// The CMAF chunks it was sent in.
        chunks: u32,
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
    /// The encoder's bitrate cap changed to keep pace with the uplink.
    Bitrate {
        kbps: u32,
        reason: crate::BitrateReason,
    },
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

/// Whether the encoder will cut fragments into smaller chunks.
fn chunked(settings: &Settings) -> bool {
    settings.chunk.is_some_and(|c| c < settings.fragment)
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
            // Unchunked, the fragmenter starts every moof with a keyframe;
            // saying so lets the server publish each fragment live as soon
            // as it is in. Chunked, a fragment is a keyframe-led group of
            // moofs, which the server closes when the next keyframe-led one
            // arrives (one chunk later); "chunks" says so.
            if !options.metadata.iter().any(|(k, _)| k == "fragments") {
                let promise = if chunked(&settings) {
                    "chunks"
                } else {
                    "keyframe"
                };
                options.metadata.push(("fragments".into(), promise.into()));
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
        let mut config = spool_encode::Config {
            path: path.clone(),
            width,
            height,
            max_height: settings.max_height,
            fps: settings.fps,
            fragment: settings.fragment,
            preset: settings.preset.clone(),
            crf: settings.crf,
            audio: audio.as_ref().map(|(c, _)| c.mixer()),
            chunk: settings.chunk,
            rate: None,
        };
        // Only an upload has an uplink to keep pace with.
        let adapter = (settings.adapt_bitrate && session.is_some()).then(|| {
            let (w, h) = config.output_size();
            let cap = Arc::new(spool_encode::RateCap::new(
                spool_encode::RateCap::ceiling_for(w, h, settings.fps),
            ));
            config.rate = Some(cap.clone());
            crate::bitrate::Adapter::new(cap)
        });
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
            adapter,
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
