//! A PATCH body into the bucket: bytes are cut into parts of the store's
//! part size as they arrive (each written as an object, then copied into
//! the multipart upload), and what is left at commit becomes one tail
//! segment. The first part a writer cuts takes in the tail segments of
//! earlier PATCHes (read back, at most a part); they are deleted only once
//! that part is written, so no acknowledged byte is ever in no object. A
//! staged writer (checksum) keeps everything in memory until commit.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::layout::{Kind, Obj, chain};
use super::{Inner, StoreError};
use crate::store::{ChunkWriter, WriteMode};

pub(in crate::store) struct S3Writer {
    s: Arc<Inner>,
    id: String,
    mode: WriteMode,
    /// Where the bytes in no part yet begin.
    tail_start: u64,
    /// Tail segments of earlier PATCHes, `[tail_start, buf_start)`.
    old_tail: Vec<Obj>,
    /// This writer's bytes in no object yet, from `buf_start`.
    buf: Vec<Bytes>,
    buffered: u64,
    buf_start: u64,
    /// Parts before `tail_start`.
    parts: i32,
    mpu: Option<String>,
    /// Objects this writer made (an abort removes them).
    created: Vec<String>,
    /// Old tail segments a new part holds now (a commit removes them).
    absorbed: Vec<String>,
    written: u64,
    /// This node's local copy, appended to as bytes arrive.
    tee: Option<super::cache::Tee>,
}

impl S3Writer {
    pub async fn open(
        s: Arc<Inner>,
        id: &str,
        offset: u64,
        mode: WriteMode,
    ) -> Result<S3Writer, StoreError> {
        let mut objs = s.pending_objects(id).await?;
        let (_, covered, _) = chain(objs.clone());
        if covered > offset {
            // A writer that failed left bytes past the recorded offset.
            s.truncate(id, offset).await?;
            objs = s.pending_objects(id).await?;
        }
        let (on, covered, _) = chain(objs);
        if covered < offset {
            return Err(StoreError::Precondition {
                id: id.to_owned(),
                reason: format!("{covered} bytes in the bucket, {offset} acknowledged"),
            });
        }
        let mut tail_start = 0;
        let mut parts = 0;
        let mut old_tail = Vec::new();
        for o in on {
            if o.kind == Kind::Part && old_tail.is_empty() {
                tail_start = o.end();
                parts += 1;
            } else {
                old_tail.push(o);
            }
        }
        let tee = s.cache.tee(id, offset).await;
        Ok(S3Writer {
            tee,
            s,
            id: id.to_owned(),
            mode,
            tail_start,
            old_tail,
            buf: Vec::new(),
            buffered: 0,
            buf_start: offset,
            parts,
            mpu: None,
            created: Vec::new(),
            absorbed: Vec::new(),
            written: 0,
        })
    }

    /// Takes the first `n` buffered bytes.
    fn take(&mut self, n: u64) -> Bytes {
        let mut out = Vec::with_capacity(n as usize);
        let mut left = n as usize;
        while left > 0 {
            let Some(first) = self.buf.first_mut() else {
                break;
            };
            if first.len() <= left {
                left -= first.len();
                out.extend_from_slice(first);
                self.buf.remove(0);
            } else {
                out.extend_from_slice(&first.split_to(left));
                left = 0;
            }
        }
        self.buffered -= out.len() as u64;
        self.buf_start += out.len() as u64;
        Bytes::from(out)
    }

    /// Cuts every full part out of the tail and the buffer.
    async fn cut_parts(&mut self) -> Result<(), StoreError> {
        let size = self.s.part_size;
        while (self.buf_start - self.tail_start) + self.buffered >= size {
            // One copy of the part's bytes, two only when earlier tail
            // segments are read back to go first.
            let data = if self.buf_start > self.tail_start {
                let old = self
                    .s
                    .collect_pending(&self.id, self.tail_start..self.buf_start)
                    .await?;
                let mut data = Vec::with_capacity(size as usize);
                data.extend_from_slice(&old);
                data.extend_from_slice(&self.take(size - old.len() as u64));
                Bytes::from(data)
            } else {
                self.take(size)
            };
            let key = self.s.keys.part(&self.id, self.tail_start);
            let mpu =
                match &self.mpu {
                    Some(m) => m.clone(),
                    None => {
                        let m = self.s.mpu_id(&self.id).await?.ok_or_else(|| {
                            StoreError::Precondition {
                                id: self.id.clone(),
                                reason: "no multipart upload".into(),
                            }
                        })?;
                        self.mpu = Some(m.clone());
                        m
                    }
                };
            // Written once, then copied into the multipart upload inside
            // the store (sending the bytes twice measured no faster on
            // Garage, and doubles what the store writes).
            self.s.put(&self.id, &key, data).await?;
            self.created.push(key.clone());
            let part = Obj {
                key,
                kind: Kind::Part,
                start: self.tail_start,
                size,
                etag: None,
            };
            self.s
                .copy_part(&self.id, &mpu, self.parts + 1, &part)
                .await?;
            self.parts += 1;
            self.absorbed.extend(self.old_tail.drain(..).map(|o| o.key));
            self.tail_start += size;
            self.buf_start = self.buf_start.max(self.tail_start);
        }
        Ok(())
    }
}

