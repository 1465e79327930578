//! Spool's recording pipeline, shared by `spool record` and the desktop app:
//! a [`Recorder`] captures a source (spool-capture), encodes it into one
//! fragmented MP4 (spool-encode) and, when given an [`Upload`], appends the
//! init segment and every finished CMAF chunk of every fragment to a
//! deferred-length upload (spool-client) while capture goes on, lowering
//! the bitrate while the uplink falls behind ([`bitrate`]). Stopping encodes
//! the frames still queued into the last chunk; [`Recorded::finish_upload`] then declares
//! the length and waits while the upload makes progress. The local file is
//! always kept, and [`Recorder::progress`] tells how far the upload keeps
//! pace (fragments and bytes recorded against acknowledged, the backlog,
//! the upload's state).

mod audio;
pub mod bitrate;
pub mod codes;
mod controls;
mod error;
mod progress;
mod recorded;
mod recorder;
mod run;
mod settings;

pub use audio::AudioSummary;
pub(crate) use audio::{AudioShared, start_audio};
pub use bitrate::BitrateReason;
pub use controls::{Controls, countdown};
pub use error::RecordError;
pub(crate) use error::io;
pub use progress::{AudioProgress, Progress, ProgressHandle, state_word};
pub use recorded::{Recorded, sha256_file};
pub(crate) use recorder::Shared;
pub use recorder::{Event, Recorder};
pub use settings::{Settings, Upload};

#[cfg(test)]
mod tests;
