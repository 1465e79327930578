//! The recorder's task: it appends the init segment and every chunk the
//! encoder announces to the upload, announces each finished fragment, feeds
//! the bitrate [`Adapter`] the upload's progress four times a second, and,
//! once the encoder's channel closes, joins the encoder, capture and sound
//! into a [`Recorded`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use spool_capture::audio::AudioCapture;
use spool_client::Session;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bitrate::Adapter;
use crate::{AudioSummary, Event, RecordError, Recorded, Shared};

/// How often the adapter looks at the upload.
const ADAPT_EVERY: Duration = Duration::from_millis(250);

pub(crate) struct Run {
    pub(crate) path: PathBuf,
    pub(crate) audio: Option<AudioCapture>,
    pub(crate) capture: spool_capture::Capture,
    pub(crate) encoder:
        std::thread::JoinHandle<Result<spool_encode::Summary, spool_encode::EncodeError>>,
    pub(crate) encoder_events: mpsc::Receiver<spool_encode::Event>,
    pub(crate) session: Option<Session>,
    pub(crate) adapter: Option<Adapter>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) stop: CancellationToken,
}

impl Run {
    pub(crate) async fn run(mut self) -> Result<Recorded, RecordError> {
        let mut fragments = 0u64;
        let mut append_error = None;
        let mut adapt = tokio::time::interval(ADAPT_EVERY);
        adapt.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = adapt.tick(), if self.adapter.is_some()
                    && self.shared.capturing.load(Ordering::Acquire) => self.adapt(),
                _ = self.stop.cancelled(), if self.shared.capturing.load(Ordering::Acquire) => {
                    self.mark_stopped();
                    tracing::info!("stop requested");
                    let _ = self.events.try_send(Event::Stopped);
                }
                event = self.encoder_events.recv() => {
                    let Some(event) = event else { break };
                    let (offset, len) = match &event {
                        spool_encode::Event::Init { len } => (0, *len),
                        spool_encode::Event::Chunk(c) => (c.offset, c.len),
                        // Its chunks are already queued.
                        spool_encode::Event::Fragment(_) => (0, 0),
                    };
                    if len > 0
                        && let Some(s) = &self.session
                        && let Err(e) = s.append_file(&self.path, offset, len).await
                    {
                        // Without the journal nothing more can be queued:
                        // stop the recording rather than lose track.
                        tracing::error!(error = %e, "queueing a fragment for upload failed; stopping");
                        append_error = Some(e);
                        self.mark_stopped();
                    }
                    if len > 0 {
                        self.shared.recorded.store(offset + len, Ordering::Release);
                    }
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
                            chunks: f.chunks,
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

    /// One look at the upload for the bitrate adapter.
    fn adapt(&mut self) {
        let (Some(adapter), Some(session)) = (self.adapter.as_mut(), &self.session) else {
            return;
        };
        let (sent, confirmed, online) = {
            let status = session.status();
            let s = status.borrow();
            (
                s.sent,
                s.confirmed,
                s.state == spool_client::State::Uploading,
            )
        };
        let produced = self.shared.recorded.load(Ordering::Acquire);
        if let Some((kbps, reason)) =
            adapter.observe(Instant::now(), produced, sent, confirmed, online)
        {
            tracing::info!(kbps, reason = reason.as_str(), "bitrate cap changed");
            let _ = self.events.try_send(Event::Bitrate { kbps, reason });
        }
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
