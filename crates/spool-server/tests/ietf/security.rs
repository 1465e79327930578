//! Security considerations (§13): only authorised clients reach an upload,
//! its URL is unguessable and leaks nothing, metadata is sanitised, the
//! right to finish is checked when finishing, and slow request heads
//! (Slowloris) are cut off.

use std::time::Duration;

use spool_proto::ietf::Interop;

use crate::support::{Req, Srv, id_of};

/// R57: without the API credentials or the upload's own signed URL nothing
/// is allowed: creation, HEAD, PATCH, DELETE.
#[tokio::test]
async fn r57_only_authorised_clients_reach_an_upload() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let anonymous = Req::new("POST", "/v1/uploads").draft(v).complete(false);
        assert_eq!(srv.send(anonymous).await.status(), 401, "{v:?}");
        let url = srv.create(v, false, b"abc").await.location();
        let other = srv.new_upload(v, &[]).await;
        let bare = url.split('?').next().unwrap().to_owned();
        // Another upload's signature on this upload's path.
        let borrowed = format!("{bare}?{}", other.split_once('?').unwrap().1);
        for (target, status) in [(&bare, 401), (&borrowed, 403)] {
            let head = srv.head(v, target).await;
            assert_eq!(head.status, status, "{v:?} {target}: {head:?}");
            let x = srv.patch(v, target, 3, true, b"d").await;
            assert_eq!(x.status(), status, "{v:?} {target}: {x:?}");
            assert_eq!(srv.delete(v, target).await.status, status, "{v:?}");
        }
        assert_eq!(srv.offset(v, &url).await, 3, "untouched");
    }
}

/// R58: upload URLs are hard to guess: 128 random bits of id (32 hex
/// digits, all distinct) and a signature without which the id is useless.
#[tokio::test]
async fn r58_upload_urls_are_hard_to_guess() {
    let srv = Srv::start().await;
    let mut ids = Vec::new();
    for v in Interop::ALL {
        for _ in 0..16 {
            let url = srv.new_upload(v, &[]).await;
            let id = id_of(&url);
            assert_eq!(id.len(), 32, "{url}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
            assert!(url.contains("?sig="), "{url}");
            ids.push(id);
        }
    }
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    // No two ids share a long prefix, as counters or timestamps would.
    ids.sort();
    assert!(ids.windows(2).all(|w| w[0][..8] != w[1][..8]), "{ids:?}");
}

/// R59: the upload URL carries nothing internal: the public base, the
/// upload path with its random id, and the signature — no file path, no
/// database key, no internal host.
#[tokio::test]
async fn r59_the_upload_url_leaks_nothing_internal() {
    let srv = Srv::start().await;
    let public = format!("http://{}", srv.addr);
    for v in Interop::ALL {
        let x = srv.create(v, false, b"x").await;
        let location = x.fin.header("location").unwrap();
        let u = url::Url::parse(location).unwrap();
        assert_eq!(u.origin().ascii_serialization(), public, "{location}");
        let segments: Vec<&str> = u.path_segments().unwrap().collect();
        assert_eq!(segments[..2], ["v1", "uploads"], "{location}");
        assert_eq!(segments.len(), 3, "{location}");
        let keys: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(keys, ["sig"], "{location}");
        let data_dir = srv.dir.path().to_string_lossy().into_owned();
        assert!(!location.contains(&data_dir), "{location}");
    }
}

/// R60: metadata taken from the request is sanitised: a filename with a
/// path or control characters is dropped, a plain one kept; malformed
/// `Upload-Metadata` is refused.
#[tokio::test]
async fn r60_metadata_is_sanitised() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let cases = [
            ("inline; filename=\"talk.mp4\"", Some("talk.mp4")),
            ("inline; filename=\"../../etc/passwd\"", None),
            ("inline; filename=\"a\\\\b.mp4\"", None),
            ("attachment; filename=\"x\tname.mp4\"", None),
        ];
        for (disposition, kept) in cases {
            let req = Req::create(v, true)
                .h("content-disposition", disposition)
                .h("content-type", "video/mp4; codecs=x")
                .body(b"abc");
            let x = srv.send(req).await;
            assert_eq!(x.status(), 201, "{disposition}: {x:?}");
            let asset = srv.asset(x.fin.json()["asset_id"].as_str().unwrap()).await;
            let md = &asset["metadata"];
            assert_eq!(md["filename"].as_str(), kept, "{disposition}: {md}");
            assert_eq!(md["filetype"], "video/mp4", "{md}");
        }
        let bad = Req::create(v, false).h("upload-metadata", "filename !!!");
        assert_eq!(srv.send(bad).await.status(), 400, "{v:?}");
    }
}

/// R62: the right to finish is checked when finishing: once the asset is
/// deleted through the API, the upload's last append is refused and
/// nothing completes.
#[tokio::test]
async fn r62_finishing_rechecks_that_the_upload_may_finish() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let (asset, url) = srv.on_demand("{}").await;
        assert!(srv.patch(v, &url, 0, false, b"abc").await.status() < 300);
        let del = Req::new("DELETE", &format!("/v1/assets/{asset}")).basic();
        assert!(srv.send(del).await.status() < 300);
        let x = srv.patch(v, &url, 3, true, b"def").await;
        assert!((400..500).contains(&x.status()), "{v:?}: {x:?}");
        assert_ne!(x.fin.complete(), Some(true), "{v:?}");
    }
}

/// R63: a request head that trickles in slower than the header timeout
/// (Slowloris) has its connection closed.
#[tokio::test]
async fn r63_a_slow_request_head_is_cut_off() {
    let srv = Srv::with(|c| c.header_timeout = Duration::from_millis(300)).await;
    let mut c = srv.conn().await;
    c.send(b"PATCH /v1/uploads/x HTTP/1.1\r\nhost: spool.test\r\n")
        .await;
    assert!(c.closed().await, "the connection stayed open");
}
