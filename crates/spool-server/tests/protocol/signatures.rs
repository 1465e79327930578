//! Signed upload URLs: forged or foreign signatures are refused; an old one
//! works once bytes flow.

use axum::http::StatusCode;

use super::common::*;

#[tokio::test]
async fn forged_or_foreign_signatures_are_refused() {
    let t = T::new().await;
    let (_, a) = t.on_demand("{}").await;
    let (_, b) = t.on_demand("{}").await;
    let sig_b = b.split_once('?').unwrap().1;
    let a_path = a.split_once('?').unwrap().0;
    // B's signature on A's URL.
    let r = t.patch(&format!("{a_path}?{sig_b}"), 0, &[], b"x").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "ERR_INVALID_SIGNATURE");
    // A tampered MAC, a malformed token, an unknown key.
    let (prefix, mac) = a.rsplit_once('.').unwrap();
    let flipped = format!(
        "{prefix}.{}{}",
        if mac.starts_with('A') { 'B' } else { 'A' },
        &mac[1..]
    );
    let unknown_key = a.replace("sig=v2.k", "sig=v2.zz");
    for url in [flipped, format!("{a_path}?sig=garbage"), unknown_key] {
        let r = t.patch(&url, 0, &[], b"x").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{url}");
        assert_eq!(r.code(), "ERR_INVALID_SIGNATURE");
    }
    // No signature, no credentials.
    let r = t.patch(a_path, 0, &[], b"x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Credentials instead of a signature.
    assert_eq!(
        t.patch(a_path, 0, &[("authorization", &basic())], b"x")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Nothing forged was stored.
    assert_eq!(t.head(&a).await.header("upload-offset"), Some("1"));
    // A signature is checked before the upload is looked up.
    let r = t
        .head("/v1/uploads/00000000000000000000000000000000?sig=v1.k1.1.AAAA")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_old_signature_works_once_bytes_flow_but_not_for_an_unused_url() {
    let t = T::new().await;
    let (_, used) = t.on_demand("{}").await;
    let (_, unused) = t.on_demand("{}").await;
    t.patch(&used, 0, &[], b"x").await;
    let keys = &t.app.keys;
    let resign = |url: &str| {
        let path = url.split_once('?').unwrap().0;
        let id = id_of(url);
        format!(
            "{path}?sig={}",
            spool_proto::token::sign(
                &keys.current_kid,
                keys.current_secret(),
                spool_proto::token::Purpose::Upload,
                &id,
                1
            )
        )
    };
    assert_eq!(
        t.patch(&resign(&used), 1, &[], b"y").await.status,
        StatusCode::NO_CONTENT
    );
    let r = t.patch(&resign(&unused), 0, &[], b"y").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "ERR_SIGNATURE_EXPIRED");
}
