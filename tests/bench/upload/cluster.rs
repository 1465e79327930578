//! The upload benchmark's scale-out servers — `spool serve` on S3 and
//! PostgreSQL, alone and two behind nginx — and its Stop → link figure: the
//! latency of the PATCH a recorder sends at Stop, the last fragment
//! declaring the upload's length, which is when the share link works.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spool_e2e::cluster::Cluster;
use spool_e2e::*;

use super::{Target, percentile, terminate};

/// One node on its own Garage and PostgreSQL. The node comes first so it
/// is stopped before its engines.
pub fn s3pg(dir: &Path) -> (SpoolServer, Backend) {
    let backend = Backend::s3_pg();
    let srv = SpoolServer::start_on(&backend, &dir.join("spool-s3pg"), 0, &[]);
    (srv, backend)
}

/// Two nodes sharing a Garage and a PostgreSQL behind nginx (round robin),
/// the client talking to nginx itself: the byte-counting proxy the suites
/// put in front would cost throughput no deployment pays.
pub async fn cluster(dir: &Path) -> Cluster {
    // The nodes' logs go beside their data folders, in this one.
    let dir = dir.join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    Cluster::start_with(&dir, 2, &[], false).await
}

/// The cluster as a row: nginx's endpoint, both nodes' processes (their
/// RSS and CPU are summed; nginx's are not counted, like Garage's).
pub fn cluster_target(c: &Cluster) -> Target {
    Target {
        name: "spool s3+PG, 2 nodes + nginx",
        endpoint: format!("{}/v1/uploads", c.url()),
        auth: Some(basic_auth()),
        pids: c
            .nodes
            .iter()
            .flatten()
            .map(|n| n.proc.child.id())
            .collect(),
    }
}

/// A recorder's fragment: about a second of 1080p screen.
const FRAGMENT: usize = 1_400_000;
/// Fragments sent before Stop.
const BEFORE_STOP: usize = 4;

/// `n` uploads to `t`, one after another on an otherwise idle server, as
/// the recorder makes them: created with a deferred length, then
/// [`BEFORE_STOP`] fragments, then the last, declaring the length. Returns
/// that last PATCH's latency (sent to its 204) for each.
pub async fn stop_to_link(http: &reqwest::Client, t: &Target, n: usize) -> Vec<Duration> {
    let auth = t.auth.as_deref().expect("a Spool server");
    let data = Bytes::from(random_bytes(FRAGMENT * (BEFORE_STOP + 1), 7));
    let mut last = Vec::with_capacity(n);
    for _ in 0..n {
        let resp = http
            .post(&t.endpoint)
            .header("tus-resumable", "1.0.0")
            .header("upload-defer-length", "1")
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{} creation", t.name);
        let loc = resp.headers()["location"].to_str().unwrap();
        let url = reqwest::Url::parse(&t.endpoint)
            .unwrap()
            .join(loc)
            .unwrap()
            .to_string();
        for (i, offset) in (0..data.len()).step_by(FRAGMENT).enumerate() {
            let end = offset + FRAGMENT;
            let mut req = http
                .patch(&url)
                .header("tus-resumable", "1.0.0")
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", offset)
                .header("authorization", auth);
            let stop = i == BEFORE_STOP;
            if stop {
                req = req.header("upload-length", data.len());
            }
            let sent = Instant::now();
            let resp = req.body(data.slice(offset..end)).send().await.unwrap();
            let took = sent.elapsed();
            assert_eq!(resp.status(), 204, "{} PATCH", t.name);
            assert_eq!(resp.headers()["upload-offset"], end.to_string().as_str());
            if stop {
                last.push(took);
            }
        }
        terminate(http, t, &url).await;
    }
    last
}

/// Prints `stop_to_link`'s p50 and p95 for each of `rows`.
pub fn print_stop(n: usize, rows: &mut [(&str, Vec<Duration>)]) {
    println!(
        "\nStop → link: {n} uploads one at a time, each {BEFORE_STOP} fragments of {:.1} MB then the last declaring the length; that last PATCH, sent → 204",
        FRAGMENT as f64 / 1e6
    );
    println!("{:<32} {:>10} {:>10}", "server", "p50 (ms)", "p95 (ms)");
    for (name, l) in rows.iter_mut() {
        println!(
            "{:<32} {:>10} {:>10}",
            name,
            super::ms(percentile(l, 50.0)),
            super::ms(percentile(l, 95.0)),
        );
    }
}
