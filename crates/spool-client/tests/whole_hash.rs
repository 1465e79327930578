//! The upload's SHA-256, which the completion reports and the journal keeps,
//! is taken from the bytes as they are read for sending: against a real
//! spool-server on loopback it stays the SHA-256 of exactly the upload's
//! bytes when a PATCH is cut and its bytes are sent again, and when a
//! resumed session never read the bytes the server already had.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use spool_client::policy::RetryPolicy;
use spool_client::{Client, Event, Options, SourceRecord, State, Target, UploadState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const ID: &str = "hash-test";
const SECRET: &str = "hash-test-secret-0123456";

/// A spool-server on a loopback port; `public_url` is where its upload URLs
/// point (a proxy in front of it).
async fn server(
    dir: &std::path::Path,
    public: Option<&str>,
) -> (std::net::SocketAddr, CancellationToken) {
    let mut config = spool_server::Config::new(dir.join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.public_url = public.map(|u| u.parse().unwrap());
    config.credentials = Some(spool_server::config::Credentials {
        token_id: ID.into(),
        token_secret: SECRET.into(),
    });
    let server = spool_server::Server::bind(config).await.unwrap();
    let addr = server.addr;
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(server.run(async move { token.cancelled().await }));
    (addr, stop)
}

fn target(base: &str) -> Target {
    Target::OnDemand {
        server: base.to_owned(),
        token_id: ID.into(),
        token_secret: SECRET.into(),
    }
}

fn options(chunk: u64) -> Options {
    Options {
        chunk_size: Some(chunk),
        retry: RetryPolicy {
            base: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        ..Options::default()
    }
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sha256_hex(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

/// Forwards connections to `upstream`; the first one is cut once it has
/// carried `cut_after` bytes towards the server. Counts connections.
async fn cutting_proxy(
    listener: TcpListener,
    upstream: std::net::SocketAddr,
    cut_after: u64,
) -> Arc<AtomicUsize> {
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let limit = if n == 0 { cut_after } else { u64::MAX };
            tokio::spawn(forward(client, upstream, limit));
        }
    });
    connections
}

async fn forward(client: TcpStream, upstream: std::net::SocketAddr, limit: u64) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let carried = AtomicU64::new(0);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let before = carried.fetch_add(n as u64, Ordering::SeqCst);
            let take = (limit.saturating_sub(before) as usize).min(n);
            if sw.write_all(&buf[..take]).await.is_err() || take < n {
                return;
            }
        }
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    // Either direction ending ends both: the cut drops the connection.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// A PATCH cut after part of its body: the bytes read for it are offered to
/// the hash again when they are sent again (from the server's offset), and
/// must be taken once.
#[tokio::test]
async fn a_cut_patch_sent_again_is_hashed_once() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let (addr, _stop) = server(dir.path(), Some(&public)).await;
    let size = 12 << 20;
    // Inside the second 4 MiB PATCH of the first connection.
    let connections = cutting_proxy(listener, addr, (6 << 20) + 12_345).await;

    let bytes = data(size, 1);
    let file = dir.path().join("source.bin");
    std::fs::write(&file, &bytes).unwrap();
    let client = Client::open(&dir.path().join("state")).unwrap();
    let source = spool_client::source::file_source(&file).unwrap();
    let mut session = client
        .start(target(&public), source.clone(), options(4 << 20))
        .await
        .unwrap();
    let mut events = session.take_events().unwrap();
    spool_client::source::produce_file(&session, &source)
        .await
        .unwrap();
    let id = session.id.clone();
    let done = tokio::time::timeout(Duration::from_secs(60), session.wait())
        .await
        .unwrap()
        .unwrap();
    let mut reconnected = false;
    let mut reported = None;
    while let Ok(e) = events.try_recv() {
        match e {
            Event::Reconnecting { .. } => reconnected = true,
            Event::Complete { sha256, .. } => reported = Some(sha256),
            _ => {}
        }
    }
    assert!(reconnected, "the cut was not seen");
    assert!(connections.load(Ordering::SeqCst) >= 2);
    assert_eq!(done.bytes, size as u64);
    assert_eq!(done.sha256, sha256_hex(&bytes));
    assert_eq!(reported.as_deref(), Some(done.sha256.as_str()));
    let rec = client.journal().get(&id).await.unwrap().unwrap();
    assert_eq!(rec.state, UploadState::Complete);
    assert_eq!(rec.sha256.as_deref(), Some(done.sha256.as_str()));
}

