//! `--protocol`: against Spool's server `auto` (the default) speaks the
//! IETF draft, on-demand and through the creation endpoint alike, and `tus`
//! never sends the draft's header; against @tus/server, which speaks only
//! TUS, `ietf` fails clearly and `auto` falls back. A draft upload killed
//! with -9 resumes in the draft. The proxy's record of each request tells
//! which protocol it spoke.

use spool_e2e::proxy::Seen;

use super::*;

/// `spool upload` of `file` to `target` with `extra`; the complete event.
fn upload_ok(file: &Path, state: &Path, target: &[&str], extra: &[&str]) -> serde_json::Value {
    let (status, lines) =
        Proc::spawn(spool_upload(file, state, target, extra)).finish(Duration::from_secs(120));
    assert!(status.success(), "{extra:?}: {lines:?}");
    check_events(&lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_speaks_the_draft_to_spool_and_tus_never_sends_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let (server, proxy) = server_behind_proxy(dir.path(), Faults::default()).await;
    let file = dir.path().join("talk.mp4");
    let sha = random_file(&file, 3_000_000, 21);
    let on_demand = server_args(&proxy.url());
    let on_demand: Vec<&str> = on_demand.iter().map(String::as_str).collect();
    let endpoint = format!("{}/v1/uploads", proxy.url());
    let endpoint = [
        "--endpoint",
        &endpoint,
        "--token-id",
        TOKEN_ID,
        "--token-secret",
        TOKEN_SECRET,
    ];
    let chunks = ["--chunk-size", "1048576"];
    let stored = |c: &serde_json::Value| {
        let url = rebase(c["upload_url"].as_str().unwrap(), &server.base);
        async move { sha256_hex(&Tus::default().get(&url).await) }
    };
    // Each run's requests, as the proxy saw them.
    let mut seen = 0;
    let mut since = |proxy: &FaultProxy| -> Vec<Seen> {
        let all = proxy.stats.requests();
        let new = all[seen..].to_vec();
        seen = all.len();
        new
    };

    for (i, (target, protocol)) in [
        (&on_demand[..], None),
        (&on_demand[..], Some("auto")),
        (&endpoint[..], Some("auto")),
    ]
    .into_iter()
    .enumerate()
    {
        let args = [
            &chunks[..],
            &protocol.map_or(vec![], |p| vec!["--protocol", p]),
        ]
        .concat();
        let c = upload_ok(&file, &dir.path().join(format!("state-{i}")), target, &args);
        assert_eq!(stored(&c).await, sha);
        let requests = since(&proxy);
        // The on-demand POST is Spool's own API; a creation endpoint's POST
        // is the draft's creation.
        let upload: Vec<&Seen> = requests
            .iter()
            .filter(|r| r.method != "POST" || target == endpoint)
            .collect();
        assert!(upload.iter().all(|r| r.is_draft()), "{args:?}: {upload:?}");
        let patches = upload.iter().filter(|r| r.method == "PATCH").count();
        assert!(patches >= 3, "{args:?}: {upload:?}");
        assert!(upload.iter().any(|r| r.method == "OPTIONS"), "{upload:?}");
        // The creation answer named the asset, as the on-demand one does.
        assert!(c["share_url"].as_str().unwrap().contains("/v/"), "{c}");
        let asset = server.asset(c["asset_id"].as_str().unwrap()).await;
        assert_eq!(asset["length"], 3_000_000, "{asset}");
    }

    for target in [&on_demand[..], &endpoint[..]] {
        let args = [&chunks[..], &["--protocol", "tus"]].concat();
        let state = dir.path().join(format!("state-tus-{}", target[0]));
        let c = upload_ok(&file, &state, target, &args);
        assert_eq!(stored(&c).await, sha);
        let requests = since(&proxy);
        assert!(requests.iter().all(|r| r.interop.is_none()), "{requests:?}");
        assert!(
            requests
                .iter()
                .filter(|r| r.method == "PATCH")
                .all(|r| r.content_type.as_deref() == Some("application/offset+octet-stream")),
            "{requests:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ietf_against_a_tus_only_server_fails_clearly_and_auto_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tus-store");
    let tus = node_tus(&store);
    let file = dir.path().join("source.bin");
    let sha = random_file(&file, 5_000_000, 22);
    let endpoint = tus.endpoint();
    let target = ["--endpoint", endpoint.as_str()];

    let out = spool_upload(
        &file,
        &dir.path().join("state-ietf"),
        &target,
        &["--protocol", "ietf"],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Exit 7: the server refused the request (see the README's table).
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("spool: ERR_UNSUPPORTED_VERSION"), "{err}");
    assert!(
        err.contains("does not speak the IETF resumable-upload draft")
            && err.contains("--protocol tus or auto"),
        "{err}"
    );
    assert!(!err.contains("spool resume"), "resuming cannot help: {err}");
    // It asked before creating anything.
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), 0);

    let c = upload_ok(
        &file,
        &dir.path().join("state-auto"),
        &target,
        &["--protocol", "auto"],
    );
    assert_eq!(c["sha256"], sha.as_str());
    assert_eq!(tus.stored_sha(c["upload_url"].as_str().unwrap()), sha);
    drop(tus.proc);
}

#[tokio::test(flavor = "multi_thread")]
async fn draft_kill_9_of_spool_upload_then_resume_sends_nothing_acknowledged_again() {
    let seen = kill_9_then_resume(&["--protocol", "ietf"]).await;
    let upload: Vec<&Seen> = seen.iter().filter(|r| r.method != "POST").collect();
    assert!(upload.iter().all(|r| r.is_draft()), "{upload:?}");
    // The resumed session asked the server (OPTIONS, HEAD) in the draft too.
    let heads = upload.iter().filter(|r| r.method == "HEAD").count();
    assert!(heads >= 1, "{upload:?}");
}
