//! The built-in processor: one more consumer of `video.asset.uploaded`,
//! reading its queue ([`crate::jobs`]) and turning a complete upload into
//! what the player needs, off the async runtime, at most `--process-jobs`
//! at a time. A fragmented MP4 in codecs browsers play (every Spool
//! recording) is used as it is — its index was built while it uploaded, so
//! only the poster and the index file remain: ready within a second of the
//! last byte. Anything else is probed, remuxed (or transcoded to H.264) into
//! a fragmented MP4 beside it, and indexed. Outputs are written atomically
//! ([`crate::outputs`]) and the state change is idempotent, so a job killed
//! half-way runs again after a restart and ends the same; transient
//! failures are retried with backoff, permanent ones (not a video) error the
//! asset with `ERR_UNSUPPORTED_MEDIA` and keep its original downloadable.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use spool_media::MediaError;
use spool_media::index::{self, Boundary};
use spool_proto::ErrorCode;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::db::{Playable, now_ms};
use crate::jobs::{Job, MAX_ATTEMPTS};
use crate::outputs::{Index, Outputs, POSTER, PROCESSED, Source};

/// How long a claim lasts without renewal; renewed every third of it.
const LEASE: Duration = Duration::from_secs(60);
/// The longest nap with nothing due.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// The same on a database other nodes share, whose work (and whose
/// deaths, which free their jobs) no wake-up announces here.
pub(crate) const SHARED_POLL: Duration = Duration::from_secs(2);
/// Posters are at most this wide.
const POSTER_WIDTH: u32 = 1280;

/// Why a job failed.
#[derive(Debug)]
enum Failure {
    /// Retrying cannot help.
    Permanent(ErrorCode, String),
    Transient(String),
}

impl From<MediaError> for Failure {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Unsupported(m) => Failure::Permanent(ErrorCode::UnsupportedMedia, m),
            MediaError::Malformed(m) => Failure::Permanent(
                ErrorCode::UnsupportedMedia,
                format!("the video's structure is broken: {m}"),
            ),
            other => Failure::Transient(other.to_string()),
        }
    }
}

/// The wait before attempt `attempt + 1`: 2 s, 4 s, 8 s, … capped at 5 min.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.clamp(1, 8))).min(Duration::from_secs(300))
}

/// Whether the player can use the codecs of an index as they are.
fn playable_codecs(codecs: &str) -> bool {
    let mut parts = codecs.split(',').map(str::trim);
    let video_ok = parts.next().is_some_and(|v| {
        ["avc1", "avc3", "vp09", "av01"]
            .iter()
            .any(|p| v.starts_with(p))
    });
    video_ok && parts.all(|a| a.starts_with("mp4a.40.") || a == "opus" || a == "Opus")
}

fn candidates(duration_ms: u64) -> Vec<u64> {
    [0.1, 0.3, 0.5]
        .iter()
        .map(|f| (duration_ms as f64 * f) as u64)
        .collect()
}

