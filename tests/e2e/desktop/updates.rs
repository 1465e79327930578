//! Verified updates and the managed policy, as a fleet sees them: the app
//! against a local update server (a manifest in Tauri's format and signed
//! artifacts made here with `tauri signer`, throwaway keys) ends in
//! `verified` only for a correctly signed newer version — a tampered
//! artifact, another key's signature and a signature for another version
//! end in `failed` with ERR_UPDATE_SIGNATURE, an older version is not
//! offered, an unreachable server is `up-to-date` without a banner — and
//! an install asked for during a recording waits for it and its upload.
//! The managed policy: a locked destination is shown read-only and used for
//! uploads; a malformed policy file is reported and ignored.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

fn tauri_cli() -> PathBuf {
    root().join("ui/node_modules/.bin/tauri")
}

/// A throwaway updater key pair (no password): (secret key file, public key).
fn updater_keys(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let out = Command::new(tauri_cli())
        .args(["signer", "generate", "--ci", "-p", "", "-w"])
        .arg(&key)
        .output()
        .expect("the Tauri CLI (scripts/setup.sh ui installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(key.with_extension("key.pub")).unwrap();
    (key, public.trim().to_owned())
}

/// Signs `file` for `version` with `key`; the signature (base64, as in latest.json).
fn sign(key: &Path, file: &Path, version: &str) -> String {
    let out = Command::new(tauri_cli())
        .args(["signer", "sign", "-p", "", "--app-version", version, "-f"])
        .arg(key)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(format!("{}.sig", file.display()))
        .unwrap()
        .trim()
        .to_owned()
}

/// A static file server on loopback: GET /<name> answers the file in `dir`.
async fn serve(dir: PathBuf) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = Arc::new(dir);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let path = line
                    .split(' ')
                    .nth(1)
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/");
                let name = path.trim_start_matches('/');
                let file = (!name.contains("..")).then(|| dir.join(name));
                let head = match file.and_then(|f| std::fs::read(f).ok()) {
                    Some(body) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        [head.into_bytes(), body].concat()
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&head).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    base
}

/// Publishes `version` in the update server's folder: an artifact (some
/// bytes standing for the package), signed with `key` for `signed_for`,
/// optionally tampered with after signing, and latest.json pointing at it.
fn publish(dir: &Path, base: &str, key: &Path, version: &str, signed_for: &str, tamper: bool) {
    let name = format!("spool-desktop_{version}_amd64.deb");
    let artifact = dir.join(&name);
    std::fs::write(&artifact, random_bytes(300 * 1024, version.len() as u64)).unwrap();
    let signature = sign(key, &artifact, signed_for);
    if tamper {
        let mut bytes = std::fs::read(&artifact).unwrap();
        bytes[1000] ^= 0x01;
        std::fs::write(&artifact, bytes).unwrap();
    }
    let entry = serde_json::json!({"signature": signature, "url": format!("{base}/{name}")});
    let manifest = serde_json::json!({
        "version": version,
        "notes": format!("Spool {version}"),
        "pub_date": "2026-12-01T00:00:00Z",
        "platforms": {"linux-x86_64": entry, "linux-x86_64-deb": entry},
    });
    std::fs::write(dir.join("latest.json"), manifest.to_string()).unwrap();
}

async fn update_status(s: &Session) -> String {
    text(s, "update-status").await
}

/// Waits for the status line to start with `word`; returns it.
async fn wait_update(s: &Session, word: &str, timeout: Duration) -> String {
    s.wait_for(&format!("update-status {word:?}"), timeout, async |s| {
        let t = update_status(s).await;
        t.starts_with(word).then_some(t)
    })
    .await
}

async fn banner(s: &Session) -> Option<String> {
    let b = s.testid("update-banner").await;
    let shown = s
        .execute("return !document.querySelector('[data-testid=update-banner]').hidden")
        .await
        == true;
    if shown { Some(s.text(&b).await) } else { None }
}

