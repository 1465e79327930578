//! End-to-end tests of the desktop app as QA drives it: the real
//! spool-desktop binary under Xvfb, through tauri-driver and WebKitWebDriver,
//! by its data-testids — recording the virtual display, uploading while
//! recording (to the embedded server, or a `spool serve` behind a
//! fault-injecting proxy), and checking what the server stored. One app at
//! a time: each records 1280×720 in real time on a two-core machine. The
//! modules under `desktop/` hold the suites about sound (a private
//! PulseAudio server), deleting recordings (here and on the server),
//! launching (one app per data folder, a damaged journal), notifications,
//! and verified updates with the managed policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "desktop/audio.rs"]
mod audio;
#[path = "desktop/controls.rs"]
mod controls;
#[path = "desktop/deleting.rs"]
mod deleting;
#[path = "desktop/destinations.rs"]
mod destinations;
#[path = "desktop/launching.rs"]
mod launching;
#[path = "desktop/network.rs"]
mod network;
#[path = "desktop/notifications.rs"]
mod notifications;
#[path = "desktop/sharing.rs"]
mod sharing;
#[path = "desktop/updates.rs"]
mod updates;

use std::path::{Path, PathBuf};
use std::time::Duration;

use spool_e2e::proxy::{FaultProxy, Faults};
use spool_e2e::webdriver::{Driver, Element, Session, desktop_bin, kill_apps_using};
use spool_e2e::*;

static ONE_APP_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One launch configuration: a display, a data folder, an environment.
struct App {
    x: Xvfb,
    data: PathBuf,
    env: Vec<(String, String)>,
}