#[async_trait]
impl ChunkWriter for S3Writer {
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.written += data.len() as u64;
        self.buffered += data.len() as u64;
        if let Some(t) = self.tee.as_mut() {
            t.write(&data).await;
        }
        self.buf.push(data);
        if self.mode == WriteMode::Direct {
            self.cut_parts().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        if let Err(e) = self.cut_parts().await {
            // What was not written must leave the local copy too; the
            // caller aborts (removing the parts this writer made).
            if let Some(t) = self.tee.as_mut() {
                t.cut().await;
            }
            return Err(e);
        }
        if self.buffered > 0 {
            let key = self.s.keys.tail(&self.id, self.buf_start);
            let n = self.buffered;
            let data = self.take(n);
            if let Err(e) = self.s.put(&self.id, &key, data).await {
                if let Some(t) = self.tee.as_mut() {
                    t.cut().await;
                }
                return Err(e);
            }
        }
        if let Some(t) = self.tee.as_mut() {
            t.finish().await;
        }
        for key in &self.absorbed {
            // Harmless if it stays: the part covers its bytes.
            if let Err(e) = self.s.delete_key(&self.id, key).await {
                tracing::warn!(upload = %self.id, error = %e, "an absorbed tail segment stays in the bucket");
            }
        }
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        if let Some(t) = self.tee.as_mut() {
            t.cut().await;
        }
        for key in &self.created {
            // One left behind lies past the recorded offset; the next
            // writer (or recovery) removes it.
            if let Err(e) = self.s.delete_key(&self.id, key).await {
                tracing::warn!(upload = %self.id, error = %e, "an aborted chunk's part stays in the bucket");
            }
        }
        Ok(())
    }
}

/// Writes the concatenation of finished uploads `parts` as upload `id` (a
/// multipart upload of its own, fed part by part) and returns its length.
pub(super) async fn concat(s: &Inner, id: &str, parts: &[String]) -> Result<u64, StoreError> {
    let key = s.keys.done(id);
    let mpu = s
        .client
        .create_multipart_upload()
        .bucket(&s.bucket)
        .key(&key)
        .send()
        .await
        .map_err(super::s3_err("multipart creation", id))?
        .upload_id()
        .unwrap_or_default()
        .to_owned();
    let mut done = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let flush = |buf: Vec<u8>, n: i32, mpu: String| async move {
        let r = s
            .client
            .upload_part()
            .bucket(&s.bucket)
            .key(s.keys.done(id))
            .upload_id(mpu)
            .part_number(n)
            .content_length(buf.len() as i64)
            .body(aws_sdk_s3::primitives::ByteStream::from(buf))
            .send()
            .await
            .map_err(super::s3_err("concatenation part", id))?;
        Ok::<_, StoreError>(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(r.e_tag().map(str::to_owned))
                .build(),
        )
    };
    for p in parts {
        let len = s
            .done_len(p)
            .await?
            .ok_or_else(|| StoreError::Precondition {
                id: p.clone(),
                reason: "a partial upload of the concatenation is not finished".into(),
            })?;
        let mut stream = s.read_done(p, 0..len).await?;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| StoreError::Unavailable(format!("S3 GET of upload {p}: {e}")))?
        {
            total += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 >= s.part_size {
                let rest = buf.split_off(s.part_size as usize);
                let n = done.len() as i32 + 1;
                done.push(flush(std::mem::replace(&mut buf, rest), n, mpu.clone()).await?);
            }
        }
    }
    if !buf.is_empty() || done.is_empty() {
        let n = done.len() as i32 + 1;
        done.push(flush(buf, n, mpu.clone()).await?);
    }
    s.client
        .complete_multipart_upload()
        .bucket(&s.bucket)
        .key(&key)
        .upload_id(&mpu)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map_err(super::s3_err("concatenation", id))?;
    // Whatever `create` made for it is not needed.
    s.discard_pending(id).await?;
    Ok(total)
}
