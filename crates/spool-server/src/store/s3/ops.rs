//! The requests the S3 store makes, each mapped to [`StoreError`] (see
//! [`s3_err`]), and the operations made of them: reading an unfinished
//! upload from its chain of objects, completing, truncating.

use std::ops::Range;

use aws_sdk_s3::primitives::ByteStream as S3Bytes;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::layout::{Kind, Obj, chain};
use super::{Inner, is_missing, s3_err};
use crate::store::{ByteStream, StoreError};

impl Inner {
    pub(super) async fn put(&self, id: &str, key: &str, data: Bytes) -> Result<(), StoreError> {
        let len = data.len() as i64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(len)
            .body(S3Bytes::from(data))
            .send()
            .await
            .map_err(s3_err("PUT", id))?;
        Ok(())
    }

    pub(super) async fn delete_key(&self, id: &str, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(s3_err("DELETE", id))?;
        Ok(())
    }

    /// Every key and size under `prefix`.
    pub(super) async fn list_prefix(
        &self,
        id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, u64, Option<String>)>, StoreError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(s3_err("LIST", id))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push((
                        k.to_owned(),
                        o.size().unwrap_or(0).max(0) as u64,
                        o.e_tag().map(str::to_owned),
                    ));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// The objects holding an unfinished upload's bytes.
    pub(super) async fn pending_objects(&self, id: &str) -> Result<Vec<Obj>, StoreError> {
        Ok(self
            .list_prefix(id, &self.keys.pending(id))
            .await?
            .into_iter()
            .filter_map(|(k, size, etag)| self.keys.parse(id, &k, size, etag))
            .collect())
    }

