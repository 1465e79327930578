//! What interop version 6 (draft -05) requires where the newest text
//! differs, each checked against version 8's answer beside it: `201` for
//! incomplete appends, `Upload-Offset` on every answer, `expires=` in
//! `Upload-Limit`, `400` for offset retrieval or cancellation carrying
//! upload fields, a PATCH without `Upload-Complete` completing, the
//! `completed-upload` problem, `400` past the length, `404` once inactive.

use std::time::Duration;

use spool_proto::ietf::{Interop, ProblemType};

use crate::support::{Req, Srv};

const V6: Interop = Interop::V6;
const V8: Interop = Interop::V8;

/// -05 §6: an append that leaves the upload incomplete is `201` (interop
/// 8: a 2xx, Spool's `204`).
#[tokio::test]
async fn an_incomplete_append_is_201_for_interop_6() {
    let srv = Srv::start().await;
    for (v, status) in [(V6, 201), (V8, 204)] {
        let url = srv.new_upload(v, &[]).await;
        let x = srv.patch(v, &url, 0, false, b"abc").await;
        assert_eq!(x.status(), status, "{v:?}: {x:?}");
        assert_eq!(x.fin.complete(), Some(false));
    }
}

/// -05 §4, §6: every creation and append answer about an active upload
/// carries `Upload-Offset` — incomplete, final and 409 alike.
#[tokio::test]
async fn every_answer_carries_upload_offset_for_interop_6() {
    let srv = Srv::start().await;
    let created = srv.create(V6, false, b"abc").await;
    assert_eq!(created.fin.int("upload-offset"), 3);
    let url = created.location();
    let whole = srv.create(V6, true, b"whole").await;
    assert_eq!(whole.fin.int("upload-offset"), 5);
    assert_eq!(
        srv.patch(V6, &url, 3, false, b"d")
            .await
            .fin
            .int("upload-offset"),
        4
    );
    assert_eq!(
        srv.patch(V6, &url, 0, false, b"x")
            .await
            .fin
            .int("upload-offset"),
        4
    );
    let done = srv.patch(V6, &url, 4, true, b"e").await;
    assert_eq!(done.fin.int("upload-offset"), 5, "{done:?}");
}

/// -05 §4 (a 2xx, 201 RECOMMENDED, never `Upload-Complete: ?0`): the final
/// answers of interop 6.
#[tokio::test]
async fn final_answers_never_say_incomplete_for_interop_6() {
    let srv = Srv::start().await;
    let whole = srv.create(V6, true, b"whole").await;
    assert_eq!(whole.status(), 201, "{whole:?}");
    assert!(whole.fin.header("location").is_some());
    let url = srv.create(V6, false, b"ab").await.location();
    let done = srv.patch(V6, &url, 2, true, b"c").await;
    assert!((200..300).contains(&done.status()), "{done:?}");
    for x in [whole, done] {
        assert_ne!(x.fin.complete(), Some(false), "{x:?}");
    }
}

/// -05 §8: `Upload-Limit` names the remaining lifetime `expires` (renamed
/// `max-age` in -06), on OPTIONS, the 104, creation and HEAD.
#[tokio::test]
async fn upload_limit_says_expires_for_interop_6() {
    let srv = Srv::start().await;
    for (v, key, other) in [(V6, "expires=", "max-age="), (V8, "max-age=", "expires=")] {
        let options = srv.send(Req::new("OPTIONS", "/v1/uploads").draft(v)).await;
        let x = srv.create(v, false, b"a").await;
        let head = srv.head(v, &x.location()).await;
        for m in [&options.fin, x.interim(104)[0], &x.fin, &head] {
            let value = m.header("upload-limit").unwrap();
            assert!(
                value.contains(key) && !value.contains(other),
                "{v:?}: {value}"
            );
        }
    }
}

/// -05 §5, §7: offset retrieval or cancellation carrying `Upload-Offset`,
/// `Upload-Complete` or `Upload-Length` is `400` (the newest text dropped
/// the rule: interop 8 answers them).
#[tokio::test]
async fn head_and_delete_with_upload_fields_are_400_for_interop_6() {
    let srv = Srv::start().await;
    let fields = [
        ("upload-offset", "0"),
        ("upload-complete", "?0"),
        ("upload-length", "9"),
    ];
    for (name, value) in fields {
        let url = srv.new_upload(V6, &[]).await;
        for method in ["HEAD", "DELETE"] {
            let m = srv
                .send(Req::new(method, &url).draft(V6).h(name, value))
                .await;
            assert_eq!(m.status(), 400, "{method} {name}: {m:?}");
            let m = srv
                .send(Req::new(method, &url).draft(V8).h(name, value))
                .await;
            assert!(m.status() < 300, "interop 8 {method} {name}: {m:?}");
        }
    }
}

