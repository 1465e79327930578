//! tus-js-client (npm) in its IETF draft mode, `protocol: 'ietf-draft-05'`
//! (interop version 6), against `spool serve`: a file read as a Node stream
//! and a Buffer, the first chunk sent with the creation (after the server's
//! `104`), and an upload killed with kill -9 and resumed from tus-js-client's
//! `FileUrlStorage`. The peer (`tests/peers/tus_js_ietf.mjs`) reports every
//! request and answer, so the tests check the wire as well as the bytes.

use serde_json::Value;

use super::*;

const MIB: usize = 1024 * 1024;

/// `tus_js_ietf.mjs SOURCE …` against `server` (`source`: `path` or `buffer`;
/// a `chunk` of 0 sends the whole file in one request).
fn tus_js_ietf(
    server: &SpoolServer,
    source: &str,
    file: &std::path::Path,
    chunk: usize,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = node("tus_js_ietf.mjs");
    cmd.args([
        source,
        &server.endpoint(),
        file.to_str().unwrap(),
        &chunk.to_string(),
        &basic_auth(),
    ])
    .args(extra);
    cmd
}

/// Runs the peer to its end; its events, checked as every draft-05 run's
/// must be.
fn upload(
    server: &SpoolServer,
    source: &str,
    file: &std::path::Path,
    chunk: usize,
    extra: &[&str],
) -> Vec<Value> {
    let (status, lines) = Proc::spawn(tus_js_ietf(server, source, file, chunk, extra))
        .finish(Duration::from_secs(120));
    assert!(
        status.success(),
        "tus-js-client ({source} {extra:?}) failed: {lines:?}\nserver log:\n{}",
        server.log()
    );
    let events = json_lines(&lines);
    check_wire(&events);
    events
}

/// What draft-05 mode sends and hears on every exchange: interop version 6
/// and no TUS header out, the version echoed back, appends labelled
/// `application/partial-upload` and answered with their offset.
fn check_wire(events: &[Value]) {
    for r in of(events, "request", None) {
        assert_eq!(r["interop"], "6", "{r}");
        assert_eq!(r["tus"], false, "draft mode sends no Tus-Resumable: {r}");
    }
    for r in of(events, "request", Some("PATCH")) {
        assert_eq!(r["content_type"], "application/partial-upload", "{r}");
        assert!(r["offset"].is_u64(), "{r}");
    }
    for r in of(events, "response", None) {
        assert_eq!(r["interop"], "6", "every answer names its version: {r}");
        if r["method"] != "HEAD" {
            assert!(r["offset"].is_u64(), "{r}");
        }
    }
}

/// The events of one kind (`request`, `response`, …), of one method if given.
fn of<'a>(events: &'a [Value], kind: &str, method: Option<&str>) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && method.is_none_or(|m| e["method"] == m))
        .collect()
}

fn success(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| e["event"] == "success")
        .unwrap_or_else(|| panic!("no success event: {events:?}"))
}

/// The `Upload-Complete` values of the run's PATCHes, in order.
fn patch_completes(events: &[Value]) -> Vec<&str> {
    of(events, "request", Some("PATCH"))
        .iter()
        .map(|r| r["complete"].as_str().unwrap())
        .collect()
}

