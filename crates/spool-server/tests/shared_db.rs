//! Several nodes on one PostgreSQL database, in one process (each an `App`
//! with its own data folder, `common::T::on_database`): what nodes must
//! agree on through the database — one set of signing keys and API
//! credentials, so any node accepts any URL; each webhook delivery and each
//! processing job claimed by one node at a time; one writer per upload,
//! whose lease a live writer keeps, a finished request gives back at once
//! and a dead node's lets run out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use spool_server::db::now_ms;
use spool_server::locks::Mode;
use spool_testkit::garage::Garage;
use spool_testkit::postgres::Postgres;

/// Two nodes sharing one PostgreSQL and one Garage bucket (the store
/// nodes must share for one to continue another's upload).
async fn two_nodes(f: fn(&mut spool_server::Config)) -> (T, T, Arc<Postgres>, Garage) {
    let (pg, garage) = tokio::task::spawn_blocking(|| {
        std::thread::scope(|s| {
            let pg = s.spawn(Postgres::start_new);
            (Arc::new(pg.join().unwrap()), Garage::start_new())
        })
    })
    .await
    .unwrap();
    let store = spool_server::config::StoreConfig::S3(s3_config(&garage));
    let config = |c: &mut spool_server::Config| {
        c.store = store.clone();
        f(c);
    };
    // Started together: they must still agree on one set of secrets.
    let (a, b) = tokio::join!(
        T::on_database(pg.clone(), config),
        T::on_database(pg.clone(), config)
    );
    (a, b, pg, garage)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_one_node_signs_is_accepted_by_another() {
    let (a, b, _pg, _garage) = two_nodes(|_| {}).await;
    assert_eq!(a.app.keys.current_kid, b.app.keys.current_kid);
    assert_ne!(a.app.node, b.app.node, "each data folder names its node");
    let url = a.create(&[("upload-length", "5")]).await;
    assert_eq!(
        b.patch(&url, 0, &[], b"hello").await.status,
        StatusCode::NO_CONTENT
    );
    let head = a.head(&url).await;
    assert_eq!(head.header("upload-offset"), Some("5"));
    assert_eq!(b.get_basic(&url).await.body.as_ref(), b"hello");
}

#[tokio::test(flavor = "multi_thread")]
async fn unset_credentials_are_made_once_for_every_node() {
    let (a, b, _pg, _garage) = two_nodes(|c| c.credentials = None).await;
    assert_eq!(a.app.credentials.token_id, b.app.credentials.token_id);
    assert_eq!(
        a.app.credentials.token_secret,
        b.app.credentials.token_secret
    );
    for t in [&a, &b] {
        let file = std::fs::read_to_string(t.dir.path().join("data/credentials")).unwrap();
        assert_eq!(
            file.trim(),
            format!(
                "{}:{}",
                a.app.credentials.token_id, a.app.credentials.token_secret
            )
        );
    }
}

/// Two nodes asking for due webhooks at the same moment get disjoint sets,
/// and an asset's second event waits for its first.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_is_claimed_by_one_node_at_a_time() {
    let (a, b, _pg, _garage) = two_nodes(|c| {
        c.webhook = Some(spool_server::WebhookConfig {
            url: "http://127.0.0.1:9/hooks".parse().unwrap(),
            secret: spool_proto::webhook::WebhookSecret::parse(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
            .unwrap(),
        })
    })
    .await;
    // Stop both nodes' own delivery loops from taking them first.
    a.app.shutdown.cancel();
    b.app.shutdown.cancel();
    for i in 0..20 {
        a.on_demand(&format!("{{\"metadata\":{{\"n\":\"{i}\"}}}}"))
            .await;
    }
    let claim = |t: &T, node: &'static str| {
        let db = t.app.db.clone();
        async move {
            db.call(move |ops| ops.due_events(now_ms() + 1_000, 32, node, now_ms() + 30_000))
                .await
                .unwrap()
        }
    };
    let (x, y) = tokio::join!(claim(&a, "na"), claim(&b, "nb"));
    let mut seqs: Vec<i64> = x.iter().chain(&y).map(|e| e.seq).collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "an event was claimed twice");
    assert_eq!(n, 20, "one created event per asset, each claimed once");
    // Claimed, nothing more is due until a lease runs out.
    assert!(claim(&a, "na").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_keeps_its_upload_and_gives_it_back_when_done() {
    let (a, b, _pg, _garage) = two_nodes(|_| {}).await;
    let url = a.create(&[("upload-length", "10")]).await;
    let id = id_of(&url);
    let grace = Duration::from_secs(30);
    let mode = Mode::InterruptStalled { grace };
    let mut held = a.app.locks.acquire(&id, mode).await.unwrap();
    spool_server::lease::attach(&a.app, &id, mode, &mut held)
        .await
        .unwrap();
    // A writer that keeps receiving: the other node's request is 423 once
    // it has seen the holder renew with progress.

    let started = Instant::now();
    let r = {
        let patch = b.patch(&url, 0, &[], b"hello");
        let busy = async {
            loop {
                held.touch();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::select! {
            r = patch => r,
            () = busy => unreachable!(),
        }
    };
    assert_eq!(r.status, StatusCode::LOCKED, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(5));

    // Given back: the next request on the other node proceeds at once.
    drop(held);
    let started = Instant::now();
    assert_eq!(
        b.patch(&url, 0, &[], b"hello").await.status,
        StatusCode::NO_CONTENT
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_nodes_lease_runs_out_and_its_upload_resumes_elsewhere() {
    let (a, b, pg, _garage) = two_nodes(|_| {}).await;
    let url = a.create(&[("upload-length", "10")]).await;
    let id = id_of(&url);
    // A holder that died: a lease row nobody renews.
    let until = now_ms() + 4_000;
    pg.psql(&format!(
        "INSERT INTO upload_leases(upload_id, node, expires_at, last_progress) VALUES ('{id}', 'ndead:1', {until}, {})",
        now_ms()
    ));
    let started = Instant::now();
    let r = b.patch(&url, 0, &[], b"hello").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(6),
        "took over after {waited:?}"
    );
    drop(a);
}

/// Nodes claiming processing jobs at once never get the same job.
#[tokio::test(flavor = "multi_thread")]
async fn a_processing_job_is_claimed_by_one_node() {
    let (a, b, pg, _garage) = two_nodes(|_| {}).await;
    // Both nodes' own workers stop, so only the claims below take jobs.
    a.app.shutdown.cancel();
    b.app.shutdown.cancel();
    let values: Vec<String> = (0..30)
        .map(|i| format!("('job{i}', 'msg{i}', 0, 0, 0)"))
        .collect();
    pg.psql(&format!(
        "INSERT INTO jobs(asset_id, event_id, attempts, next_attempt_at, created_at) VALUES {}",
        values.join(", ")
    ));
    let claims = |t: &T, worker: &'static str| {
        let db = t.app.db.clone();
        async move {
            let mut got = Vec::new();
            loop {
                let job = db
                    .call(move |ops| ops.claim_job(now_ms(), 60_000, worker))
                    .await
                    .unwrap();
                match job {
                    Some(j) => got.push(j.asset_id),
                    None => return got,
                }
            }
        }
    };
    let (x, y) = tokio::join!(claims(&a, "na"), claims(&b, "nb"));
    let mut all: Vec<&String> = x.iter().chain(&y).collect();
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (30, 30), "a job claimed twice or lost");
}
