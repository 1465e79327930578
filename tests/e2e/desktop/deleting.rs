//! Delete in the history: the recording goes from the history, the disk
//! (when asked) and the server it was uploaded to; with the server down the
//! item stays "deleting" — across a relaunch too — until the server is back
//! and has deleted it.

use std::time::Duration;

use super::*;

/// What the server says of `asset` now: the asset API's status code and
/// `status` field, and the share media route's status code.
async fn on_server(base: &str, auth: &str, asset: &str) -> (u16, String, u16) {
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{base}/v1/assets/{asset}"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let meta: serde_json::Value = resp.json().await.unwrap_or_default();
    let media = http
        .get(format!("{base}/v/{asset}/media"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    (
        code,
        meta["status"].as_str().unwrap_or_default().to_owned(),
        media,
    )
}

/// The server deleted `asset`: the API says so (or no longer knows it), and
/// its share page no longer plays it.
async fn assert_deleted_on_server(base: &str, auth: &str, asset: &str) {
    let (code, status, media) = on_server(base, auth, asset).await;
    assert!(
        code == 404 || status == "deleted",
        "the asset API answers {code} {status:?}"
    );
    assert_eq!(media, 404, "the share page's media is gone");
    let page = reqwest::get(format!("{base}/v/{asset}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("share-video"),
        "the share page no longer plays it: {page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_recording_deletes_it_here_on_disk_and_on_the_embedded_server() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), None);
    let (driver, s) = app.launch(1).await;
    let link = record_a_clip(&s, 2).await;
    let asset = asset_of(&link);
    let (base, auth) = embedded_server(&app.data);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (code, status, media) = loop {
        let r = on_server(&base, &auth, &asset).await;
        if r.1 != "processing" || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((code, status.as_str(), media), (200, "ready", 200));
    let local = local_recording(&app.data);

    click_delete(&s).await;
    history_is_empty(&s, Duration::from_secs(10)).await;
    assert!(!local.exists(), "the local file is deleted");
    // The window says it is gone from the server too…
    let message = s.testid("history-message").await;
    assert_eq!(
        s.attr(&message, "data-on-server").await.as_deref(),
        Some("deleted")
    );
    let said = s.text(&message).await;
    assert!(said.contains("on the server"), "{said}");
    // …and the server agrees.
    assert_deleted_on_server(&base, &auth, &asset).await;
    // The main view no longer offers its link.
    s.wait_for("the link to go", Duration::from_secs(5), async |s| {
        let a = s.testid("share-link").await;
        s.attr(&a, "href").await.is_none().then_some(())
    })
    .await;
    app.quit(driver, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_while_the_server_is_down_is_kept_and_retried_until_the_server_deletes_it() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server_data = dir.path().join("server");
    let server = SpoolServer::start(&server_data, port, &[]);
    let base = server.base.clone();
    let app = App::new(dir.path(), Some(&base));
    let (driver, s) = app.launch(1).await;
    let link = record_a_clip(&s, 2).await;
    let asset = asset_of(&link);
    assert!(link.starts_with(&base), "{link}");

    // The server goes away (stopped, as an operator would).
    let SpoolServer { proc, .. } = server;
    proc.sigterm();
    let (status, _) = proc.finish(Duration::from_secs(20));
    assert!(status.success(), "spool serve stopped: {status}");

    click_delete(&s).await;
    let item = history_state(&s, &asset, "deleting", Duration::from_secs(15)).await;
    let message = s.testid("history-message").await;
    assert_eq!(
        s.attr(&message, "data-on-server").await.as_deref(),
        Some("deleting")
    );
    // It stays "deleting" while retries fail, and says why.
    let why = s
        .wait_for("the retry's error", Duration::from_secs(15), async |s| {
            let e = s
                .find_all(&format!(
                    "[data-testid=\"history-item\"][data-asset-id=\"{asset}\"] [data-testid=\"history-error\"]"
                ))
                .await
                .into_iter()
                .next()?;
            Some(s.text(&e).await)
        })
        .await;
    assert!(why.contains("unreachable"), "{why}");
    assert_eq!(
        s.attr(&item, "data-state").await.as_deref(),
        Some("deleting")
    );

    // Not forgotten by a relaunch either.
    app.quit(driver, s).await;
    let (driver, s) = app.launch(2).await;
    history_state(&s, &asset, "deleting", Duration::from_secs(15)).await;

    // The server comes back on its address: the next retry deletes it there
    // and only then does the item leave the history.
    let server = SpoolServer::start(&server_data, port, &[]);
    assert_eq!(server.base, base);
    let back = std::time::Instant::now();
    history_is_empty(&s, Duration::from_secs(60)).await;
    eprintln!(
        "deleted on the server {} ms after it came back",
        back.elapsed().as_millis()
    );
    assert_deleted_on_server(&base, &basic_auth(), &asset).await;
    app.quit(driver, s).await;
}
