//! The free-space reserve: the server keeps at least `--min-free-space` bytes
//! free on the volume holding its uploads, so that a filling disk answers 507
//! `ERR_INSUFFICIENT_STORAGE` (nothing of the chunk stored, retry later)
//! before writes, the database and the rest of the machine start failing.
//! The store reports its volume ([`Store::space`]; an object store answers
//! "unlimited"). [`Reserve`] asks it afresh before a request's body is read;
//! while a body streams it is checked every [`CHECK_EVERY`] bytes against an
//! answer at most [`PROBE_EVERY`] old, less the bytes uploads received since,
//! so the streaming check costs no system call most of the time. A write that
//! still fails for lack of space (ENOSPC, EDQUOT) is answered the same way by
//! [`store_error`]. A refused body is read to its end and dropped
//! ([`discard`]), so that the client hears the 507.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use spool_proto::ErrorCode;
use spool_proto::tus;

use crate::error::ApiError;
use crate::store::{Store, StoreError};

/// What a volume has, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
    /// The volume's size.
    pub total: u64,
}

/// The default reserve caps at 1 GiB...
pub const DEFAULT_RESERVE_CAP: u64 = 1 << 30;
/// ...or this percentage of the volume, whichever is smaller.
pub const DEFAULT_RESERVE_PERCENT: u64 = 5;
/// How stale the store's answer may get before it is asked again.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);
/// A streaming body is checked against the reserve each time this many more
/// bytes have arrived (also the slack a body of unknown length is checked
/// for: the next window must fit).
pub const CHECK_EVERY: u64 = 1024 * 1024;
/// The `Retry-After` of a 507: a floor for well-behaved clients, since a
/// full disk does not clear within seconds.
pub const RETRY_AFTER_SECS: u64 = 10;

/// The reserve used when none is configured: 1 GiB or 5 % of a volume of
/// `total` bytes, whichever is smaller.
pub fn default_reserve(total: u64) -> u64 {
    let pct = (u128::from(total) * u128::from(DEFAULT_RESERVE_PERCENT) / 100) as u64;
    pct.min(DEFAULT_RESERVE_CAP)
}

/// `statvfs` of the filesystem holding `path`: `f_bavail` (what a non-root
/// writer may use, below any root-only reserve) and `f_blocks`, in bytes.
#[cfg(unix)]
pub fn statvfs(path: &Path) -> std::io::Result<Space> {
    let s = rustix::fs::statvfs(path)?;
    // The fields are u64 on Linux but narrower elsewhere (macOS).
    #[allow(clippy::unnecessary_cast)]
    let (bavail, blocks, frsize) = (s.f_bavail as u64, s.f_blocks as u64, s.f_frsize as u64);
    Ok(Space {
        available: bavail.saturating_mul(frsize),
        total: blocks.saturating_mul(frsize),
    })
}

/// No portable probe here: the reserve is not enforced, and a write that
/// fails for lack of space still answers 507.
#[cfg(not(unix))]
pub fn statvfs(_path: &Path) -> std::io::Result<Space> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "free-space probe not available on this platform",
    ))
}

/// The last answer of the store, and what was received since.
struct Probe {
    at: Instant,
    available: u64,
    received_since: u64,
}

/// Decides whether more bytes may be stored without crossing the reserve.
pub struct Reserve {
    store: Arc<dyn Store>,
    /// Bytes to keep free; `None` when the store has no limit to keep.
    min_free: Option<u64>,
    last: Mutex<Option<Probe>>,
}

