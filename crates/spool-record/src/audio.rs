//! The sound of a recording, from the recorder's side: the sources are
//! started on the recording's clock, their changes of state become
//! [`Event::Audio`] and the progress's source states, and the end is summed
//! up in an [`AudioSummary`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spool_capture::audio::AudioCapture;
use tokio::sync::mpsc;

use crate::{Event, RecordError, io};

/// What a recording's sound track came to.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSummary {
    /// Tracks in the file (the sources are mixed into one).
    pub tracks: u32,
    /// Sources mixed into it.
    pub sources: usize,
    pub duration: Duration,
    /// The offset the recorder measured at the end between where the sound
    /// was placed and where its timestamps put it (ms, positive: sound later).
    pub av_offset_ms: f64,
    /// The largest such offset during the recording.
    pub max_av_offset_ms: f64,
}

pub(crate) struct AudioShared {
    pub(crate) mixer: Arc<spool_capture::audio::Mixer>,
    pub(crate) states: AudioStates,
}

type AudioStates = Arc<
    Mutex<
        Vec<(
            spool_capture::audio::AudioKind,
            spool_capture::audio::AudioState,
        )>,
    >,
>;

/// Starts the sound sources on the recording's clock; their changes of
/// state become [`Event::Audio`] and the progress's source states.
pub(crate) fn start_audio(
    prepared: spool_capture::audio::Prepared,
    clock: Arc<spool_capture::Clock>,
    events: mpsc::Sender<Event>,
) -> Result<(AudioCapture, AudioStates), RecordError> {
    let (tx, rx) = std::sync::mpsc::channel::<spool_capture::audio::AudioEvent>();
    let capture = prepared
        .start(clock, tx)
        .map_err(io("starting the sound sources"))?;
    let states: AudioStates = Default::default();
    let s = states.clone();
    std::thread::Builder::new()
        .name("spool-audio-events".into())
        .spawn(move || {
            for e in rx {
                if let Ok(mut st) = s.lock() {
                    match st.iter_mut().find(|(k, _)| *k == e.kind) {
                        Some(entry) => entry.1 = e.state,
                        None => st.push((e.kind, e.state)),
                    }
                }
                let _ = events.blocking_send(Event::Audio(e));
            }
        })
        .map_err(io("starting the sound events bridge"))?;
    Ok((capture, states))
}
