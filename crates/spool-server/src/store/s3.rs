//! The S3-compatible backend of [`Store`] (`--store s3`): an upload is one
//! S3 multipart upload, and its acknowledged bytes stay readable while it
//! is unfinished because each part, and each PATCH's tail smaller than a
//! part, is also an object of its own ([`layout`]). S3's 5 MiB part
//! minimum never reaches the protocol: parts are cut at a fixed size from
//! whatever PATCHes arrive, a tail waits in its segments until a part is
//! full, and the last part may be small. A commit returns once its objects
//! are written (the store's acknowledgement is durability), so nothing is
//! acknowledged that is not in the bucket. Completion copies the last
//! tail into the multipart upload, completes it into `uploads/<id>`, and
//! removes the pending objects. Any node can continue any upload: the
//! state is in the bucket, never in this process. Errors reaching the
//! store (connection refused, timeouts, 5xx) are
//! [`StoreError::Unavailable`], which clients see as 503
//! `ERR_STORAGE_UNAVAILABLE` with the offset unchanged. The processor and
//! the live index read local files: [`Store::local_copy`] keeps a cache
//! of an upload's bytes in this node's data folder, filled from the bucket
//! as far as it is asked to reach.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{ByteStream, ChunkWriter, Store, StoreError, WriteMode};
use layout::{Keys, chain};

mod cache;
mod layout;
mod ops;
mod writer;

/// The smallest part S3 accepts (but for the last).
pub const MIN_PART: u64 = 5 * 1024 * 1024;

/// Where and how to reach the bucket (`--store s3`).
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// For stores other than AWS (Garage, MinIO, …).
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), which most
    /// self-hosted stores need.
    pub path_style: bool,
    /// Prepended to every key, so that several deployments share a bucket.
    pub prefix: String,
    /// Part size; at least [`MIN_PART`].
    pub part_size: u64,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

/// The store; cheap to clone.
#[derive(Clone)]
pub struct S3Store(Arc<Inner>);

pub(super) struct Inner {
    client: Client,
    bucket: String,
    keys: Keys,
    part_size: u64,
    cache: cache::Cache,
}

/// Maps an SDK error: not reaching the store (or its 5xx) is
/// [`StoreError::Unavailable`]; anything else the store answered is I/O.
fn s3_err<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    what: &str,
    id: &str,
) -> impl FnOnce(SdkError<E>) -> StoreError {
    let (what, id) = (what.to_owned(), id.to_owned());
    move |e| {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_owned);
        let msg = format!(
            "S3 {what} of upload {id}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&e)
        );
        match (&e, status) {
            (SdkError::ServiceError(_), Some(s)) if s < 500 => StoreError::Io {
                id,
                source: std::io::Error::other(format!("{msg} ({})", code.unwrap_or_default())),
            },
            _ => StoreError::Unavailable(msg),
        }
    }
}

fn is_missing<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    matches!(e.code(), Some("NoSuchKey" | "NotFound" | "NoSuchUpload"))
        || e.raw_response().map(|r| r.status().as_u16()) == Some(404)
}

impl S3Store {
    /// The parts of upload `id`'s multipart upload, as (number, size): what
    /// S3 will assemble (for tests and diagnostics).
    pub async fn multipart_parts(&self, id: &str) -> Result<Vec<(i32, u64)>, StoreError> {
        let Some(mpu) = self.0.mpu_id(id).await? else {
            return Ok(Vec::new());
        };
        let mut parts: Vec<(i32, u64)> = self
            .0
            .listed_parts(id, &mpu)
            .await?
            .into_iter()
            .map(|(n, size, _)| (n, size))
            .collect();
        parts.sort();
        Ok(parts)
    }

    /// A store on `config.bucket`, caching local copies under `cache_dir`.
    /// Nothing is sent until the first request; [`S3Store::check`] asks the
    /// bucket once.
    pub fn open(config: &S3Config, cache_dir: PathBuf) -> std::io::Result<S3Store> {
        use aws_sdk_s3::config::retry::RetryConfig;
        use aws_sdk_s3::config::timeout::TimeoutConfig;
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
        use aws_smithy_http_client::tls;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let creds = Credentials::new(
            &config.access_key,
            &config.secret_key,
            config.session_token.clone(),
            None,
            "spool-environment",
        );
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .force_path_style(config.path_style)
            .credentials_provider(creds)
            // Checksums only where S3 requires them: many S3-compatible
            // stores refuse the SDK's default trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // A store that does not answer fails the request in seconds
            // (503 to the client, who retries), not after minutes.
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(3))
                    .operation_attempt_timeout(std::time::Duration::from_secs(60))
                    .build(),
            )
            .http_client(http);
        if let Some(ep) = &config.endpoint {
            b = b.endpoint_url(ep);
        }
        Ok(S3Store(Arc::new(Inner {
            client: Client::from_conf(b.build()),
            bucket: config.bucket.clone(),
            keys: Keys::new(&config.prefix),
            part_size: config.part_size.max(MIN_PART),
            cache: cache::Cache::open(cache_dir)?,
        })))
    }

    /// Asks the bucket whether it is there and ours to use.
    pub async fn check(&self) -> Result<(), StoreError> {
        let s = &self.0;
        s.client
            .head_bucket()
            .bucket(&s.bucket)
            .send()
            .await
            .map_err(s3_err("bucket check", "-"))?;
        Ok(())
    }
}

