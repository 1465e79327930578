//! Offset retrieval (§4.3.2) and the offset's own rules (§4.1.1): what a
//! HEAD (or GET) about an upload must say, that it is never cached or
//! redirected, and that the offset never goes back — not across a cut-off
//! request, not across a restart.

use spool_proto::ietf::Interop;

use crate::support::{Conn, FLUSH, Req, Srv, data, id_of, wait_until};

/// R27: HEAD and GET both report the offset.
#[tokio::test]
async fn r27_head_and_get_report_the_offset() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"12345").await.location();
        for method in ["HEAD", "GET"] {
            let m = srv.send(Req::new(method, &url).draft(v)).await.fin;
            assert!(m.status == 200 || m.status == 204, "{v:?} {method}: {m:?}");
            assert_eq!(m.int("upload-offset"), 5, "{v:?} {method}");
        }
    }
}

/// R28: `Upload-Complete` says whether the upload is complete.
#[tokio::test]
async fn r28_offset_retrieval_reports_completeness() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for complete in [false, true] {
            let url = srv.create(v, complete, b"abc").await.location();
            for method in ["HEAD", "GET"] {
                let m = srv.send(Req::new(method, &url).draft(v)).await.fin;
                assert_eq!(m.complete(), Some(complete), "{v:?} {method}: {m:?}");
            }
        }
    }
}

/// R29: `Upload-Length` is reported once the client has supplied it, and
/// not before.
#[tokio::test]
async fn r29_offset_retrieval_reports_the_length_once_known() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"abc").await.location();
        assert_eq!(srv.head(v, &url).await.header("upload-length"), None);
        let x = srv
            .send(Req::append(v, &url, 3, Some(false)).h("upload-length", "10"))
            .await;
        assert!(x.status() < 300, "{x:?}");
        assert_eq!(srv.head(v, &url).await.int("upload-length"), 10, "{v:?}");
    }
}

/// R30: offset retrieval names the upload's limits.
#[tokio::test]
async fn r30_offset_retrieval_names_the_limits() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let limit = srv.head(v, &url).await.limit();
        assert_eq!(limit.max_size, Some(srv.config.max_size), "{v:?}");
        assert!(limit.lifetime_secs.is_some(), "{v:?}: {limit:?}");
    }
}

/// R31: offset retrieval answers `Cache-Control: no-store`.
#[tokio::test]
async fn r31_offset_retrieval_is_not_stored_by_caches() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        for method in ["HEAD", "GET"] {
            let m = srv.send(Req::new(method, &url).draft(v)).await.fin;
            assert_eq!(m.header("cache-control"), Some("no-store"), "{m:?}");
        }
    }
}

/// R32 (-05 §12: MUST NOT): offset retrieval is never a 301 or 302, for an
/// upload in any state or none.
#[tokio::test]
async fn r32_offset_retrieval_is_never_redirected() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let active = srv.new_upload(v, &[]).await;
        let done = srv.create(v, true, b"x").await.location();
        let gone = srv.new_upload(v, &[]).await;
        assert_eq!(srv.delete(v, &gone).await.status, 204);
        let unknown = format!("/v1/uploads/{}", "0".repeat(32));
        for url in [&active, &done, &gone, &unknown] {
            let s = srv.head(v, url).await.status;
            assert!(s != 301 && s != 302, "{v:?} {url}: {s}");
        }
    }
}

/// R2 (-05 §11): the offset never decreases — from one answer to the next,
/// across a conflict, a cut-off append, and a restart.
#[tokio::test]
async fn r2_the_offset_never_decreases() {
    let mut srv = Srv::start().await;
    for v in Interop::ALL {
        let all = data(3 * FLUSH, v.number());
        let mut seen = Vec::new();
        let x = srv.create(v, false, &all[..100]).await;
        let url = x.location();
        seen.push(x.fin.int("upload-offset"));
        seen.push(srv.offset(v, &url).await);
        let conflict = srv.patch(v, &url, 7, false, b"zz").await;
        seen.push(conflict.fin.int("upload-offset"));
        let x = srv.patch(v, &url, 100, false, &all[100..200]).await;
        seen.push(x.fin.int("upload-offset"));
        // A cut-off append keeps what arrived.
        let mut c = Conn::connect(srv.addr).await;
        let req = Req::append(v, &url, 200, Some(true))
            .h("content-length", &(all.len() - 200).to_string());
        c.send(&req.head_bytes()).await;
        c.send(&all[200..200 + FLUSH]).await;
        let id = id_of(&url);
        wait_until("the stored bytes", async || srv.stored(&id) >= FLUSH as u64).await;
        c.reset();
        wait_until("the saved offset", async || srv.offset(v, &url).await > 200).await;
        seen.push(srv.offset(v, &url).await);
        srv = srv.restart(|_| {}).await;
        seen.push(srv.offset(v, &url).await);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{v:?}: {seen:?}");
        assert!(*seen.last().unwrap() >= 200 + FLUSH as u64, "{seen:?}");
    }
}

/// R48: offset retrieval never lags what was acknowledged: right after each
/// acknowledged append, HEAD names the offset that append reported.
#[tokio::test]
async fn r48_offset_retrieval_is_never_outdated() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let mut offset = 0;
        for piece in [&b"a"[..], b"bcd", b"", b"efghij"] {
            let x = srv.patch(v, &url, offset, false, piece).await;
            assert!(x.status() < 300, "{x:?}");
            offset = x.fin.int("upload-offset");
            assert_eq!(srv.offset(v, &url).await, offset, "{v:?}");
        }
        assert_eq!(offset, 10);
    }
}
