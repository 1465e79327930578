//! The [`Store`] contract, run on both stores: the filesystem and S3 (a
//! private Garage). Bytes written in PATCH-sized pieces read back exactly
//! while the upload is unfinished and after it is assembled; a cut-off
//! direct body keeps what arrived, an aborted staged one nothing; another
//! store instance (another node, a restart) continues where the first
//! stopped; recovery counts what is in storage; concatenation, deletion,
//! listing and local copies. On S3 also: parts are cut at the part size
//! whatever the PATCH sizes, and a store that cannot be reached is
//! `Unavailable` and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use spool_server::store::{FsStore, MIN_PART, S3Config, S3Store, Store, StoreError, WriteMode};
use spool_testkit::garage::Garage;

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
        })
        .collect()
}

async fn read(store: &dyn Store, id: &str, range: Range<u64>) -> Vec<u8> {
    let chunks: Vec<Bytes> = store
        .read(id, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

/// One PATCH: `bytes` in frames of `frame` bytes, committed.
async fn patch(
    store: &dyn Store,
    id: &str,
    offset: u64,
    bytes: &[u8],
    frame: usize,
    mode: WriteMode,
) -> u64 {
    let mut w = store.writer(id, offset, mode).await.unwrap();
    for c in bytes.chunks(frame.max(1)) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.commit().await.unwrap()
}

/// The suite's configuration with keys under a prefix (the store must keep
/// to it).
fn s3_config(g: &Garage) -> S3Config {
    S3Config {
        prefix: "suite".into(),
        ..common::s3_config(g)
    }
}

async fn s3(g: &Garage, cache: &std::path::Path) -> Arc<dyn Store> {
    let s = S3Store::open(&s3_config(g), cache.to_path_buf()).unwrap();
    s.check().await.unwrap();
    Arc::new(s)
}

/// The contract; `again` opens another instance on the same storage.
async fn contract(store: Arc<dyn Store>, again: Arc<dyn Store>) {
    let id = "0123456789abcdef0123456789abcdef";
    store.create(id).await.unwrap();
    assert_eq!(store.stored_len(id).await.unwrap(), Some(0));
    let all = data(3 * MIN_PART as usize + 777_777, 3);
    let mut at = 0u64;
    // Small PATCHes (a recorder's chunks), then one that crosses two parts
    // in odd frames, then small ones again.
    for n in [100_000usize, 250_000, 1] {
        at += patch(
            &*store,
            id,
            at,
            &all[at as usize..at as usize + n],
            65_536,
            WriteMode::Direct,
        )
        .await;
    }
    let big = 2 * MIN_PART as usize + 123_457;
    at += patch(
        &*store,
        id,
        at,
        &all[at as usize..at as usize + big],
        40_001,
        WriteMode::Direct,
    )
    .await;
    assert_eq!(read(&*store, id, 0..at).await, all[..at as usize]);
    assert_eq!(
        read(&*store, id, 99_999..350_002).await,
        all[99_999..350_002]
    );
    let mid = MIN_PART - 10..MIN_PART + 10;
    assert_eq!(
        read(&*store, id, mid.clone()).await,
        all[mid.start as usize..mid.end as usize]
    );

    // A staged chunk that is aborted leaves nothing; a direct one that is
    // aborted neither.
    for mode in [WriteMode::Staged, WriteMode::Direct] {
        let mut w = store.writer(id, at, mode).await.unwrap();
        w.write(Bytes::from(vec![0xEE; MIN_PART as usize + 5]))
            .await
            .unwrap();
        w.abort().await.unwrap();
        assert_eq!(store.stored_len(id).await.unwrap(), Some(at), "{mode:?}");
    }
    // A staged one that commits counts.
    let n = 300_000;
    at += patch(
        &*store,
        id,
        at,
        &all[at as usize..at as usize + n],
        8192,
        WriteMode::Staged,
    )
    .await;

    // Another instance (another node, after a restart) carries on.
    assert_eq!(
        again.recover(id, at, Some(all.len() as u64)).await.unwrap(),
        at
    );
    let rest = all.len() - at as usize;
    at += patch(
        &*again,
        id,
        at,
        &all[at as usize..],
        rest / 3 + 1,
        WriteMode::Direct,
    )
    .await;
    assert_eq!(at, all.len() as u64);
    let copy = again.local_copy(id, MIN_PART + 1).await.unwrap().unwrap();
    assert!(std::fs::metadata(&copy).unwrap().len() > MIN_PART);
    again.complete(id, at).await.unwrap();
    again.complete(id, at).await.unwrap();
    assert_eq!(store.stored_len(id).await.unwrap(), Some(at));
    assert_eq!(read(&*store, id, 0..at).await, all);
    assert_eq!(store.head_bytes(id, 12).await.unwrap(), all[..12]);
    let copy = store.local_copy(id, at).await.unwrap().unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), all);

    // Concatenation of two finished uploads.
    let other = "fedcba9876543210fedcba9876543210";
    store.create(other).await.unwrap();
    let small = data(4321, 9);
    patch(&*store, other, 0, &small, 1000, WriteMode::Direct).await;
    store.complete(other, small.len() as u64).await.unwrap();
    let joined = "00000000000000000000000000000001";
    store.create(joined).await.unwrap();
    let len = store
        .concat(joined, &[id.into(), other.into()])
        .await
        .unwrap();
    assert_eq!(len, at + small.len() as u64);
    assert_eq!(
        read(&*store, joined, at - 5..len).await,
        [&all[all.len() - 5..], &small[..]].concat()
    );

    let mut ids = store.list().await.unwrap();
    ids.sort();
    assert_eq!(
        ids,
        vec![joined.to_owned(), id.to_owned(), other.to_owned()]
    );
    for i in [id, other, joined] {
        store.delete(i).await.unwrap();
        assert_eq!(store.stored_len(i).await.unwrap(), None);
    }
    store.delete(id).await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_filesystem_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let a: Arc<dyn Store> = Arc::new(FsStore::open(dir.path().join("u")).unwrap());
    let b: Arc<dyn Store> = Arc::new(FsStore::open(dir.path().join("u")).unwrap());
    contract(a, b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_s3_store_keeps_the_contract() {
    let g = Garage::start_new();
    let dir = tempfile::tempdir().unwrap();
    let a = s3(&g, &dir.path().join("cache-a")).await;
    let b = s3(&g, &dir.path().join("cache-b")).await;
    contract(a, b).await;
}

/// Parts are cut at the part size whatever the PATCHes, each at least S3's
/// minimum (Garage would accept smaller ones; S3 would not).
#[tokio::test(flavor = "multi_thread")]
async fn s3_parts_are_the_part_size_whatever_the_patches() {
    let g = Garage::start_new();
    let dir = tempfile::tempdir().unwrap();
    let s = S3Store::open(&s3_config(&g), dir.path().to_path_buf()).unwrap();
    let id = "0123456789abcdef0123456789abcdef";
    s.create(id).await.unwrap();
    let all = data(2 * MIN_PART as usize + 1000, 5);
    let mut at = 0;
    for n in [1usize, 3_000_000, 2_500_000, 10, 6_000_000] {
        let n = n.min(all.len() - at as usize);
        at += patch(
            &s,
            id,
            at,
            &all[at as usize..at as usize + n],
            100_000,
            WriteMode::Direct,
        )
        .await;
    }
    let parts = s.multipart_parts(id).await.unwrap();
    assert_eq!(parts, vec![(1, MIN_PART), (2, MIN_PART)], "{parts:?}");
    at += patch(&s, id, at, &all[at as usize..], 7, WriteMode::Direct).await;
    s.complete(id, at).await.unwrap();
    assert_eq!(read(&s, id, 0..at).await, all);
}

/// The store gone mid-upload: `Unavailable`, the stored bytes unchanged;
/// back, the upload carries on.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_s3_store_is_unavailable_and_loses_nothing() {
    let mut g = Garage::start_new();
    let dir = tempfile::tempdir().unwrap();
    let s = s3(&g, dir.path()).await;
    let id = "0123456789abcdef0123456789abcdef";
    s.create(id).await.unwrap();
    let all = data(MIN_PART as usize + 200_000, 7);
    let half = 600_000;
    patch(&*s, id, 0, &all[..half], 50_000, WriteMode::Direct).await;
    g.stop();
    let e = match s.writer(id, half as u64, WriteMode::Direct).await {
        Err(e) => e,
        Ok(mut w) => match w.write(Bytes::copy_from_slice(&all[half..])).await {
            Err(e) => e,
            Ok(()) => w.commit().await.unwrap_err(),
        },
    };
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    g.start();
    assert_eq!(s.recover(id, half as u64, None).await.unwrap(), half as u64);
    patch(
        &*s,
        id,
        half as u64,
        &all[half..],
        50_000,
        WriteMode::Direct,
    )
    .await;
    s.complete(id, all.len() as u64).await.unwrap();
    assert_eq!(read(&*s, id, 0..all.len() as u64).await, all);
}