#[async_trait]
impl Store for S3Store {
    async fn create(&self, id: &str) -> Result<(), StoreError> {
        let s = &self.0;
        let r = s
            .client
            .create_multipart_upload()
            .bucket(&s.bucket)
            .key(s.keys.done(id))
            .send()
            .await
            .map_err(s3_err("multipart creation", id))?;
        let mpu = r.upload_id().unwrap_or_default().to_owned();
        s.put(id, &s.keys.mpu(id), Bytes::from(mpu)).await
    }

    async fn writer(
        &self,
        id: &str,
        offset: u64,
        mode: WriteMode,
    ) -> Result<Box<dyn ChunkWriter>, StoreError> {
        Ok(Box::new(
            writer::S3Writer::open(self.0.clone(), id, offset, mode).await?,
        ))
    }

    async fn recover(
        &self,
        id: &str,
        recorded: u64,
        length: Option<u64>,
    ) -> Result<u64, StoreError> {
        let s = &self.0;
        if let Some(n) = s.done_len(id).await? {
            return Ok(n);
        }
        if s.mpu_id(id).await?.is_none() {
            // Never created (a crash between the row and the bucket): with
            // nothing acknowledged, create it now; otherwise 0 says damaged.
            if recorded == 0 {
                self.create(id).await?;
            }
            return Ok(0);
        }
        let (_, covered, _) = chain(s.pending_objects(id).await?);
        let valid = covered.min(length.unwrap_or(u64::MAX));
        if valid < covered {
            s.truncate(id, valid).await?;
        }
        Ok(valid)
    }

    async fn read(&self, id: &str, range: Range<u64>) -> Result<ByteStream, StoreError> {
        let s = &self.0;
        if let Some(stream) = s.get_range(id, &s.keys.done(id), range.clone()).await? {
            return Ok(stream);
        }
        match s.read_pending(id, range.clone()).await {
            // Assembled (and its pending objects removed) in between.
            Err(StoreError::Precondition { .. }) if s.done_len(id).await?.is_some() => {
                s.read_done(id, range).await
            }
            r => r,
        }
    }

    async fn head_bytes(&self, id: &str, n: usize) -> Result<Vec<u8>, StoreError> {
        let len = self.stored_len(id).await?.unwrap_or(0);
        let s = self.read(id, 0..len.min(n as u64)).await?;
        let chunks: Vec<Bytes> = s
            .try_collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("S3 GET of upload {id}: {e}")))?;
        Ok(chunks.concat())
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let s = &self.0;
        s.discard_pending(id).await?;
        s.delete_key(id, &s.keys.done(id)).await?;
        s.cache.remove(id);
        Ok(())
    }

    async fn concat(&self, id: &str, parts: &[String]) -> Result<u64, StoreError> {
        writer::concat(&self.0, id, parts).await
    }

    async fn stored_len(&self, id: &str) -> Result<Option<u64>, StoreError> {
        let s = &self.0;
        if let Some(n) = s.done_len(id).await? {
            return Ok(Some(n));
        }
        if s.mpu_id(id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(chain(s.pending_objects(id).await?).1))
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let s = &self.0;
        let mut ids: Vec<String> = s
            .list_prefix("-", &s.keys.done_prefix())
            .await?
            .into_iter()
            .filter_map(|(k, _, _)| k.strip_prefix(&s.keys.done_prefix()).map(str::to_owned))
            .collect();
        let root = s.keys.pending_root();
        for (k, _, _) in s.list_prefix("-", &root).await? {
            if let Some(id) = k.strip_prefix(&root).and_then(|r| r.split('/').next()) {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn complete(&self, id: &str, length: u64) -> Result<(), StoreError> {
        self.0.complete(id, length).await
    }

    fn release_local_copy(&self, id: &str) {
        self.0.cache.remove(id);
    }

    async fn local_copy(&self, id: &str, len: u64) -> Result<Option<PathBuf>, StoreError> {
        let s = &self.0;
        s.cache
            .fill(id, len, |range| self.read(id, range))
            .await
            .map(Some)
    }
}
