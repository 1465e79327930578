//! The app's uploads when the network fails: a cut shows as reconnecting and
//! recovers; quitting mid-upload and relaunching finishes the upload.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_network_cut_shows_reconnecting_and_then_recovers() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, proxy) = server_behind_proxy(dir.path()).await;
    let app = App::new(dir.path(), Some(&proxy.url()));
    let (driver, s) = app.launch(1).await;

    record(&s).await;
    s.wait_for(
        "a first confirmed fragment",
        Duration::from_secs(30),
        async |s| (progress(s).await.0 > 0).then_some(()),
    )
    .await;
    proxy.set_down(true);
    wait_status(&s, "reconnecting", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Still reconnecting, never frozen: the recording goes on meanwhile.
    let (_, recorded_during_cut) = progress(&s).await;
    proxy.set_down(false);
    s.wait_for(
        "the upload to catch up",
        Duration::from_secs(60),
        async |s| {
            let (c, _) = progress(s).await;
            (status(s).await.contains("recording") && c >= recorded_during_cut).then_some(())
        },
    )
    .await;
    stop(&s).await;
    let link = share_link(&s, Duration::from_secs(60)).await;
    wait_status(&s, "complete", Duration::from_secs(10)).await;

    let asset = asset_of(&link);
    assert_stored(
        &server.base,
        &basic_auth(),
        &asset,
        &local_recording(&app.data),
    )
    .await;
    history_state(&s, &asset, "complete", Duration::from_secs(10)).await;
    app.quit(driver, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quitting_during_an_upload_and_relaunching_finishes_it() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, proxy) = server_behind_proxy(dir.path()).await;
    let app = App::new(dir.path(), Some(&proxy.url()));
    let (driver, s) = app.launch(1).await;

    record(&s).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The last fragments cannot leave: Stop leaves an upload in progress.
    proxy.set_down(true);
    stop(&s).await;
    wait_status(&s, "reconnecting", Duration::from_secs(30)).await;
    let upload_id = s
        .execute("return document.querySelector('[data-testid=history-item]').dataset.uploadId")
        .await;
    let asset = s
        .execute("return document.querySelector('[data-testid=history-item]').dataset.assetId")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !asset.is_empty(),
        "the asset exists from Start ({upload_id})"
    );
    app.quit(driver, s).await;

    let (meta, _) = server_asset(&server.base, &basic_auth(), &asset).await;
    assert_ne!(
        meta["status"], "ready",
        "not complete before the relaunch: {meta}"
    );

    proxy.set_down(false);
    let (driver, s) = app.launch(2).await;
    history_state(&s, &asset, "complete", Duration::from_secs(60)).await;
    assert_stored(
        &server.base,
        &basic_auth(),
        &asset,
        &local_recording(&app.data),
    )
    .await;
    app.quit(driver, s).await;
}
