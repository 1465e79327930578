//! One upload resource, two protocols and two kinds of URL: the signed
//! upload URL `POST /v1/on-demand` issues works for draft offset retrieval
//! and appends, an upload created over TUS is finished with the draft, and
//! one created with the draft is finished over TUS.

use spool_proto::ietf::Interop;

use crate::support::{Req, Srv};

fn tus(method: &str, url: &str) -> Req {
    Req::new(method, url).h("tus-resumable", "1.0.0")
}

/// The signed URL of an on-demand asset: draft HEAD, then appends to the
/// end; the final answer names that very asset.
#[tokio::test]
async fn an_on_demand_upload_url_works_for_the_draft() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let (asset, url) = srv.on_demand(r#"{"metadata":{"title":"t"}}"#).await;
        assert!(url.contains("sig="), "{url}");
        let head = srv.head(v, &url).await;
        assert_eq!(head.status, 204, "{v:?}: {head:?}");
        assert_eq!(head.int("upload-offset"), 0);
        assert_eq!(head.complete(), Some(false));
        let x = srv.patch(v, &url, 0, false, b"abc").await;
        assert!(x.status() < 300, "{v:?}: {x:?}");
        assert_eq!(srv.offset(v, &url).await, 3);
        let x = srv.patch(v, &url, 3, true, b"def").await;
        assert_eq!(x.status(), 200, "{v:?}: {x:?}");
        assert_eq!(x.fin.json()["asset_id"], asset.as_str());
        assert_eq!(srv.asset(&asset).await["offset"], 6);
        assert_eq!(srv.bytes(&url).await, b"abcdef");
    }
}

/// An upload created over TUS (declared length, or deferred) is appended
/// to and completed with the draft, and TUS sees the result.
#[tokio::test]
async fn a_tus_upload_is_finished_with_the_draft() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for length in [Some("6"), None] {
            let mut create = tus("POST", "/v1/uploads").basic();
            create = match length {
                Some(l) => create.h("upload-length", l),
                None => create.h("upload-defer-length", "1"),
            };
            let url = srv.send(create).await.location();
            let x = srv.patch(v, &url, 0, false, b"abc").await;
            assert!(x.status() < 300, "{v:?} {length:?}: {x:?}");
            let head = srv.head(v, &url).await;
            assert_eq!(head.int("upload-offset"), 3);
            assert_eq!(head.header("upload-length"), length, "{head:?}");
            let x = srv.patch(v, &url, 3, true, b"def").await;
            assert_eq!(x.status(), 200, "{v:?} {length:?}: {x:?}");
            let t = srv.send(tus("HEAD", &url)).await.fin;
            assert_eq!(t.int("upload-offset"), 6, "{t:?}");
            assert_eq!(t.int("upload-length"), 6, "{t:?}");
            assert_eq!(srv.bytes(&url).await, b"abcdef");
        }
    }
}

/// An upload created with the draft is appended to and completed over TUS
/// (declaring its length on the last PATCH), and the draft sees it complete.
#[tokio::test]
async fn a_draft_upload_is_finished_over_tus() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"abc").await.location();
        let t = srv.send(tus("HEAD", &url)).await.fin;
        assert_eq!(t.int("upload-offset"), 3, "{t:?}");
        let append = tus("PATCH", &url)
            .h("content-type", "application/offset+octet-stream")
            .h("upload-offset", "3")
            .h("upload-length", "6")
            .body(b"def");
        let x = srv.send(append).await;
        assert_eq!(x.status(), 204, "{v:?}: {x:?}");
        let head = srv.head(v, &url).await;
        assert_eq!(head.complete(), Some(true), "{v:?}: {head:?}");
        assert_eq!(head.int("upload-length"), 6);
        assert_eq!(srv.bytes(&url).await, b"abcdef");
    }
}
