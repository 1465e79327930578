//! Launching: one app per data folder (a second launch brings the first
//! window forward and exits, leaving its server, port and links alone;
//! another folder is independent), and a damaged journal set aside with the
//! user told once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spool_e2e::webdriver::{app_pids, x_focused_window, x_windows_named};

use super::*;

/// Starts the app binary directly (not through the driver) with `env`.
fn launch_directly(env: &[(String, String)]) -> std::process::Child {
    Command::new(desktop_bin())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits up to `timeout` for `child` to exit; its status and stderr.
fn wait_exit(
    mut child: std::process::Child,
    timeout: Duration,
) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, stderr_of(&mut child));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second launch did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Gives the input focus of `display` to its root window.
fn focus_root(display: &str) {
    let info = Command::new("xwininfo")
        .arg("-root")
        .env("DISPLAY", display)
        .output()
        .expect("xwininfo (scripts/setup.sh installs it)");
    let info = String::from_utf8_lossy(&info.stdout);
    let root = info
        .split_whitespace()
        .skip_while(|w| *w != "id:")
        .nth(1)
        .unwrap_or_else(|| panic!("no root window id in {info}"));
    let ok = Command::new("xdotool")
        .args(["windowfocus", root])
        .env("DISPLAY", display)
        .status()
        .unwrap()
        .success();
    assert!(ok, "xdotool windowfocus {root}");
}

async fn media_of(link: &str) -> Vec<u8> {
    let resp = reqwest::get(format!("{link}/media")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_launch_brings_the_first_window_forward_and_keeps_its_links() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), None);
    let (driver, s) = app.launch(1).await;
    let link = record_a_clip(&s, 2).await;
    let local = std::fs::read(local_recording(&app.data)).unwrap();
    assert_eq!(sha256_hex(&media_of(&link).await), sha256_hex(&local));
    let port_file = app.data.join("server/port");
    let port = std::fs::read_to_string(&port_file).unwrap();
    let windows = x_windows_named(&app.x.display, "Spool");
    assert_eq!(windows.len(), 1, "one app window: {windows:?}");
    let first = app_pids(&app.data);
    assert_eq!(first.len(), 1, "{first:?}");

    // Take the focus away from the window (to the root: there is no
    // window manager).
    focus_root(&app.x.display);
    let focus_before = x_focused_window(&app.x.display);
    assert_ne!(focus_before.as_deref(), Some(windows[0].as_str()));

    let started = Instant::now();
    let (exit, stderr) = wait_exit(launch_directly(&app.env), Duration::from_secs(10));
    let took = started.elapsed();
    eprintln!("the second launch exited after {} ms", took.as_millis());
    assert!(exit.success(), "exit {exit}: {stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(stderr.contains("brought forward"), "{stderr}");

    // One app, one server on the same port, one window, which has the focus
    // and still answers WebDriver.
    assert_eq!(app_pids(&app.data), first);
    assert_eq!(std::fs::read_to_string(&port_file).unwrap(), port);
    assert_eq!(x_windows_named(&app.x.display, "Spool"), windows);
    s.wait_for(
        "the window to get the focus",
        Duration::from_secs(5),
        async |_| {
            (x_focused_window(&app.x.display).as_deref() == Some(windows[0].as_str())).then_some(())
        },
    )
    .await;
    assert_eq!(status(&s).await, "complete");
    history_state(&s, &asset_of(&link), "complete", Duration::from_secs(5)).await;

    // The link still plays exactly the local recording.
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("share-video"));
    assert_eq!(sha256_hex(&media_of(&link).await), sha256_hex(&local));

    // Another data folder is another app: it starts its own server.
    let other = dir.path().join("other");
    let mut env = app.env.clone();
    for (k, v) in env.iter_mut() {
        if k == "SPOOL_DATA_DIR" {
            *v = other.display().to_string();
        }
    }
    let mut second = launch_directly(&env);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !other.join("server/port").exists() {
        assert!(second.try_wait().unwrap().is_none(), "the other app exited");
        assert!(
            Instant::now() < deadline,
            "the other app did not start its server"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(
        std::fs::read_to_string(other.join("server/port")).unwrap(),
        port
    );
    assert!(second.try_wait().unwrap().is_none(), "the other app runs");
    kill_apps_using(&other);
    let _ = second.wait();

    app.quit(driver, s).await;
}

/// The files `journal.db.corrupt-*` of the journal folder `dir`.
fn set_aside(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("journal.db.corrupt-"))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_journal_is_kept_aside_and_the_user_is_told_once() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), None);
    let journal = app.data.join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let garbage = random_bytes(64 * 1024, 9);
    std::fs::write(journal.join("journal.db"), &garbage).unwrap();

    let (driver, s) = app.launch(1).await;
    let notice = s.testid("notice-message").await;
    assert_eq!(
        s.attr(&notice, "data-kind").await.as_deref(),
        Some("journal-set-aside")
    );
    let told = s.text(&notice).await;
    assert!(told.contains("could not be read"), "{told}");
    let kept = set_aside(&journal);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), garbage, "kept whole");
    let name = kept[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(told.contains(&name), "the notice names {name}: {told}");
    // The new journal works: a recording goes into it.
    let link = record_a_clip(&s, 2).await;
    app.quit(driver, s).await;

    // The next launch says nothing more, and remembers the recording.
    let (driver, s) = app.launch(2).await;
    history_state(&s, &asset_of(&link), "complete", Duration::from_secs(10)).await;
    assert!(
        s.find_all("[data-testid=\"notice-message\"]")
            .await
            .is_empty(),
        "told once only"
    );
    assert_eq!(set_aside(&journal), kept);
    app.quit(driver, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_server_that_cannot_start_is_explained_and_not_fatal() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), None);
    // The server's folder cannot be made (a file is in the way): the same
    // path as any other start failure, e.g. its folder locked by another
    // server.
    std::fs::create_dir_all(&app.data).unwrap();
    std::fs::write(app.data.join("server"), b"in the way").unwrap();

    let (driver, s) = app.launch(1).await;
    let notice = s.testid("notice-message").await;
    assert_eq!(
        s.attr(&notice, "data-kind").await.as_deref(),
        Some("embedded-server")
    );
    let told = s.text(&notice).await;
    assert!(told.contains("did not start"), "{told}");
    // Record says why it cannot upload, with its code.
    let button = s.testid("record-button").await;
    s.click(&button).await;
    let error = s.testid("error-message").await;
    let code = s
        .wait_for("the error", Duration::from_secs(10), async |s| {
            s.attr(&error, "data-code").await.filter(|c| !c.is_empty())
        })
        .await;
    assert_eq!(code, "ERR_NO_DESTINATION");
    assert!(s.text(&error).await.contains("embedded server"));
    app.quit(driver, s).await;
}