/// A session stopped part-way and resumed by a new one (as after a
/// restart): the new session never reads the bytes the server already has
/// for sending, so they are read at completion; the hash is the whole
/// file's, for a file upload and for appended pieces alike.
#[tokio::test]
async fn a_resumed_upload_reports_the_sha256_of_all_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path(), None).await;
    let base = format!("http://{addr}");

    // A file, stopped once part of it is acknowledged (mid-piece).
    let size = 40 << 20;
    let bytes = data(size, 2);
    let file = dir.path().join("source.bin");
    std::fs::write(&file, &bytes).unwrap();
    let client = Client::open(&dir.path().join("state")).unwrap();
    let source = spool_client::source::file_source(&file).unwrap();
    let session = client
        .start(target(&base), source.clone(), options(256 << 10))
        .await
        .unwrap();
    let id = session.id.clone();
    let mut status = session.status();
    let produce = spool_client::source::produce_file(&session, &source);
    let acked = async {
        status
            .wait_for(|s| s.confirmed >= (3 << 20) + 256 * 1024)
            .await
            .unwrap();
    };
    let (produced, ()) = tokio::join!(produce, acked);
    produced.unwrap();
    session.stop_and_wait().await;
    let rec = client.journal().get(&id).await.unwrap().unwrap();
    assert!(rec.finished);
    assert!(rec.acked > 0 && rec.acked < size as u64, "{}", rec.acked);
    assert_eq!(rec.sha256, None, "the hash is journaled at completion");

    let client = Client::open(&dir.path().join("state")).unwrap();
    let resumed = client.resume(&id, Some(target(&base))).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(60), resumed.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.sha256, sha256_hex(&bytes));
    let rec = client.journal().get(&id).await.unwrap().unwrap();
    assert_eq!(rec.state, UploadState::Complete);
    assert_eq!(rec.sha256.as_deref(), Some(done.sha256.as_str()));

    // Appended pieces: the first two acknowledged, then a new session
    // appends the rest.
    let parts = [data(300_000, 3), data(500_000, 4), data(200_000, 5)];
    let source = SourceRecord::Stream {
        label: dir.path().join("rec.mp4").display().to_string(),
    };
    let session = client
        .start(target(&base), source, options(256 << 10))
        .await
        .unwrap();
    let id = session.id.clone();
    for p in &parts[..2] {
        session
            .append(bytes::Bytes::copy_from_slice(p))
            .await
            .unwrap();
    }
    let mut status = session.status();
    status.wait_for(|s| s.confirmed == 800_000).await.unwrap();
    session.stop_and_wait().await;
    let resumed = client.resume(&id, Some(target(&base))).await.unwrap();
    assert_eq!(resumed.status().borrow().state, State::Uploading);
    resumed
        .append(bytes::Bytes::copy_from_slice(&parts[2]))
        .await
        .unwrap();
    resumed.finish().await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(60), resumed.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.sha256, sha256_hex(&parts.concat()));
}

/// A journal written by the previous version: its pieces carry bare
/// SHA-256 hex (no algorithm prefix) and its finished upload the SHA-256
/// `finish` computed. It resumes, verifying those pieces, and completes
/// with the same hash; a piece whose bytes changed stops it.
#[tokio::test]
async fn a_journal_of_the_previous_version_resumes() {
    use spool_client::journal::{OptionsRecord, Piece, TargetRecord};
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path(), None).await;
    let base = format!("http://{addr}");
    let bytes = data(1_000_000, 6);
    let file = dir.path().join("rec.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let state = dir.path().join("state");
    let journal = spool_client::Journal::open(&state).unwrap();
    let record = TargetRecord::OnDemand {
        server: base.clone(),
        token_id: ID.into(),
    };
    let source = SourceRecord::Stream {
        label: file.display().to_string(),
    };
    for (id, piece_len) in [("old-1", 600_000u64), ("old-2", 400_000)] {
        journal
            .insert(id, &record, &source, &OptionsRecord::default(), None)
            .await
            .unwrap();
        let mut start = 0;
        for (seq, len) in [piece_len, 1_000_000 - piece_len].into_iter().enumerate() {
            let range = start as usize..(start + len) as usize;
            let piece = Piece {
                seq: seq as u64,
                path: file.clone(),
                file_offset: start,
                len,
                start,
                digest: sha256_hex(&bytes[range]),
            };
            journal.add_piece(id, &piece).await.unwrap();
            start += len;
        }
        journal.set_finished(id).await.unwrap();
    }
    // What the previous version's `finish` wrote (stale or not, it is
    // computed again).
    journal
        .call(|c| c.execute("UPDATE uploads SET sha256 = 'stale' WHERE id = 'old-1'", []))
        .await
        .unwrap();
    let client = Client::new(journal);
    let done = client
        .resume("old-1", Some(target(&base)))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(done.sha256, sha256_hex(&bytes));
    let rec = client.journal().get("old-1").await.unwrap().unwrap();
    assert_eq!(rec.sha256.as_deref(), Some(done.sha256.as_str()));

    let mut changed = bytes.clone();
    changed[700_000] ^= 0x55;
    std::fs::write(&file, &changed).unwrap();
    let Err(e) = client.resume("old-2", Some(target(&base))).await else {
        panic!("a changed piece was not noticed");
    };
    assert!(
        matches!(e, spool_client::ClientError::LocalDataChanged(_)),
        "{e}"
    );
    let rec = client.journal().get("old-2").await.unwrap().unwrap();
    assert_eq!(rec.state, UploadState::Failed);
}
