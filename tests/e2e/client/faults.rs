//! Faults injected between `spool upload` and `spool serve` by the proxy:
//! closed and reset connections, a stall, a throttled link, a burst of 5xx
//! answers, a body-buffering middlebox, a corrupted byte. Each costs at
//! most one chunk and the stored bytes equal the source, in TUS and (the
//! `draft_` cases) in the IETF draft.

use spool_e2e::proxy::{Action, Seen};

use super::*;

/// `spool upload --protocol tus` of a random file through a proxy with
/// `faults`: checks the upload completed with the source's bytes, that
/// `expected_faults` fired and cost at most a chunk each, that a fault
/// shows as reconnecting, and that no request carried the draft's header;
/// returns the upload's stdout lines.
async fn fault_case(faults: Faults, expected_faults: usize, extra: &[&str]) -> Vec<String> {
    let extra = [&["--protocol", "tus"], extra].concat();
    let (lines, seen) = fault_run(&Backend::Fs, faults, expected_faults, &extra).await;
    assert!(seen.iter().all(|r| r.interop.is_none()), "{seen:?}");
    lines
}

/// [`fault_case`] against `spool serve --store s3`.
async fn s3_fault_case(faults: Faults, expected_faults: usize, extra: &[&str]) {
    let extra = [&["--protocol", "tus"], extra].concat();
    fault_run(&Backend::s3(), faults, expected_faults, &extra).await;
}

/// [`fault_case`] against `--store s3 --database-url postgres://…`.
async fn s3_pg_fault_case(faults: Faults, expected_faults: usize, extra: &[&str]) {
    let extra = [&["--protocol", "tus"], extra].concat();
    fault_run(&Backend::s3_pg(), faults, expected_faults, &extra).await;
}

/// [`fault_case`] with `--protocol ietf`, which checks instead that every
/// request (the retried ones included) spoke the draft.
async fn draft_fault_case(faults: Faults, expected_faults: usize, extra: &[&str]) -> Vec<String> {
    let extra = [&["--protocol", "ietf"], extra].concat();
    let (lines, seen) = fault_run(&Backend::Fs, faults, expected_faults, &extra).await;
    // The on-demand POST is Spool's API, not the upload protocol.
    let upload: Vec<&Seen> = seen.iter().filter(|r| r.method != "POST").collect();
    assert!(upload.iter().any(|r| r.method == "PATCH"), "{seen:?}");
    assert!(upload.iter().all(|r| r.is_draft()), "{upload:?}");
    lines
}