/// A recording another live process is still making (`spool record` on the
/// app's own journal) is left to it by the app's launch: it is neither
/// finished early (a truncated video) nor marked failed, and it completes
/// whole when its recorder stops.
#[tokio::test(flavor = "multi_thread")]
async fn a_launch_leaves_a_recording_another_process_is_making_to_it() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("server"), 0, &[]);
    let app = App::new(dir.path(), Some(&server.base));
    let output = dir.path().join("cli-recordings");
    let mut cmd = spool("record");
    cmd.args([
        "--source",
        "synthetic:640x360",
        "--duration",
        "12",
        "--json",
    ])
    .args(server_args(&server.base))
    .arg("--state-dir")
    .arg(app.data.join("journal"))
    .arg("--output")
    .arg(&output);
    let mut recorder = Proc::spawn(cmd);
    recorder.wait_line(Duration::from_secs(30), |l| l.contains("\"fragment\""));

    let (driver, s) = app.launch(1).await;
    let asset = s
        .wait_for("the recording in the history", Duration::from_secs(15), async |s| {
            let v = s
                .execute("const i = document.querySelector('[data-testid=history-item]'); return i ? i.dataset.assetId : null")
                .await;
            v.as_str().filter(|a| !a.is_empty()).map(str::to_owned)
        })
        .await;
    // The launch's resume left it alone: still uploading, not failed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(server.asset(&asset).await["status"], "ready");
    let item = s
        .find(&format!(
            "[data-testid=\"history-item\"][data-asset-id=\"{asset}\"]"
        ))
        .await;
    assert_ne!(s.attr(&item, "data-state").await.as_deref(), Some("failed"));

    let (status, lines) = recorder.finish(Duration::from_secs(60));
    assert!(status.success(), "spool record: {status} {lines:?}");
    let mut files: Vec<_> = std::fs::read_dir(&output)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let local = files.pop().unwrap();
    assert_stored(&server.base, &basic_auth(), &asset, &local).await;
    let d = duration_s(&local);
    assert!(d > 11.0, "the whole recording: {d} s");
    app.quit(driver, s).await;
}