impl App {
    fn new(dir: &Path, server: Option<&str>) -> App {
        let x = Xvfb::start(1280, 720);
        x.paint("red");
        let data = dir.join("app");
        let mut env = vec![
            ("DISPLAY".to_owned(), x.display.clone()),
            ("SPOOL_DATA_DIR".to_owned(), data.display().to_string()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
            // Record starts at once (the countdown has its own tests).
            ("SPOOL_COUNTDOWN".to_owned(), "0".to_owned()),
        ];
        if let Some(url) = server {
            env.push(("SPOOL_SERVER_URL".into(), url.into()));
            env.push(("SPOOL_TOKEN_ID".into(), TOKEN_ID.into()));
            env.push(("SPOOL_TOKEN_SECRET".into(), TOKEN_SECRET.into()));
        }
        App { x, data, env }
    }

    async fn launch(&self, n: u32) -> (Driver, Session) {
        std::fs::create_dir_all(&self.data).unwrap();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let log = self.data.with_file_name(format!("tauri-driver-{n}.log"));
        let driver = Driver::start(&env, &log);
        let session = driver.launch(&desktop_bin()).await;
        // Ready once the sources are listed and the history loaded.
        session
            .wait_for(
                "the window to be ready",
                Duration::from_secs(60),
                async |s| {
                    (s.execute("return document.body.dataset.ready === 'true'")
                        .await
                        == true)
                        .then_some(())
                },
            )
            .await;
        (driver, session)
    }

    /// Ends a launch and makes sure no app process of this data folder is
    /// left (WebDriver's session end and tauri-driver's SIGTERM should do it).
    async fn quit(&self, driver: Driver, session: Session) {
        session.quit().await;
        drop(driver);
        kill_apps_using(&self.data);
    }
}

async fn text(s: &Session, id: &str) -> String {
    let e = s.testid(id).await;
    s.text(&e).await
}

async fn status(s: &Session) -> String {
    text(s, "upload-status").await
}

async fn progress(s: &Session) -> (u64, u64) {
    let e = s.testid("upload-progress").await;
    let n = async |name: &str| {
        s.attr(&e, name)
            .await
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (n("data-confirmed").await, n("data-recorded").await)
}

async fn wait_status(s: &Session, word: &str, timeout: Duration) {
    s.wait_for(&format!("upload-status {word:?}"), timeout, async |s| {
        status(s).await.contains(word).then_some(())
    })
    .await;
}

async fn record(s: &Session) {
    let button = s.testid("record-button").await;
    s.click(&button).await;
    wait_status(s, "recording", Duration::from_secs(30)).await;
}

async fn stop(s: &Session) {
    let button = s.testid("stop-button").await;
    assert!(s.enabled(&button).await);
    s.click(&button).await;
}

/// Waits for the share link; returns it.
async fn share_link(s: &Session, timeout: Duration) -> String {
    s.wait_for("the share link", timeout, async |s| {
        let a = s.testid("share-link").await;
        s.attr(&a, "href").await.filter(|h| h.starts_with("http"))
    })
    .await
}

/// The history item of `asset`, waiting up to `timeout` for `state`.
async fn history_state(s: &Session, asset: &str, state: &str, timeout: Duration) -> Element {
    let css = format!(
        "[data-testid=\"history-list\"] [data-testid=\"history-item\"][data-asset-id=\"{asset}\"][data-state=\"{state}\"]"
    );
    s.wait_for(
        &format!("history item {asset} {state}"),
        timeout,
        async |s| s.find_all(&css).await.into_iter().next(),
    )
    .await
}

fn asset_of(share_url: &str) -> String {
    share_url.rsplit('/').next().unwrap().to_owned()
}

fn local_recording(data: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("recordings"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

/// The server's view of `asset` and the original bytes it stored.
async fn server_asset(base: &str, auth: &str, asset: &str) -> (serde_json::Value, Vec<u8>) {
    let http = reqwest::Client::new();
    let meta: serde_json::Value = http
        .get(format!("{base}/v1/assets/{asset}"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes = http
        .get(format!("{base}/v1/assets/{asset}/original"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    (meta, bytes)
}

/// The server says `asset` is ready and holds exactly the bytes of `local`.
async fn assert_stored(base: &str, auth: &str, asset: &str, local: &Path) {
    // Ready follows the last byte within about a second (processing).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (meta, uploaded) = loop {
        let (meta, uploaded) = server_asset(base, auth, asset).await;
        if meta["status"] != "processing" || std::time::Instant::now() > deadline {
            break (meta, uploaded);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(meta["status"], "ready", "{meta}");
    let local_bytes = std::fs::read(local).unwrap();
    assert_eq!(
        sha256_hex(&uploaded),
        sha256_hex(&local_bytes),
        "the server's bytes differ from the local recording ({} vs {} bytes)",
        uploaded.len(),
        local_bytes.len()
    );
}

/// Clicks the first history item's Delete, answering yes to every question
/// (also "delete the local file too?").
async fn click_delete(s: &Session) {
    s.execute("window.confirm = () => true; return true").await;
    let delete = s
        .find("[data-testid=\"history-item\"] [data-testid=\"history-delete\"]")
        .await;
    s.click(&delete).await;
}

/// Waits until the history lists nothing.
async fn history_is_empty(s: &Session, timeout: Duration) {
    s.wait_for("the history to empty", timeout, async |s| {
        s.find_all("[data-testid=\"history-item\"]")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

/// The app's embedded server: its address (from its port file) and the
/// Basic authorization of its credentials.
fn embedded_server(data: &Path) -> (String, String) {
    let server = data.join("server");
    let port = std::fs::read_to_string(server.join("port")).unwrap();
    let creds = std::fs::read_to_string(server.join("credentials")).unwrap();
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, creds.trim())
    );
    (format!("http://127.0.0.1:{}", port.trim()), auth)
}

/// Records about `secs` seconds and waits for the link; the link.
async fn record_a_clip(s: &Session, secs: u64) -> String {
    record(s).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop(s).await;
    let link = share_link(s, Duration::from_secs(60)).await;
    history_state(s, &asset_of(&link), "complete", Duration::from_secs(10)).await;
    link
}

#[tokio::test(flavor = "multi_thread")]
async fn records_the_display_to_the_embedded_server_and_shows_the_link() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), None);
    let (driver, s) = app.launch(1).await;

    let select = s.testid("source-select").await;
    let sources = s
        .execute("return [...document.querySelectorAll('[data-testid=source-select] option')].map(o => o.value)")
        .await;
    assert!(
        sources.as_array().is_some_and(|a| !a.is_empty()),
        "no sources listed: {sources}"
    );
    // A source is selected, and it is one of those listed.
    let selected = s.prop(&select, "value").await;
    assert!(
        selected.as_str().is_some_and(|v| !v.is_empty())
            && sources.as_array().is_some_and(|a| a.contains(&selected)),
        "selected {selected} is not one of {sources}"
    );
    assert_eq!(status(&s).await, "ready");

    record(&s).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    app.x.paint("blue");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let elapsed = text(&s, "elapsed-time").await;
    assert!(elapsed.as_str() >= "00:09", "elapsed {elapsed}");
    // The upload keeps pace while recording: most of it is already confirmed.
    let (confirmed, recorded) = progress(&s).await;
    assert!(recorded > 0 && confirmed > 0, "{confirmed}/{recorded}");
    stop(&s).await;

    let link = share_link(&s, Duration::from_secs(60)).await;
    wait_status(&s, "complete", Duration::from_secs(10)).await;
    let (confirmed, recorded) = progress(&s).await;
    assert_eq!(confirmed, recorded, "everything recorded is confirmed");
    let copy = s.testid("copy-link-button").await;
    s.click(&copy).await;
    // The button says so only when the clipboard took the link.
    s.wait_for("Copied", Duration::from_secs(5), async |s| {
        (s.text(&copy).await == "Copied").then_some(())
    })
    .await;
    let error = s.testid("error-message").await;
    assert_eq!(
        s.prop(&error, "hidden").await,
        true,
        "copying shows no error"
    );

    let asset = asset_of(&link);
    history_state(&s, &asset, "complete", Duration::from_secs(10)).await;

    // The embedded server says the asset is ready and holds the local bytes.
    let (base, auth) = embedded_server(&app.data);
    assert!(link.starts_with(&base), "{link} is served by {base}");
    let local = local_recording(&app.data);
    assert_stored(&base, &auth, &asset, &local).await;
    let d = duration_s(&local);
    assert!((d - 10.0).abs() < 1.5, "recorded {d} s");
    // The share page answers.
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200);

    app.quit(driver, s).await;
}

/// A `spool serve` reached through a proxy that can cut the network.
async fn server_behind_proxy(dir: &Path) -> (SpoolServer, FaultProxy) {
    let proxy = FaultProxy::start_unconnected(Faults::default()).await;
    let server = SpoolServer::start(&dir.join("server"), 0, &["--public-url", &proxy.url()]);
    proxy.set_upstream(server.addr);
    (server, proxy)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_global_shortcuts_start_pause_and_stop_a_recording() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), None);
    let (driver, s) = app.launch(1).await;
    let key = |keys: &str| {
        let ok = std::process::Command::new("xdotool")
            .args(["key", keys])
            .env("DISPLAY", &app.x.display)
            .status()
            .expect("xdotool (scripts/setup.sh installs it)")
            .success();
        assert!(ok, "xdotool failed");
    };
    key("alt+shift+r");
    wait_status(&s, "recording", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Alt+Shift+P pauses and resumes from anywhere.
    key("alt+shift+p");
    wait_status(&s, "paused", Duration::from_secs(10)).await;
    key("alt+shift+p");
    wait_status(&s, "recording", Duration::from_secs(10)).await;
    key("alt+shift+r");
    let link = share_link(&s, Duration::from_secs(60)).await;
    history_state(&s, &asset_of(&link), "complete", Duration::from_secs(10)).await;
    app.quit(driver, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quitting_while_recording_saves_the_recording_and_the_relaunch_uploads_it() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, proxy) = server_behind_proxy(dir.path()).await;
    let app = App::new(dir.path(), Some(&proxy.url()));
    let (driver, s) = app.launch(1).await;
    record(&s).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let asset = s
        .execute("return document.querySelector('[data-testid=history-item][data-state=recording]').dataset.assetId")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    // Offline, then quit (SIGTERM, as a logout does) in the middle of it.
    proxy.set_down(true);
    kill_apps_using(&app.data);
    drop(s);
    drop(driver);

    proxy.set_down(false);
    let (driver, s) = app.launch(2).await;
    history_state(&s, &asset, "complete", Duration::from_secs(60)).await;
    // The quit encoded the last frames into a whole last fragment: the
    // server holds exactly the local file, about 4 s of it.
    let local = local_recording(&app.data);
    assert_stored(&server.base, &basic_auth(), &asset, &local).await;
    let d = duration_s(&local);
    assert!(d > 3.0, "recorded {d} s");
    app.quit(driver, s).await;
}