/// [`fault_case`]'s run; also returns every request the proxy saw.
async fn fault_run(
    backend: &Backend,
    faults: Faults,
    expected_faults: usize,
    extra: &[&str],
) -> (Vec<String>, Vec<Seen>) {
    let dir = tempfile::tempdir().unwrap();
    let (server, proxy) = server_on_behind_proxy(backend, dir.path(), faults).await;
    let file = dir.path().join("source.bin");
    let sha = random_file(&file, SIZE, 7);
    let target = server_args(&proxy.url());
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let mut args = vec!["--chunk-size", "8388608", "--stall-timeout", "5"];
    args.extend_from_slice(extra);
    let (status, lines) = Proc::spawn(spool_upload(
        &file,
        &dir.path().join("state"),
        &target,
        &args,
    ))
    .finish(Duration::from_secs(300));
    assert!(status.success(), "spool upload failed: {lines:?}");
    let complete = check_events(&lines);
    assert_eq!(complete["sha256"], sha.as_str());
    assert_eq!(complete["bytes"], SIZE as u64);
    assert!(complete["share_url"].as_str().unwrap().contains("/v/"));
    assert!(complete["asset_id"].is_string());
    let stored = Tus::default()
        .get(&rebase(
            complete["upload_url"].as_str().unwrap(),
            &server.base,
        ))
        .await;
    assert_eq!(
        sha256_hex(&stored),
        sha,
        "stored bytes differ from the source"
    );
    assert_eq!(
        proxy.stats.fired.load(std::sync::atomic::Ordering::Relaxed),
        expected_faults,
        "faults fired"
    );
    let sent = proxy
        .stats
        .body_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let resent = sent.saturating_sub(SIZE as u64);
    assert!(
        resent <= expected_faults as u64 * CHUNK,
        "{resent} bytes sent twice for {expected_faults} faults"
    );
    let reconnects = json_lines(&lines)
        .iter()
        .filter(|e| e["event"] == "reconnecting")
        .count();
    assert!(
        reconnects >= expected_faults.min(1),
        "a fault must show as reconnecting: {lines:?}"
    );
    (lines, proxy.stats.requests())
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_closed_mid_body_costs_one_chunk_each() {
    fault_case(
        Faults {
            triggers: vec![(30_000_000, Action::Close), (70_000_000, Action::Close)],
            ..Faults::default()
        },
        2,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_pg_connection_closed_mid_body_costs_one_chunk_each() {
    s3_pg_fault_case(
        Faults {
            triggers: vec![(30_000_000, Action::Close), (70_000_000, Action::Close)],
            ..Faults::default()
        },
        2,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_connection_closed_mid_body_costs_one_chunk_each() {
    s3_fault_case(
        Faults {
            triggers: vec![(30_000_000, Action::Close), (70_000_000, Action::Close)],
            ..Faults::default()
        },
        2,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_reset_costs_one_chunk() {
    fault_case(
        Faults {
            triggers: vec![(45_000_000, Action::Reset)],
            ..Faults::default()
        },
        1,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_30_second_stall_is_cut_and_recovered() {
    fault_case(
        Faults {
            triggers: vec![(50_000_000, Action::Stall(Duration::from_secs(30)))],
            ..Faults::default()
        },
        1,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_link_completes_without_resending() {
    fault_case(
        Faults {
            throttle_bps: Some(40_000_000),
            ..Faults::default()
        },
        0,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_5xx_answers_is_retried() {
    let lines = fault_case(
        Faults {
            burst_5xx: Some((3, 4)),
            ..Faults::default()
        },
        4,
        &[],
    )
    .await;
    assert_parsed_503(&lines);
}

/// The client read the proxy's `{"code","message"}` answer, not a cut body.
fn assert_parsed_503(lines: &[String]) {
    let events = json_lines(lines);
    let parsed = events
        .iter()
        .filter(|e| e["event"] == "reconnecting")
        .filter(|e| {
            e["error"]
                .as_str()
                .is_some_and(|m| m.contains("503 ERR_INTERNAL: injected by the proxy"))
        })
        .count();
    assert!(
        parsed >= 1,
        "the injected 503's code and message: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_buffering_proxy_cut_mid_chunk_costs_that_chunk() {
    fault_case(
        Faults {
            buffer_bodies: true,
            triggers: vec![(53_000_000, Action::Close)],
            ..Faults::default()
        },
        1,
        &[],
    )
    .await;
}

/// On S3 a checksummed chunk is staged in memory and written only once
/// verified.
#[tokio::test(flavor = "multi_thread")]
async fn on_s3_a_corrupted_byte_is_caught_by_the_checksum_and_resent() {
    s3_fault_case(
        Faults {
            triggers: vec![(40_000_000, Action::Corrupt)],
            ..Faults::default()
        },
        1,
        &["--checksum", "sha256"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_byte_is_caught_by_the_checksum_and_resent() {
    fault_case(
        Faults {
            triggers: vec![(40_000_000, Action::Corrupt)],
            ..Faults::default()
        },
        1,
        &["--checksum", "sha256"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn draft_connection_closed_mid_body_costs_one_chunk_each() {
    draft_fault_case(
        Faults {
            triggers: vec![(30_000_000, Action::Close), (70_000_000, Action::Close)],
            ..Faults::default()
        },
        2,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn draft_connection_reset_costs_one_chunk() {
    draft_fault_case(
        Faults {
            triggers: vec![(45_000_000, Action::Reset)],
            ..Faults::default()
        },
        1,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn draft_a_30_second_stall_is_cut_and_recovered() {
    draft_fault_case(
        Faults {
            triggers: vec![(50_000_000, Action::Stall(Duration::from_secs(30)))],
            ..Faults::default()
        },
        1,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn draft_a_burst_of_5xx_answers_is_retried() {
    let lines = draft_fault_case(
        Faults {
            burst_5xx: Some((3, 4)),
            ..Faults::default()
        },
        4,
        &[],
    )
    .await;
    assert_parsed_503(&lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn draft_a_corrupted_byte_is_caught_by_the_digest_and_resent() {
    draft_fault_case(
        Faults {
            triggers: vec![(40_000_000, Action::Corrupt)],
            ..Faults::default()
        },
        1,
        &["--checksum", "sha256"],
    )
    .await;
}
