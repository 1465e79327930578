//! Where the app sends recordings besides its embedded server: a remote
//! Spool server set in the settings (its secret kept out of files) and any
//! TUS endpoint (the reference @tus/server).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn settings_send_uploads_to_a_remote_server_and_keep_the_secret_out_of_files() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("server"), 0, &[]);
    let app = App::new(dir.path(), None);
    let (driver, s) = app.launch(1).await;

    let open = s.testid("settings-button").await;
    s.click(&open).await;
    let url = s.testid("settings-server-url").await;
    let id = s.testid("settings-token-id").await;
    let secret = s.testid("settings-token-secret").await;
    let save = s.testid("settings-save").await;
    // A bad address is refused with a clear message; nothing is saved.
    s.type_text(&url, "not a url").await;
    s.type_text(&id, TOKEN_ID).await;
    s.type_text(&secret, TOKEN_SECRET).await;
    s.click(&save).await;
    let message = s.testid("settings-message").await;
    let shown = s
        .wait_for("the settings error", Duration::from_secs(10), async |s| {
            Some(s.text(&message).await).filter(|t| !t.is_empty())
        })
        .await;
    assert!(shown.contains("server URL"), "{shown}");
    assert_eq!(
        s.attr(&message, "data-code").await.as_deref(),
        Some("ERR_INVALID_SETTINGS")
    );
    assert!(!app.data.join("settings.json").exists());

    s.type_text(&url, &server.base).await;
    s.type_text(&secret, TOKEN_SECRET).await;
    s.click(&save).await;
    s.wait_for(
        "the settings to save",
        Duration::from_secs(10),
        async |_| app.data.join("settings.json").exists().then_some(()),
    )
    .await;

    record(&s).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop(&s).await;
    let link = share_link(&s, Duration::from_secs(60)).await;
    assert!(
        link.starts_with(&server.base),
        "{link} is on {}",
        server.base
    );
    let asset = asset_of(&link);
    assert_stored(
        &server.base,
        &basic_auth(),
        &asset,
        &local_recording(&app.data),
    )
    .await;
    app.quit(driver, s).await;

    // The secret is in no file the app wrote (settings, journal, logs).
    for entry in walk(&app.data) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes
                .windows(TOKEN_SECRET.len())
                .any(|w| w == TOKEN_SECRET.as_bytes()),
            "the token secret leaked into {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_none_or(|x| x != "mp4") {
            out.push(p);
        }
    }
    out
}
#[tokio::test(flavor = "multi_thread")]
async fn records_to_any_tus_endpoint_the_reference_node_server() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let tus = node_tus(&dir.path().join("tus-store"));
    let app = App::new(dir.path(), None);
    let (driver, s) = app.launch(1).await;

    let open = s.testid("settings-button").await;
    s.click(&open).await;
    let endpoint = s.testid("settings-endpoint-url").await;
    s.type_text(&endpoint, &tus.endpoint()).await;
    let destination = s.testid("settings-destination").await;
    assert_eq!(s.prop(&destination, "value").await, "endpoint");
    let save = s.testid("settings-save").await;
    s.click(&save).await;
    s.wait_for(
        "the settings to save",
        Duration::from_secs(10),
        async |_| app.data.join("settings.json").exists().then_some(()),
    )
    .await;

    record(&s).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop(&s).await;
    // @tus/server has no share page: the link is the upload's URL.
    let link = share_link(&s, Duration::from_secs(60)).await;
    assert!(link.starts_with(&tus.endpoint()), "{link}");
    let local = std::fs::read(local_recording(&app.data)).unwrap();
    assert_eq!(tus.stored_sha(&link), sha256_hex(&local));

    // A plain TUS endpoint keeps no titles: a rename is Spool's alone, and
    // the window says so.
    let rename = s
        .find("[data-testid=\"history-item\"] [data-testid=\"history-rename\"]")
        .await;
    s.click(&rename).await;
    let input = s.testid("history-rename-input").await;
    s.type_text(&input, "Only here").await;
    s.click(&s.testid("history-rename-save").await).await;
    s.wait_for("the local rename", Duration::from_secs(10), async |s| {
        let m = s.testid("history-message").await;
        (s.attr(&m, "data-on-server").await.as_deref() == Some("local")).then_some(())
    })
    .await;
    let title = s
        .find("[data-testid=\"history-item\"] [data-testid=\"history-title\"]")
        .await;
    assert_eq!(s.text(&title).await, "Only here");

    // Delete terminates the upload there (a TUS DELETE of its URL).
    click_delete(&s).await;
    history_is_empty(&s, Duration::from_secs(10)).await;
    let message = s.testid("history-message").await;
    assert_eq!(
        s.attr(&message, "data-on-server").await.as_deref(),
        Some("deleted")
    );
    let head = reqwest::Client::new()
        .head(&link)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert!(
        head == 404 || head == 410,
        "HEAD of the deleted upload: {head}"
    );
    assert!(
        !tus.dir.join(upload_id(&link)).exists(),
        "its bytes are gone"
    );
    app.quit(driver, s).await;
}