impl Reserve {
    /// Asks the store once and fixes the reserve: `configured`, or the
    /// default for the volume's size. A store that cannot say how much space
    /// it has (an error) keeps no reserve, with a warning: uploads are not
    /// refused on a guess. A configured 0 keeps none and never asks.
    pub async fn open(store: Arc<dyn Store>, configured: Option<u64>) -> Reserve {
        if configured == Some(0) {
            tracing::info!("no free-space reserve (--min-free-space 0)");
            return Reserve {
                store,
                min_free: None,
                last: Mutex::new(None),
            };
        }
        let (min_free, first) = match store.space().await {
            Ok(Some(space)) => {
                let min_free = configured.unwrap_or_else(|| default_reserve(space.total));
                tracing::info!(
                    reserve = min_free,
                    available = space.available,
                    volume = space.total,
                    "free-space reserve"
                );
                let probe = Probe {
                    at: Instant::now(),
                    available: space.available,
                    received_since: 0,
                };
                (Some(min_free), Some(probe))
            }
            Ok(None) => (None, None),
            Err(e) => {
                tracing::warn!(error = %e, "cannot probe free space; no reserve is kept");
                (None, None)
            }
        };
        Reserve {
            store,
            min_free,
            last: Mutex::new(first),
        }
    }

    /// The bytes kept free, if a reserve applies.
    pub fn min_free(&self) -> Option<u64> {
        self.min_free
    }

    /// Refuses (507; for a PATCH the upload's `offset`, unchanged) when
    /// storing `bytes` more would leave less than the reserve free, asking
    /// the store afresh: for a request about to be read or copied. Storing
    /// nothing never crosses the reserve.
    pub async fn check(&self, bytes: u64, offset: Option<u64>) -> Result<(), ApiError> {
        self.decide(bytes, offset, true).await
    }

    /// The same while a body streams: `received` more bytes arrived since
    /// this body's last check (they count against the last answer until the
    /// store is asked again, at most every [`PROBE_EVERY`]); `bytes` are still
    /// to come.
    pub async fn check_streaming(
        &self,
        received: u64,
        bytes: u64,
        offset: Option<u64>,
    ) -> Result<(), ApiError> {
        if let Ok(mut last) = self.last.lock()
            && let Some(p) = last.as_mut()
        {
            p.received_since = p.received_since.saturating_add(received);
        }
        self.decide(bytes, offset, false).await
    }

    async fn decide(&self, bytes: u64, offset: Option<u64>, fresh: bool) -> Result<(), ApiError> {
        let Some(min_free) = self.min_free else {
            return Ok(());
        };
        if bytes == 0 {
            return Ok(());
        }
        let Some(available) = self.estimate(fresh).await else {
            return Ok(());
        };
        if available.saturating_sub(bytes) >= min_free && available >= bytes {
            return Ok(());
        }
        tracing::warn!(
            available,
            reserve = min_free,
            chunk = bytes,
            "refusing a chunk: it would cross the free-space reserve"
        );
        Err(insufficient(offset))
    }

    /// The space available now: the store's answer (`fresh`), or one at
    /// most [`PROBE_EVERY`] old less what arrived since.
    async fn estimate(&self, fresh: bool) -> Option<u64> {
        let recent = |p: &Probe| !fresh && p.at.elapsed() < PROBE_EVERY;
        if let Ok(last) = self.last.lock()
            && let Some(p) = last.as_ref().filter(|p| recent(p))
        {
            return Some(p.available.saturating_sub(p.received_since));
        }
        match self.store.space().await {
            Ok(Some(space)) => {
                if let Ok(mut last) = self.last.lock() {
                    *last = Some(Probe {
                        at: Instant::now(),
                        available: space.available,
                        received_since: 0,
                    });
                }
                Some(space.available)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot probe free space; not refusing");
                None
            }
        }
    }
}

/// The 507 answer: nothing of the chunk was stored, the upload's offset (for
/// a PATCH) is still `offset`.
pub fn insufficient(offset: Option<u64>) -> ApiError {
    let e = ApiError::new(
        ErrorCode::InsufficientStorage,
        "the server is keeping its free-space reserve; nothing of this chunk was stored; retry later",
    )
    .with_header("retry-after", RETRY_AFTER_SECS);
    match offset {
        Some(o) => e.with_header(tus::UPLOAD_OFFSET, o),
        None => e,
    }
}

/// The most of a refused body that [`discard`] reads: a client's largest
/// chunk.
pub const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;