async fn check_now(s: &Session) {
    let b = s.testid("update-check-button").await;
    s.wait_for("the check button", Duration::from_secs(30), async |s| {
        s.enabled(&b).await.then_some(())
    })
    .await;
    s.click(&b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_install_only_what_the_built_in_key_signed_for_that_version() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    let (key, public) = updater_keys(dir.path(), "team");
    let (other_key, _) = updater_keys(dir.path(), "other");
    // The app asks a port nobody listens on first: unreachable.
    let dead = format!("http://127.0.0.1:{}/latest.json", free_port());
    // …and a malformed policy file, which must not stop it.
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, "{\"lock_destination\": tru").unwrap();

    let mut app = App::new(dir.path(), None);
    app.env
        .push(("SPOOL_UPDATER_PUBKEY".into(), public.clone()));
    app.env.push(("SPOOL_UPDATE_URL".into(), dead));
    app.env.push(("SPOOL_UPDATE_DRY_RUN".into(), "1".into()));
    app.env
        .push(("SPOOL_POLICY_FILE".into(), policy.display().to_string()));
    let (driver, s) = app.launch(1).await;

    // The malformed policy: told once, the app runs on its own settings.
    let notice = s
        .wait_for("the policy notice", Duration::from_secs(20), async |s| {
            for n in s.find_all("[data-testid=\"notice-message\"]").await {
                let t = s.text(&n).await;
                if t.contains("policy") {
                    return Some(t);
                }
            }
            None
        })
        .await;
    assert!(
        notice.contains("is ignored") && notice.contains("ERR_INVALID_POLICY"),
        "{notice}"
    );

    let t = wait_update(&s, "up-to-date", Duration::from_secs(60)).await;
    assert!(t.contains("ERR_UPDATE_UNAVAILABLE"), "{t}");
    assert_eq!(banner(&s).await, None, "an unreachable server is no banner");
    let error = s.testid("error-message").await;
    assert_eq!(
        s.text(&error).await,
        "",
        "an unreachable server is no error"
    );
    app.quit(driver, s).await;

    // Now a real update server.
    let base = serve(site.clone()).await;
    let mut app = app;
    app.env.retain(|(k, _)| k != "SPOOL_UPDATE_URL");
    app.env
        .push(("SPOOL_UPDATE_URL".into(), format!("{base}/latest.json")));
    std::fs::write(&policy, "{}").unwrap();
    // An older version is not offered.
    publish(&site, &base, &key, "0.0.1", "0.0.1", false);
    let (driver, s) = app.launch(2).await;
    let t = wait_update(&s, "up-to-date", Duration::from_secs(60)).await;
    assert!(!t.contains("ERR_"), "{t}");
    assert_eq!(banner(&s).await, None);

    // A tampered artifact, another key's signature, a signature made for
    // another version: each refused with ERR_UPDATE_SIGNATURE.
    for (version, signer, signed_for, tamper) in [
        ("9.0.1", &key, "9.0.1", true),
        ("9.0.2", &other_key, "9.0.2", false),
        ("9.0.3", &key, "0.0.1", false),
    ] {
        publish(&site, &base, signer, version, signed_for, tamper);
        check_now(&s).await;
        let t = s
            .wait_for(
                &format!("{version} to fail"),
                Duration::from_secs(60),
                async |s| {
                    let t = update_status(s).await;
                    (t.starts_with("failed") && t.contains(version)).then_some(t)
                },
            )
            .await;
        assert!(t.contains("ERR_UPDATE_SIGNATURE"), "{version}: {t}");
        assert!(
            banner(&s).await.is_some_and(|b| b.contains(version)),
            "{version}"
        );
    }

    // The real thing reaches verified, announced by the banner.
    publish(&site, &base, &key, "9.1.0", "9.1.0", false);
    let asked = std::time::Instant::now();
    check_now(&s).await;
    let t = wait_update(&s, "verified", Duration::from_secs(60)).await;
    // A figure for the README (not a timed assertion).
    eprintln!(
        "update check → verified (300 KiB artifact, loopback, as seen through WebDriver): {} ms",
        asked.elapsed().as_millis()
    );
    assert!(t.contains("9.1.0"), "{t}");
    let b = banner(&s).await.expect("the update banner");
    assert!(b.contains("9.1.0"), "{b}");

    // Install during a recording: it waits for the recording and its
    // upload, then asks again (dry run: it never installs).
    record(&s).await;
    let install = s.testid("update-install-button").await;
    s.click(&install).await;
    wait_update(&s, "waiting", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(update_status(&s).await.starts_with("waiting"));
    stop(&s).await;
    share_link(&s, Duration::from_secs(60)).await;
    let t = wait_update(&s, "verified", Duration::from_secs(60)).await;
    assert!(t.contains("install"), "{t}");
    app.quit(driver, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_destination_is_read_only_and_used_for_uploads() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("server"), 0, &[]);
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({
            "server_url": server.base,
            "token_id": TOKEN_ID,
            "lock_destination": true,
            "allow_embedded": false,
            "updates": false,
        })
        .to_string(),
    )
    .unwrap();
    let mut app = App::new(dir.path(), None);
    app.env
        .push(("SPOOL_POLICY_FILE".into(), policy.display().to_string()));
    let (driver, s) = app.launch(1).await;

    let t = wait_update(&s, "disabled", Duration::from_secs(20)).await;
    assert!(t.contains("organization"), "{t}");

    let open = s.testid("settings-button").await;
    s.click(&open).await;
    let managed = s.testid("settings-managed").await;
    s.wait_for(
        "Managed by your organization",
        Duration::from_secs(10),
        async |s| {
            s.text(&managed)
                .await
                .contains("Managed by your organization")
                .then_some(())
        },
    )
    .await;
    let url = s.testid("settings-server-url").await;
    assert_eq!(s.prop(&url, "value").await, server.base.as_str());
    assert!(!s.enabled(&url).await, "the server URL is read-only");
    let id = s.testid("settings-token-id").await;
    assert!(!s.enabled(&id).await, "the token id is read-only");
    assert!(!s.enabled(&s.testid("settings-destination").await).await);
    // The secret is the user's to enter, once.
    let secret = s.testid("settings-token-secret").await;
    assert!(s.enabled(&secret).await);
    s.type_text(&secret, TOKEN_SECRET).await;
    s.click(&s.testid("settings-save").await).await;
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
        "{link} is not on the policy's server {}",
        server.base
    );
    assert_stored(
        &server.base,
        &basic_auth(),
        &asset_of(&link),
        &local_recording(&app.data),
    )
    .await;
    app.quit(driver, s).await;

    // A saved file that says otherwise does not move a locked destination.
    let settings = app.data.join("settings.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    saved["destination"] = "embedded".into();
    saved["server_url"] = "http://127.0.0.1:9".into();
    std::fs::write(&settings, saved.to_string()).unwrap();
    let (driver, s) = app.launch(2).await;
    s.click(&s.testid("settings-button").await).await;
    // The dialog fills its fields once the settings arrive over IPC.
    let shown = s
        .wait_for(
            "the settings dialog's server URL",
            Duration::from_secs(10),
            async |s| {
                let url = s.testid("settings-server-url").await;
                let v = s.prop(&url, "value").await;
                v.as_str().filter(|v| !v.is_empty()).map(str::to_owned)
            },
        )
        .await;
    assert_eq!(shown, server.base.as_str());
    app.quit(driver, s).await;
}
