//! Sharing from the app: the live link exists from Start and its page plays
//! the recording while it uploads; the history shows the poster; with
//! "share on my local network" the embedded server answers on the LAN
//! address and new share links name it.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_live_link_is_there_from_start_and_the_history_shows_the_poster() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), None);
    let (driver, s) = app.launch(1).await;
    record(&s).await;
    let live = s
        .wait_for("the live link", Duration::from_secs(20), async |s| {
            let a = s.testid("live-link").await;
            s.attr(&a, "href").await.filter(|h| h.starts_with("http"))
        })
        .await;
    let (base, _) = embedded_server(&app.data);
    assert!(live.starts_with(&format!("{base}/v/")), "{live}");
    // While recording, the link's playlist is live.
    let playlist = s
        .wait_for("a live playlist", Duration::from_secs(30), async |_| {
            spool_e2e::media::playlist(&live)
                .await
                .filter(|p| !p.segments.is_empty())
        })
        .await;
    assert!(!playlist.ended, "{}", playlist.text);
    stop(&s).await;
    let link = share_link(&s, Duration::from_secs(60)).await;
    assert_eq!(link, live, "the live link is the share link");
    s.wait_for("the live box to go", Duration::from_secs(10), async |s| {
        (s.execute("return document.getElementById('live-box').hidden")
            .await
            == true)
            .then_some(())
    })
    .await;
    let asset = asset_of(&link);
    history_state(&s, &asset, "complete", Duration::from_secs(10)).await;
    // The poster loads in the history (it is the server's poster.jpg).
    s.wait_for("the history poster", Duration::from_secs(20), async |s| {
        let v = s
            .execute(&format!(
                "const i = document.querySelector('[data-asset-id=\"{asset}\"] [data-testid=history-poster]'); \
                 if (i && i.complete && i.naturalWidth === 0) {{ i.hidden = false; i.src = i.src.split('?')[0] + '?' + Date.now(); }} \
                 return i ? i.naturalWidth : -1"
            ))
            .await;
        (v.as_i64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    app.quit(driver, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sharing_on_the_local_network_gives_links_on_the_lan_address() {
    let Some(lan) = lan_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), None);
    let (driver, s) = app.launch(1).await;
    let open = s.testid("settings-button").await;
    s.click(&open).await;
    let check = s.testid("settings-share-lan").await;
    assert_eq!(s.prop(&check, "checked").await, false, "off by default");
    s.click(&check).await;
    let save = s.testid("settings-save").await;
    s.click(&save).await;
    s.wait_for(
        "the settings to save",
        Duration::from_secs(30),
        async |_| {
            std::fs::read(app.data.join("settings.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .filter(|v| v["share_on_lan"] == true)
        },
    )
    .await;
    // Reopened, the dialog says which address it shares.
    s.click(&open).await;
    let note = s.testid("settings-lan-address").await;
    let said = s
        .wait_for("the LAN address", Duration::from_secs(10), async |s| {
            Some(s.text(&note).await).filter(|t| !t.is_empty())
        })
        .await;
    assert!(said.contains(&format!("http://{lan}:")), "{said}");
    let close = s.testid("settings-cancel").await;
    s.click(&close).await;

    let link = record_a_clip(&s, 3).await;
    assert!(link.starts_with(&format!("http://{lan}:")), "{link}");
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200, "the page answers on the LAN address");
    let p = spool_e2e::media::playlist(&link)
        .await
        .expect("the playlist");
    assert!(!p.segments.is_empty());
    app.quit(driver, s).await;
}

/// This machine's non-loopback address, as the app finds it.
fn lan_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    ["8.8.8.8:53", "192.168.0.1:9", "10.0.0.1:9", "172.16.0.1:9"]
        .iter()
        .find_map(|p| {
            s.connect(p).ok()?;
            let ip = s.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
}