/// Reads the rest of a refused request body and drops it, until it ends,
/// [`DISCARD_LIMIT`] bytes were read, no byte came for `idle`, or `stop`
/// resolves. Why: hyper closes a connection whose request body was left
/// unread, and a client still sending that body then sees a broken pipe
/// (RST) instead of the answer, so a 507 would look like a network drop.
pub async fn discard<S, E>(stream: &mut S, idle: Duration, stop: impl Future<Output = ()>)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut read: u64 = 0;
    tokio::pin!(stop);
    while read < DISCARD_LIMIT {
        let frame = tokio::select! {
            _ = &mut stop => return,
            f = tokio::time::timeout(idle, stream.next()) => f,
        };
        match frame {
            Ok(Some(Ok(data))) => read += data.len() as u64,
            _ => return,
        }
    }
}

/// Whether a storage failure means the volume is full (or a quota reached).
pub fn is_out_of_space(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if spool_proto::error::is_disk_full(source))
}

/// A storage failure as an answer: 507 (offset unchanged) when the volume is
/// full, an internal error otherwise.
pub fn store_error(e: StoreError, offset: Option<u64>) -> ApiError {
    if is_out_of_space(&e) {
        tracing::warn!(error = %e, "storage is full");
        return insufficient(offset);
    }
    if let StoreError::Unavailable(reason) = &e {
        tracing::warn!(%reason, "storage unavailable");
        let e = ApiError::new(
            ErrorCode::StorageUnavailable,
            "the storage cannot be reached; nothing of this chunk was acknowledged; retry later",
        )
        .with_header("retry-after", RETRY_AFTER_SECS);
        return match offset {
            Some(o) => e.with_header(tus::UPLOAD_OFFSET, o),
            None => e,
        };
    }
    ApiError::from(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_five_percent_capped_at_one_gib() {
        assert_eq!(default_reserve(0), 0);
        assert_eq!(default_reserve(1000), 50);
        assert_eq!(default_reserve(10 << 30), 512 << 20);
        assert_eq!(default_reserve(20 << 30), 1 << 30);
        assert_eq!(default_reserve(4 << 40), 1 << 30);
        assert_eq!(default_reserve(u64::MAX), 1 << 30);
    }

    #[cfg(unix)]
    #[test]
    fn statvfs_reports_a_volume() {
        let dir = tempfile::tempdir().unwrap();
        let s = statvfs(dir.path()).unwrap();
        assert!(s.total > 0 && s.available <= s.total, "{s:?}");
    }

    /// On the real volume: what would cross the reserve is refused (with
    /// the offset), bytes received while streaming count before the next
    /// probe, and a reserve of 0 never refuses.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_reserve_refuses_what_would_cross_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::FsStore::open(dir.path()).unwrap());
        let avail = statvfs(dir.path()).unwrap().available;
        let r = Reserve::open(store.clone(), Some(avail / 2)).await;
        assert_eq!(r.min_free(), Some(avail / 2));
        r.check(1 << 20, Some(0)).await.unwrap();
        r.check(0, Some(0)).await.unwrap();
        let e = r.check(avail, Some(7)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientStorage);
        assert!(
            e.headers
                .iter()
                .any(|(k, v)| k == "upload-offset" && v == "7")
        );
        assert!(
            e.headers
                .iter()
                .any(|(k, v)| k == "retry-after" && v == "10")
        );
        // Just probed: the bytes said to have arrived are taken off that answer.
        r.check(1 << 20, Some(0)).await.unwrap();
        assert!(r.check_streaming(avail, 1, Some(0)).await.is_err());
        let off = Reserve::open(store, Some(0)).await;
        assert_eq!(off.min_free(), None);
        off.check(u64::MAX, None).await.unwrap();
    }

    #[test]
    fn out_of_space_maps_to_507() {
        let full = StoreError::Io {
            id: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        let e = store_error(full, Some(42));
        assert_eq!(e.code, ErrorCode::InsufficientStorage);
        assert!(
            e.headers
                .iter()
                .any(|(k, v)| k == "upload-offset" && v == "42")
        );
        let other = StoreError::Io {
            id: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(store_error(other, None).code, ErrorCode::Internal);
    }
}
