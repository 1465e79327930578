//! Upload cancellation (§4.5.2) and the upload resource's life (§4, §4.1.1):
//! DELETE deactivates the upload after ending its in-flight append, an
//! upload whose stored bytes were lost is deactivated too, and upload URLs
//! are never reused.

use spool_proto::ietf::Interop;

use crate::support::{Req, Srv, id_of};

/// R44 (-05 §7: 204): DELETE deactivates the upload: every later request
/// about it is refused, none succeeds.
#[tokio::test]
async fn r44_delete_deactivates_the_upload() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"abc").await.location();
        assert_eq!(srv.delete(v, &url).await.status, 204, "{v:?}");
        let head = srv.head(v, &url).await;
        let patch = srv.patch(v, &url, 3, true, b"d").await.fin;
        let delete = srv.delete(v, &url).await;
        for m in [head, patch, delete] {
            assert!(matches!(m.status, 404 | 410), "{v:?}: {m:?}");
            assert_eq!(m.code(), Some("ERR_UPLOAD_TERMINATED"), "{v:?}: {m:?}");
        }
    }
}

/// R45: DELETE ends an append still streaming into the upload before it
/// answers: once the 204 is read, the append's own answer is under way.
#[tokio::test]
async fn r45_delete_ends_the_in_flight_append_first() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let req = Req::append(v, &url, 0, Some(true))
            .h("expect", "100-continue")
            .h("content-length", "100000");
        let mut writer = srv.conn().await;
        writer.send(&req.head_bytes()).await;
        // The 100 comes when the handler reads the body, under the lock.
        assert_eq!(writer.next_head().await.status, 100);
        writer.send(&[7; 1000]).await;
        assert_eq!(srv.delete(v, &url).await.status, 204, "{v:?}");
        if let Some(x) = writer.response_or_close(false).await {
            assert!(x.status() >= 400, "{v:?}: {x:?}");
        }
        assert_eq!(
            srv.head(v, &url).await.code(),
            Some("ERR_UPLOAD_TERMINATED")
        );
    }
}

/// R46 (-05 §12: MUST NOT): DELETE is never answered 301 or 302.
#[tokio::test]
async fn r46_delete_is_never_redirected() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let active = srv.new_upload(v, &[]).await;
        let done = srv.create(v, true, b"x").await.location();
        let unknown = format!("/v1/uploads/{}", "0".repeat(32));
        for url in [&active, &active, &done, &unknown] {
            let s = srv.delete(v, url).await.status;
            assert!(s != 301 && s != 302, "{v:?} {url}: {s}");
        }
    }
}

/// R3 (-05 §11): an upload whose acknowledged bytes were lost (its file cut
/// short while the server was down) is deactivated: HEAD and PATCH are
/// refused, at the old offset and at what is left.
#[tokio::test]
async fn r3_an_upload_that_lost_bytes_is_deactivated() {
    let mut srv = Srv::start().await;
    let mut urls = Vec::new();
    for v in Interop::ALL {
        urls.push((v, srv.create(v, false, &[9; 1000]).await.location()));
    }
    let ids: Vec<String> = urls.iter().map(|(_, u)| id_of(u)).collect();
    srv = srv
        .restart(|data| {
            for id in &ids {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(data.join("uploads").join(id))
                    .unwrap();
                f.set_len(500).unwrap();
            }
        })
        .await;
    for (v, url) in &urls {
        let head = srv.head(*v, url).await;
        assert!(matches!(head.status, 404 | 410), "{v:?}: {head:?}");
        assert_eq!(head.code(), Some("ERR_UPLOAD_DAMAGED"), "{v:?}: {head:?}");
        for offset in [1000, 500] {
            let x = srv.patch(*v, url, offset, true, b"more").await;
            assert_eq!(x.fin.code(), Some("ERR_UPLOAD_DAMAGED"), "{v:?}: {x:?}");
        }
    }
}

/// R1: every creation gets an upload URL of its own, and the URL of an
/// ended upload never comes back to life for another one.
#[tokio::test]
async fn r1_upload_urls_are_unique_and_never_reused() {
    let srv = Srv::start().await;
    let mut ids = std::collections::HashSet::new();
    let mut ended = Vec::new();
    for v in Interop::ALL {
        for i in 0..20 {
            let url = srv.new_upload(v, &[]).await;
            assert!(ids.insert(id_of(&url)), "{url} twice");
            if i % 5 == 0 {
                assert_eq!(srv.delete(v, &url).await.status, 204);
                ended.push((v, url));
            }
        }
    }
    for (v, url) in &ended {
        let head = srv.head(*v, url).await;
        assert_eq!(head.code(), Some("ERR_UPLOAD_TERMINATED"), "{head:?}");
    }
}

/// -05 §7: cancellation answers `204 No Content` (the newest text mandates
/// no status; Spool answers 204 to both).
#[tokio::test]
async fn cancellation_answers_204() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for body in [&b""[..], b"bytes"] {
            let url = srv.create(v, false, body).await.location();
            let m = srv.delete(v, &url).await;
            assert_eq!(m.status, 204, "{v:?}: {m:?}");
            assert!(m.body.is_empty());
        }
    }
}