/// -05 §6: a PATCH without `Upload-Complete` is the last one (interop 8
/// requires the field: 400).
#[tokio::test]
async fn a_patch_without_upload_complete_completes_for_interop_6() {
    let srv = Srv::start().await;
    let url = srv.create(V6, false, b"abc").await.location();
    let x = srv.send(Req::append(V6, &url, 3, None).body(b"def")).await;
    assert!(x.status() < 300, "{x:?}");
    assert_eq!(x.fin.complete(), Some(true), "{x:?}");
    assert_eq!(srv.bytes(&url).await, b"abcdef");
    let url = srv.create(V8, false, b"abc").await.location();
    let x = srv.send(Req::append(V8, &url, 3, None).body(b"def")).await;
    assert_eq!(x.status(), 400, "{x:?}");
    assert_eq!(srv.offset(V8, &url).await, 3);
}

/// -05 §6, §10: bytes for a completed upload are refused with `400` and the
/// `completed-upload` problem, through its signed URL or the API
/// credentials, and the upload is unchanged (interop 8: refused too,
/// without that type, which the editor's copy removed).
#[tokio::test]
async fn bytes_for_a_completed_upload_are_the_completed_upload_problem() {
    let srv = Srv::start().await;
    for v in [V6, V8] {
        let url = srv.create(v, true, b"done").await.location();
        let path = url.split('?').next().unwrap().to_owned();
        let signed = Req::append(v, &url, 4, Some(true));
        let credentials = Req::append(v, &path, 4, Some(true)).basic();
        for req in [signed, credentials] {
            let target = format!("{req:?}");
            let x = srv.send(req.body(b"more")).await;
            assert_eq!(x.status(), 400, "{v:?} {target}: {x:?}");
            let p = x.fin.json();
            assert_eq!(p["code"], "ERR_UPLOAD_COMPLETE", "{p}");
            let completed = ProblemType::CompletedUpload.uri();
            assert_eq!(p["type"] == completed, v == V6, "{v:?}: {p}");
        }
        assert_eq!(srv.bytes(&url).await, b"done");
    }
}

/// -05 §6: content past the recorded length is `400` (interop 8: refused;
/// Spool says 413).
#[tokio::test]
async fn content_past_the_length_is_400_for_interop_6() {
    let srv = Srv::start().await;
    for (v, status) in [(V6, 400), (V8, 413)] {
        let url = srv
            .send(Req::create(v, false).h("upload-length", "4").body(b"ab"))
            .await
            .location();
        let x = srv.patch(v, &url, 2, false, b"cdef").await;
        assert_eq!(x.status(), status, "{v:?}: {x:?}");
        assert_eq!(srv.offset(v, &url).await, 2);
    }
}

/// -05 §5, §6, §7: an upload that is not active — cancelled, expired, or
/// never there (asked with the API credentials: without them an unknown id
/// is 401, so a forged URL learns nothing) — is `404` to offset retrieval,
/// append and cancellation (interop 8 mandates nothing; Spool says 410 for
/// one that ended).
#[tokio::test]
async fn an_inactive_upload_is_404_for_interop_6() {
    let srv = Srv::start().await;
    let cancelled = srv.new_upload(V6, &[]).await;
    assert_eq!(srv.delete(V6, &cancelled).await.status, 204);
    let expired = srv.new_upload(V6, &[]).await;
    srv.clock
        .advance(srv.config.upload_ttl + Duration::from_secs(1));
    let unknown = format!("/v1/uploads/{}", "0".repeat(32));
    for (url, gone) in [(&cancelled, 410), (&expired, 410), (&unknown, 404)] {
        let head = Req::new("HEAD", url).basic().draft(V6);
        assert_eq!(srv.send(head).await.status(), 404, "{url}");
        let x = srv.send(Req::append(V6, url, 0, Some(true)).basic()).await;
        assert_eq!(x.status(), 404, "{url}: {x:?}");
        let delete = Req::new("DELETE", url).basic().draft(V6);
        assert_eq!(srv.send(delete).await.status(), 404, "{url}");
        let head = Req::new("HEAD", url).basic().draft(V8);
        assert_eq!(srv.send(head).await.status(), gone, "{url}");
    }
}