/// The upload at `url` is complete as the draft sees it (HEAD), holds
/// exactly the source's bytes, and its asset has left `uploading` with the
/// file's name.
async fn assert_complete(server: &SpoolServer, url: &str, sha: &str, size: usize) {
    let head = reqwest::Client::new()
        .head(url)
        .header("upload-draft-interop-version", "6")
        .send()
        .await
        .unwrap();
    let h = head.headers();
    let field = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(head.status(), 204, "{h:?}");
    assert_eq!(field("upload-complete").as_deref(), Some("?1"), "{h:?}");
    assert_eq!(field("upload-offset"), Some(size.to_string()), "{h:?}");
    assert_eq!(field("upload-length"), Some(size.to_string()), "{h:?}");
    let asset = field("spool-asset-id").expect("the upload names its asset");
    assert_eq!(stored_sha(url).await, sha, "stored bytes of {url}");
    let view = server.asset(&asset).await;
    assert_ne!(view["status"], "uploading", "{view}");
    assert!(all_bytes_in(&view), "{view}");
    // From the tus-style Upload-Metadata tus-js-client sends in draft mode.
    assert_eq!(view["metadata"]["filename"], "source.bin", "{view}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tus_js_client_draft_05_uploads_a_path_stream_and_a_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let file = dir.path().join("source.bin");
    let size = 5 * MIB + 4321;
    let sha = random_file(&file, size, 11);

    // An fs.ReadStream by path, 1 MiB chunks: careful creation (an empty
    // `?0` POST with the length), then six appends.
    let events = upload(&server, "path", &file, MIB, &[]);
    let post = of(&events, "request", Some("POST"));
    assert_eq!(post.len(), 1);
    assert_eq!(post[0]["complete"], "?0");
    assert_eq!(post[0]["length"], size.to_string());
    // tus-js-client 4.3.1's path source says `done` only for a chunk that
    // covers the whole file, so even the last append says `?0` (fixed
    // upstream after 4.3.1): the server completes the upload because its
    // declared length is reached. Should this fail after an upgrade, the
    // `?1` path is what this case exercises now.
    assert_eq!(patch_completes(&events), vec!["?0"; 6]);
    let last = of(&events, "response", Some("PATCH"))
        .pop()
        .unwrap()
        .clone();
    assert_eq!(last["offset"], size as u64);
    assert_eq!(
        last["complete"], "?1",
        "the server says it completed: {last}"
    );
    assert_complete(
        &server,
        success(&events)["url"].as_str().unwrap(),
        &sha,
        size,
    )
    .await;

    // A Buffer, 2 MiB chunks: the last append says `?1`.
    let events = upload(&server, "buffer", &file, 2 * MIB, &[]);
    assert_eq!(patch_completes(&events), vec!["?0", "?0", "?1"]);
    assert_complete(
        &server,
        success(&events)["url"].as_str().unwrap(),
        &sha,
        size,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tus_js_client_draft_05_uploads_data_during_creation() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let file = dir.path().join("source.bin");
    let size = 3 * MIB + 777;
    let sha = random_file(&file, size, 12);

    // A Buffer in 1 MiB chunks, the first one on the POST (`?0`): the server
    // announces the upload with a 104 before reading that body, which
    // tus-js-client ignores; the 201 names the same upload and the offset.
    let events = upload(&server, "buffer", &file, MIB, &["--with-data"]);
    let post = of(&events, "request", Some("POST"));
    assert_eq!(post.len(), 1);
    assert_eq!(post[0]["complete"], "?0");
    assert_eq!(post[0]["content_type"], "application/partial-upload");
    let created = of(&events, "response", Some("POST"))[0].clone();
    assert_eq!(created["status"], 201);
    assert_eq!(created["offset"], MIB as u64);
    let interim = of(&events, "information", Some("POST"));
    assert_eq!(interim.len(), 1, "one 104 per creation: {events:?}");
    assert_eq!(interim[0]["status"], 104);
    assert_eq!(interim[0]["interop"], "6");
    assert_eq!(interim[0]["location"], created["location"]);
    assert_eq!(patch_completes(&events), vec!["?0", "?0", "?1"]);
    assert_complete(
        &server,
        success(&events)["url"].as_str().unwrap(),
        &sha,
        size,
    )
    .await;

    // A path stream in one request: the POST carries all of it with `?1`
    // and its 201 is the final answer; no append follows.
    let events = upload(&server, "path", &file, 0, &["--with-data"]);
    let post = of(&events, "request", Some("POST"));
    assert_eq!(post[0]["complete"], "?1");
    let created = of(&events, "response", Some("POST"))[0].clone();
    assert_eq!(created["status"], 201);
    assert_eq!(created["offset"], size as u64);
    assert_eq!(created["complete"], "?1");
    assert_eq!(of(&events, "information", Some("POST")).len(), 1);
    assert!(of(&events, "request", Some("PATCH")).is_empty());
    assert_complete(
        &server,
        success(&events)["url"].as_str().unwrap(),
        &sha,
        size,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tus_js_client_draft_05_resumes_from_its_url_storage_after_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let file = dir.path().join("source.bin");
    let size = 24 * MIB;
    let chunk = MIB as u64;
    let sha = random_file(&file, size, 13);
    let storage = dir.path().join("tus-js-urls.json");
    let storage_arg = ["--storage", storage.to_str().unwrap()];

    // Killed in the middle of an append, once 4 MiB are acknowledged: the
    // progress it reports inside a chunk is of bytes the server has not
    // acknowledged yet.
    let mut first = Proc::spawn(tus_js_ietf(&server, "path", &file, MIB, &storage_arg));
    first.wait_line(Duration::from_secs(60), |l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(|v| v["event"] == "progress")
            .and_then(|v| v["sent"].as_u64())
            .is_some_and(|s| s > 4 * chunk && s % chunk != 0)
    });
    first.kill9();
    let seen = json_lines(&first.seen);
    let acknowledged = of(&seen, "chunk", None)
        .iter()
        .filter_map(|e| e["offset"].as_u64())
        .max()
        .unwrap();
    let url = of(&seen, "request", Some("PATCH"))[0]["url"]
        .as_str()
        .unwrap()
        .to_owned();

    // The second run finds the upload by the file's fingerprint and resumes
    // it (HEAD, then appends from the offset the server holds): no new
    // creation, the same URL.
    let events = upload(&server, "path", &file, MIB, &storage_arg);
    let resuming = events.iter().find(|e| e["event"] == "resuming").unwrap();
    assert_eq!(resuming["url"], url.as_str());
    assert!(
        of(&events, "request", Some("POST")).is_empty(),
        "{events:?}"
    );
    let first_request = of(&events, "request", None)[0];
    assert_eq!(first_request["method"], "HEAD", "{first_request}");
    assert_eq!(first_request["url"], url.as_str(), "{first_request}");
    let head = of(&events, "response", Some("HEAD"))[0];
    let done = success(&events);
    assert_eq!(done["url"], url.as_str());
    let resumed_from = done["resumed_from"].as_u64().unwrap();
    assert_eq!(Some(resumed_from), head["offset"].as_u64(), "{events:?}");
    assert!(
        resumed_from >= acknowledged && resumed_from < size as u64,
        "resumed from {resumed_from}, acknowledged {acknowledged}"
    );
    assert_complete(&server, &url, &sha, size).await;
}
