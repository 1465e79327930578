//! A finished recording: [`Recorded`] and the end of its upload
//! ([`Recorded::finish_upload`]), and [`sha256_file`] to hash the file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spool_client::{Completed, Session, State};

use crate::{AudioSummary, RecordError, io};

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
