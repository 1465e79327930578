//! The recorder's task: it appends every init segment and fragment the
//! encoder announces to the upload, announces them, and, once the encoder's
//! channel closes, joins the encoder, capture and sound into a [`Recorded`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use spool_capture::audio::AudioCapture;
use spool_client::Session;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{AudioSummary, Event, RecordError, Recorded, Shared};

pub(crate) struct Run {
    pub(crate) path: PathBuf,
    pub(crate) audio: Option<AudioCapture>,
    pub(crate) capture: spool_capture::Capture,
    pub(crate) encoder:
        std::thread::JoinHandle<Result<spool_encode::Summary, spool_encode::EncodeError>>,
    pub(crate) encoder_events: mpsc::Receiver<spool_encode::Event>,
    pub(crate) session: Option<Session>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) stop: CancellationToken,
}

impl Run {
    pub(crate) async fn run(mut self) -> Result<Recorded, RecordError> {
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