/// The worker loop; returns when the server shuts down. Jobs in flight at
/// shutdown are abandoned with their lease (startup releases it).
pub async fn run(app: App) {
    let worker = app.node.clone();
    let permits = Arc::new(Semaphore::new(app.config.process_jobs.max(1)));
    let mine = app.db.is_shared().then(|| worker.clone());
    // Other nodes' jobs finish (or run out) without this node hearing of it.
    let idle_poll = if app.db.is_shared() {
        SHARED_POLL
    } else {
        IDLE_POLL
    };
    match app
        .db
        .call(move |ops| ops.release_job_leases(mine.as_deref()))
        .await
    {
        Ok(n) if n > 0 => tracing::info!(
            jobs = n,
            "processing jobs interrupted by a restart run again"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "releasing processing leases"),
    }
    loop {
        let permit = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let w = worker.clone();
        let claimed = app
            .db
            .call(move |ops| {
                let job = ops.claim_job(now_ms(), LEASE.as_millis() as i64, &w)?;
                let next = if job.is_none() {
                    ops.next_job_at()?
                } else {
                    None
                };
                Ok((job, next))
            })
            .await;
        match claimed {
            Ok((Some(job), _)) => {
                let app = app.clone();
                let worker = worker.clone();
                tokio::spawn(async move {
                    run_job(&app, job, &worker).await;
                    drop(permit);
                    app.process_wake.notify_one();
                });
            }
            Ok((None, next)) => {
                drop(permit);
                let wait = next
                    .map(|t| Duration::from_millis((t - now_ms()).max(0) as u64))
                    .unwrap_or(idle_poll)
                    .min(idle_poll);
                tokio::select! {
                    _ = app.shutdown.cancelled() => return,
                    _ = app.process_wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => {
                drop(permit);
                tracing::error!(error = %e, "claiming a processing job");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run_job(app: &App, job: Job, worker: &str) {
    let started = Instant::now();
    let asset_id = job.asset_id.clone();
    // Keeps the claim while the work runs.
    let renew = {
        let (app, aid, w) = (app.clone(), asset_id.clone(), worker.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let until = now_ms() + LEASE.as_millis() as i64;
                let (aid2, w2) = (aid.clone(), w.clone());
                if !matches!(
                    app.db
                        .call(move |ops| ops.renew_job(&aid2, &w2, until))
                        .await,
                    Ok(true)
                ) {
                    return;
                }
            }
        })
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let result = {
        let (app, aid, cancel) = (app.clone(), asset_id.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || work(&app, &aid, &cancel))
            .await
            .unwrap_or_else(|e| {
                Err(Failure::Transient(format!(
                    "the processing task failed: {e}"
                )))
            })
    };
    renew.abort();
    crate::fault::point("processed-before-ready");
    let aid = asset_id.clone();
    let now = now_ms();
    let attempt = job.attempt;
    let retried = matches!(&result, Err(Failure::Transient(_)) if attempt < MAX_ATTEMPTS);
    let outcome = app
        .db
        .call(move |ops| match &result {
            Ok(p) => {
                let ready = ops.mark_ready(&aid, *p, now)?;
                ops.finish_job(&aid, now)?;
                Ok((ready, None))
            }
            Err(Failure::Permanent(code, msg)) => {
                ops.mark_processing_errored(&aid, *code, msg, now)?;
                ops.finish_job(&aid, now)?;
                Ok((false, Some(format!("{code}: {msg}"))))
            }
            Err(Failure::Transient(msg)) if attempt >= MAX_ATTEMPTS => {
                let why = format!("processing failed {attempt} times; the last error: {msg}");
                ops.mark_processing_errored(&aid, ErrorCode::ProcessingFailed, &why, now)?;
                ops.finish_job(&aid, now)?;
                Ok((false, Some(why)))
            }
            Err(Failure::Transient(msg)) => {
                let at = now + backoff(attempt).as_millis() as i64;
                ops.retry_job(&aid, at, msg)?;
                Ok((false, Some(format!("will retry: {msg}"))))
            }
        })
        .await;
    let ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok((true, _)) => tracing::info!(asset = %asset_id, ms, attempt, "asset ready"),
        Ok((false, Some(why))) => {
            tracing::warn!(asset = %asset_id, ms, attempt, error = %why, "processing did not finish")
        }
        Ok((false, None)) => {
            // Deleted (or finished by another run) meanwhile: what this run
            // wrote is not wanted.
            let aid = asset_id.clone();
            let gone = app
                .db
                .call(move |ops| {
                    Ok(ops
                        .asset(&aid)?
                        .is_none_or(|a| a.status == crate::db::AssetStatus::Deleted))
                })
                .await
                .unwrap_or(false);
            if gone {
                let _ = Outputs::new(&app.config.data_dir, &asset_id).remove();
            }
        }
        Err(e) => {
            tracing::error!(asset = %asset_id, error = %e, "recording the end of a processing job")
        }
    }
    if !retried {
        // Processed (or given up): the local copy a bucket-backed store
        // made for it is not needed any more.
        let aid = asset_id.clone();
        if let Ok(Some(a)) = app.db.call(move |ops| ops.asset(&aid)).await {
            app.store.release_local_copy(&a.upload_id);
        }
    }
    app.events_enqueued();
}

/// Runs `f` on the database from a blocking thread.
fn db_blocking<R: Send + 'static>(
    app: &App,
    f: impl FnOnce(&mut crate::db::Ops<'_>) -> Result<R, crate::db::DbError> + Send + 'static,
) -> Result<R, Failure> {
    tokio::runtime::Handle::current()
        .block_on(app.db.call(f))
        .map_err(|e| Failure::Transient(e.to_string()))
}

/// The job itself, on a blocking thread.
fn work(app: &App, asset_id: &str, cancel: &AtomicBool) -> Result<Playable, Failure> {
    let aid = asset_id.to_owned();
    let Some((asset, upload)) = db_blocking(app, move |ops| {
        let Some(asset) = ops.asset(&aid)? else {
            return Ok(None);
        };
        let upload = ops.upload(&asset.upload_id)?;
        Ok(upload.map(|u| (asset, u)))
    })?
    else {
        return Err(Failure::Permanent(
            ErrorCode::AssetNotFound,
            "the asset is gone".into(),
        ));
    };
    let (store, uid, upto) = (app.store.clone(), upload.id.clone(), upload.offset);
    let path = tokio::runtime::Handle::current()
        .block_on(async move { store.local_copy(&uid, upto).await })
        .map_err(|e| Failure::Transient(e.to_string()))?
        .ok_or_else(|| Failure::Transient("the store keeps no local files to process".into()))?;
    let outputs = Outputs::new(&app.config.data_dir, asset_id);
    let len = upload.offset;
    // A fragmented MP4 in codecs the player takes is used as it is.
    let fmp4 = std::fs::File::open(&path)
        .map_err(|e| Failure::Transient(e.to_string()))
        .and_then(|mut f| {
            index::index_all(&mut f, len, crate::live::boundary(&asset.metadata))
                .map_err(Failure::from)
        });
    let index = match fmp4 {
        Ok(ix)
            if !ix.segments().is_empty()
                && ix.init().is_some_and(|i| playable_codecs(&i.codecs)) =>
        {
            let init = ix.init().cloned().unwrap_or_else(|| unreachable!());
            Index {
                source: Source::Original,
                object_len: len,
                duration_ms: ix.duration_ms(),
                init,
                segments: ix.segments().to_vec(),
            }
        }
        _ => normalize(app, asset_id, &path, &outputs, cancel)?,
    };
    let object = match index.source {
        Source::Original => path.clone(),
        Source::Processed => outputs.path(PROCESSED),
    };
    match spool_media::poster::poster_from_file(
        &object,
        &candidates(index.duration_ms),
        POSTER_WIDTH,
    ) {
        Ok(p) => {
            outputs
                .write(POSTER, &p.jpeg)
                .map_err(|e| Failure::Transient(e.to_string()))?;
            let aid = asset_id.to_owned();
            db_blocking(app, move |ops| ops.set_poster(&aid, true))?;
        }
        Err(e) => tracing::warn!(asset = %asset_id, error = %e, "no poster"),
    }
    outputs
        .save_index(&index)
        .map_err(|e| Failure::Transient(e.to_string()))?;
    crate::fault::point("outputs-before-ready");
    Ok(Playable {
        duration_ms: index.duration_ms,
        width: index.init.width,
        height: index.init.height,
        has_audio: index.init.has_audio(),
    })
}

/// Probes the upload and remuxes or transcodes it into `video.mp4`.
fn normalize(
    app: &App,
    asset_id: &str,
    path: &std::path::Path,
    outputs: &Outputs,
    cancel: &AtomicBool,
) -> Result<Index, Failure> {
    spool_media::init_ffmpeg()?;
    let probe = spool_media::probe::probe(path)?;
    let tmp = outputs
        .temp(PROCESSED)
        .map_err(|e| Failure::Transient(e.to_string()))?;
    let mut last = Instant::now();
    let mut report = |p: f64| {
        if last.elapsed() >= Duration::from_millis(500) {
            last = Instant::now();
            let aid = asset_id.to_owned();
            if let Err(e) = db_blocking(app, move |ops| ops.set_progress(&aid, p * 0.95)) {
                tracing::warn!(asset = %asset_id, error = ?e, "recording processing progress failed");
            }
        }
    };
    let plan = spool_media::normalize::normalize(path, &tmp, &probe, &mut report, cancel)?;
    outputs
        .commit(PROCESSED)
        .map_err(|e| Failure::Transient(e.to_string()))?;
    let out = outputs.path(PROCESSED);
    let len = std::fs::metadata(&out)
        .map_err(|e| Failure::Transient(e.to_string()))?
        .len();
    let mut f = std::fs::File::open(&out).map_err(|e| Failure::Transient(e.to_string()))?;
    let ix = index::index_all(&mut f, len, Boundary::NextKeyframe)
        .map_err(|e| Failure::Transient(format!("indexing the processed video: {e}")))?;
    let init = ix
        .init()
        .cloned()
        .ok_or_else(|| Failure::Transient("the processed video has no init segment".into()))?;
    tracing::info!(asset = %asset_id, ?plan, format = %probe.format, video = %probe.video.codec, "processed");
    Ok(Index {
        source: Source::Processed,
        object_len: len,
        duration_ms: ix.duration_ms(),
        init,
        segments: ix.segments().to_vec(),
    })
}

/// Makes a poster from what has been uploaded so far (the page's preview
/// while the recording is live), in the background; the processor replaces
/// it with one picked over the whole video.
pub fn provisional_poster(app: &App, asset_id: &str, upload_id: &str, upto: u64, duration_ms: u64) {
    let (app, aid, uid) = (app.clone(), asset_id.to_owned(), upload_id.to_owned());
    tokio::spawn(async move {
        let Ok(Some(path)) = app.store.local_copy(&uid, upto).await else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || {
        let outputs = Outputs::new(&app.config.data_dir, &aid);
        let at = if duration_ms < 4_000 {
            vec![0]
        } else {
            candidates(duration_ms)
        };
        let poster = spool_media::init_ffmpeg()
            .and_then(|()| spool_media::poster::poster_from_file(&path, &at, POSTER_WIDTH));
        // The processor's poster, picked over the whole video, wins.
        let aid3 = aid.clone();
        let still_live = db_blocking(&app, move |ops| {
            Ok(ops.asset(&aid3)?.is_some_and(|a| {
                matches!(
                    a.status,
                    crate::db::AssetStatus::Waiting | crate::db::AssetStatus::Uploading
                )
            }))
        })
        .unwrap_or(false);
        match poster {
            Ok(p) if still_live && outputs.write(POSTER, &p.jpeg).is_ok() => {
                let aid2 = aid.clone();
                if let Err(e) = db_blocking(&app, move |ops| ops.set_poster(&aid2, true)) {
                    tracing::warn!(asset = %aid, error = ?e, "recording the provisional poster failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(asset = %aid, error = %e, "no provisional poster yet"),
        }
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_the_player_takes() {
        assert!(playable_codecs("avc1.64001f"));
        assert!(playable_codecs("avc1.64001f,mp4a.40.2"));
        assert!(playable_codecs("vp09.00.31.08,opus"));
        assert!(playable_codecs("av01.0.08M.08"));
        assert!(!playable_codecs("hvc1.1.6.L93.B0"));
        assert!(!playable_codecs("avc1.64001f,mp4a.6b"));
        assert!(!playable_codecs(""));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(20), Duration::from_secs(256));
    }
}
