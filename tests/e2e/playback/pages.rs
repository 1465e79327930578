//! The share page's states without media, and how they switch in place:
//! waiting, then the error; deleted (410, nothing of it shown); link
//! previews, and the phone layout.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_page_explains_itself_then_shows_the_error_without_a_reload() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let f = fixture().await;
    let (id, upload) = f.create(json!({"title": "Weekly demo"})).await;
    let b = f.driver.browser(LAPTOP).await;
    b.goto(&f.page(&id)).await;
    assert_eq!(text_of(&b, "share-title").await, "Weekly demo");
    let state = text_of(&b, "share-state").await;
    assert!(
        state.contains("Waiting for the recording to start"),
        "{state}"
    );
    assert_eq!(
        b.execute("return document.querySelectorAll('video').length")
            .await,
        0
    );
    assert_eq!(
        b.execute("return !!document.querySelector('meta[http-equiv]')")
            .await,
        false
    );
    let shot = b.screenshot_as("waiting-1280x800").await;
    eprintln!("screenshot {}", shot.display());
    mark(&b).await;

    // Bytes that are not a video: the asset errors; the open page says why.
    patch(&upload, 0, &random_bytes(300_000, 7), true).await;
    let asset = f
        .wait_asset(&id, "the asset to error", Duration::from_secs(60), |a| {
            a["status"] == "errored"
        })
        .await;
    assert_eq!(asset["error"]["code"], "ERR_UNSUPPORTED_MEDIA", "{asset}");
    let message = asset["error"]["message"].as_str().unwrap().to_owned();
    let shown = b
        .wait_js(
            "the error on the page",
            "document.querySelector('[data-testid=share-error]')?.textContent",
            Duration::from_secs(10),
            "document.body.innerText",
        )
        .await;
    assert_eq!(shown.as_str().unwrap(), message);
    assert!(still_marked(&b).await, "the page reloaded");
    assert_eq!(
        b.execute("return document.querySelectorAll('video').length")
            .await,
        0
    );
    let shot = b.screenshot_as("errored-1280x800").await;
    eprintln!("screenshot {}", shot.display());

    // A fresh load of the errored page says the same.
    b.goto(&f.page(&id)).await;
    assert_eq!(text_of(&b, "share-error").await, message);
    b.close().await;

    let phone = f.driver.browser(PHONE).await;
    phone.goto(&f.page(&id)).await;
    no_horizontal_scroll(&phone).await;
    phone.screenshot_as("errored-phone").await;
    phone.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_recording_answers_410_and_shows_nothing_of_it() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let f = fixture().await;
    let (id, _upload) = f.create(json!({"title": "Quarterly layoffs plan"})).await;
    let b = f.driver.browser(LAPTOP).await;
    b.goto(&f.page(&id)).await;
    mark(&b).await;
    assert_eq!(f.server.delete_asset(&id).await, 204);
    // The open page learns it and forgets the recording, without a reload.
    b.wait_js(
        "the deleted state",
        "document.querySelector('[data-testid=share-state]')?.textContent.includes('This recording was deleted')",
        Duration::from_secs(10),
        "document.body.innerText",
    )
    .await;
    assert!(still_marked(&b).await, "the page reloaded");
    let html = b.execute("return document.documentElement.outerHTML").await;
    assert!(!html.as_str().unwrap().contains("Quarterly"), "{html}");

    let r = reqwest::get(f.page(&id)).await.unwrap();
    assert_eq!(r.status(), 410);
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("Quarterly") && !html.contains("og:"),
        "{html}"
    );
    let r = reqwest::get(format!("{}/status.json", f.page(&id)))
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "deleted"})
    );

    b.goto(&f.page(&id)).await;
    assert_eq!(text_of(&b, "share-title").await, "Recording deleted");
    assert!(
        text_of(&b, "share-state")
            .await
            .contains("This recording was deleted")
    );
    assert_eq!(
        b.execute("return document.querySelectorAll('video, [data-testid=download-link]').length")
            .await,
        0
    );
    b.screenshot_as("deleted-1280x800").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn link_previews_carry_the_title_escaped_and_the_phone_layout_fits() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let f = fixture().await;
    let title = r#"<script>window.__xss=1</script>"quoted" & 'single' <img src=x onerror="window.__xss=2">"#;
    let (id, _) = f.create(json!({"title": title})).await;
    let html = reqwest::get(f.page(&id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>window"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");

    let b = f.driver.browser(LAPTOP).await;
    b.goto(&f.page(&id)).await;
    let meta = b
        .execute(
            "const m = {}; for (const e of document.querySelectorAll('meta[property], meta[name]'))
               m[e.getAttribute('property') || e.getAttribute('name')] = e.content;
             return m;",
        )
        .await;
    assert_eq!(meta["og:title"], title, "{meta}");
    assert_eq!(meta["twitter:title"], title, "{meta}");
    assert_eq!(meta["og:type"], "video.other");
    assert_eq!(meta["twitter:card"], "summary_large_image");
    assert_eq!(meta["og:url"], f.page(&id));
    assert_eq!(
        meta["og:description"],
        "Screen recording · shared with Spool"
    );
    assert!(meta.get("og:video").is_none(), "not ready: {meta}");
    assert_eq!(text_of(&b, "share-title").await, title);
    assert_eq!(b.execute("return document.title").await, title);
    assert_eq!(b.execute("return window.__xss === undefined").await, true);
    b.close().await;

    // A phone, with a title that cannot wrap at spaces.
    let (id, _) = f.create(json!({"title": "x".repeat(150)})).await;
    let phone = f.driver.browser(PHONE).await;
    phone.goto(&f.page(&id)).await;
    assert_eq!(phone.execute("return innerWidth").await, 390);
    no_horizontal_scroll(&phone).await;
    within_viewport(&phone, "[data-testid=share-state]").await;
    phone.screenshot_as("waiting-phone").await;
    phone.close().await;
}