    /// The id of the upload's multipart upload, if it has one.
    pub(super) async fn mpu_id(&self, id: &str) -> Result<Option<String>, StoreError> {
        match self.get_all(id, &self.keys.mpu(id)).await? {
            Some(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_owned())),
            None => Ok(None),
        }
    }

    /// A whole (small) object, `None` if there is none.
    pub(super) async fn get_all(&self, id: &str, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(r) => {
                let body =
                    r.body.collect().await.map_err(|e| {
                        StoreError::Unavailable(format!("S3 GET of upload {id}: {e}"))
                    })?;
                Ok(Some(body.into_bytes()))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(s3_err("GET", id)(e)),
        }
    }

    /// Bytes `range` of one object, streamed; `Ok(None)` if it is gone.
    pub(super) async fn get_range(
        &self,
        id: &str,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, StoreError> {
        if range.is_empty() {
            return Ok(Some(Box::pin(futures_util::stream::empty())));
        }
        let r = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        match r {
            Ok(r) => {
                let read = r.body.into_async_read();
                Ok(Some(Box::pin(tokio_util::io::ReaderStream::with_capacity(
                    read,
                    256 * 1024,
                ))))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(s3_err("GET", id)(e)),
        }
    }

    /// Size of the finished object, `None` if the upload is not finished.
    pub(super) async fn done_len(&self, id: &str) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.keys.done(id))
            .send()
            .await
        {
            Ok(h) => Ok(Some(h.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(s3_err("HEAD", id)(e)),
        }
    }

    /// Copies part object `obj` into the multipart upload as part `number`.
    pub(super) async fn copy_part(
        &self,
        id: &str,
        mpu: &str,
        number: i32,
        obj: &Obj,
    ) -> Result<CompletedPart, StoreError> {
        let r = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(self.keys.done(id))
            .upload_id(mpu)
            .part_number(number)
            .copy_source(format!("{}/{}", self.bucket, obj.key))
            .send()
            .await
            .map_err(s3_err("part copy", id))?;
        let etag = r
            .copy_part_result()
            .and_then(|c| c.e_tag())
            .map(str::to_owned);
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(etag)
            .build())
    }

    /// The multipart upload's parts: number → size.
    pub(super) async fn listed_parts(
        &self,
        id: &str,
        mpu: &str,
    ) -> Result<Vec<(i32, u64, Option<String>)>, StoreError> {
        let mut out = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(self.keys.done(id))
                .upload_id(mpu)
                .set_part_number_marker(marker)
                .send()
                .await
                .map_err(s3_err("part listing", id))?;
            for p in page.parts() {
                out.push((
                    p.part_number().unwrap_or(0),
                    p.size().unwrap_or(0).max(0) as u64,
                    p.e_tag().map(str::to_owned),
                ));
            }
            match page.next_part_number_marker() {
                Some(m) if page.is_truncated() == Some(true) => marker = Some(m.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Bytes `range` of an unfinished upload, from its chain of objects.
    pub(super) async fn read_pending(
        &self,
        id: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, StoreError> {
        let (on, covered, _) = chain(self.pending_objects(id).await?);
        if range.end > covered {
            return Err(StoreError::Precondition {
                id: id.to_owned(),
                reason: format!("bytes up to {} asked, {covered} stored", range.end),
            });
        }
        let mut streams = Vec::new();
        for o in on
            .into_iter()
            .filter(|o| o.end() > range.start && o.start < range.end)
        {
            let from = range.start.max(o.start) - o.start;
            let to = range.end.min(o.end()) - o.start;
            match self.get_range(id, &o.key, from..to).await? {
                Some(s) => streams.push(s),
                // A part absorbed the segment since the listing: read again.
                None => return Box::pin(self.read_pending(id, range)).await,
            }
        }
        Ok(Box::pin(futures_util::stream::iter(streams).flatten()))
    }

    /// Gathers everything of an unfinished upload's bytes `range` (a tail:
    /// less than a part).
    pub(super) async fn collect_pending(
        &self,
        id: &str,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let s = self.read_pending(id, range).await?;
        let chunks: Vec<Bytes> = s
            .try_collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("S3 GET of upload {id}: {e}")))?;
        Ok(Bytes::from(chunks.concat()))
    }

    /// Finishes an upload of `length` bytes into `uploads/<id>`: the parts
    /// that are not in the multipart upload yet are copied in, the tail is
    /// sent as the last part, the pending objects removed. Idempotent.
    pub(super) async fn complete(&self, id: &str, length: u64) -> Result<(), StoreError> {
        if self.done_len(id).await?.is_some() {
            return self.remove_pending(id).await;
        }
        let (on, covered, _) = chain(self.pending_objects(id).await?);
        if covered < length {
            return Err(StoreError::Precondition {
                id: id.to_owned(),
                reason: format!("{covered} of {length} bytes stored"),
            });
        }
        let Some(mpu) = self.mpu_id(id).await? else {
            return Err(StoreError::Precondition {
                id: id.to_owned(),
                reason: "no multipart upload".into(),
            });
        };
        let listed = self.listed_parts(id, &mpu).await?;
        let mut parts = Vec::new();
        let mut tail_start = 0;
        for (i, o) in on.iter().filter(|o| o.kind == Kind::Part).enumerate() {
            let n = i as i32 + 1;
            // The multipart upload holds the part's bytes if it lists the
            // part with its size and ETag (an aborted writer's copy of other
            // bytes is copied over).
            let same = |(pn, size, etag): &&(i32, u64, Option<String>)| {
                *pn == n && *size == o.size && etag.is_some() && *etag == o.etag
            };
            match listed.iter().find(same) {
                Some((_, _, etag)) => parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(etag.clone())
                        .build(),
                ),
                None => parts.push(self.copy_part(id, &mpu, n, o).await?),
            }
            tail_start = o.end();
        }
        if tail_start < length || parts.is_empty() {
            // The tail (or an empty upload's one empty part): sent again as
            // the last part, which may be smaller than the minimum.
            let data = self.collect_pending(id, tail_start..length).await?;
            let n = parts.len() as i32 + 1;
            let r = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(self.keys.done(id))
                .upload_id(&mpu)
                .part_number(n)
                .content_length(data.len() as i64)
                .body(S3Bytes::from(data))
                .send()
                .await
                .map_err(s3_err("last part", id))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(r.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.keys.done(id))
            .upload_id(&mpu)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(s3_err("completion", id))?;
        self.remove_pending(id).await
    }

    /// Deletes `pending/<id>/` (after completion, or with the upload).
    pub(super) async fn remove_pending(&self, id: &str) -> Result<(), StoreError> {
        for (key, _, _) in self.list_prefix(id, &self.keys.pending(id)).await? {
            self.delete_key(id, &key).await?;
        }
        Ok(())
    }

    /// Drops stored bytes past `len` (left by a writer that failed before
    /// its offset was recorded): objects beyond go, one straddling it is
    /// written again shorter.
    pub(super) async fn truncate(&self, id: &str, len: u64) -> Result<(), StoreError> {
        for o in self.pending_objects(id).await? {
            if o.start >= len {
                self.delete_key(id, &o.key).await?;
            } else if o.end() > len {
                let keep = self.collect_pending(id, o.start..len).await?;
                let key = self.keys.tail(id, o.start);
                self.put(id, &key, keep).await?;
                if key != o.key {
                    self.delete_key(id, &o.key).await?;
                }
            }
        }
        Ok(())
    }

    /// Bytes `range` of a finished upload.
    pub(super) async fn read_done(
        &self,
        id: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, StoreError> {
        self.get_range(id, &self.keys.done(id), range)
            .await?
            .ok_or_else(|| StoreError::Precondition {
                id: id.to_owned(),
                reason: "not finished".into(),
            })
    }

    /// Aborts the upload's multipart upload, if any, and deletes
    /// `pending/<id>/`.
    pub(super) async fn discard_pending(&self, id: &str) -> Result<(), StoreError> {
        if let Some(mpu) = self.mpu_id(id).await? {
            let r = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(self.keys.done(id))
                .upload_id(mpu)
                .send()
                .await;
            if let Err(e) = r
                && !is_missing(&e)
            {
                return Err(s3_err("multipart abort", id)(e));
            }
        }
        self.remove_pending(id).await
    }
}
