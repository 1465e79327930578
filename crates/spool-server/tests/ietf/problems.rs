//! Errors as RFC 9457 problem details (§7): `application/problem+json` with
//! `type`, `title`, `status` and `detail`, the draft's problem types where
//! it has one (`about:blank` otherwise), Spool's own `code` and `message`
//! beside them, the offsets of a mismatch (R52), and the answer to an
//! interop version Spool does not speak.

use spool_proto::ietf::{Interop, ProblemType};

use crate::support::{Exchange, Req, Srv};

/// The problem body of `x`, checked for the members every problem has.
fn problem(x: &Exchange, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(x.status(), status, "{x:?}");
    assert_eq!(
        x.fin.header("content-type"),
        Some("application/problem+json"),
        "{x:?}"
    );
    let p = x.fin.json();
    assert_eq!(p["status"], status, "{p}");
    assert_eq!(p["code"], code, "{p}");
    for member in ["type", "title", "detail", "message"] {
        let s = p[member]
            .as_str()
            .unwrap_or_else(|| panic!("{member} in {p}"));
        assert!(!s.is_empty(), "{member} in {p}");
    }
    assert_eq!(p["detail"], p["message"], "{p}");
    assert_eq!(x.fin.code(), Some(code), "{x:?}");
    p
}

/// R52 (§7.1): a mismatching offset is the `mismatching-upload-offset`
/// problem with both `expected-offset` and `provided-offset`.
#[tokio::test]
async fn r52_a_mismatch_names_both_offsets() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"12345").await.location();
        let x = srv.patch(v, &url, 3, false, b"x").await;
        let p = problem(&x, 409, "ERR_MISMATCHED_OFFSET");
        let t = ProblemType::MismatchingUploadOffset;
        assert_eq!(p["type"], t.uri(), "{p}");
        assert_eq!(p["title"], t.title(), "{p}");
        assert_eq!(p["expected-offset"], 5, "{p}");
        assert_eq!(p["provided-offset"], 3, "{p}");
    }
}

/// §7.2: disagreeing lengths are the `inconsistent-upload-length` problem.
#[tokio::test]
async fn inconsistent_lengths_are_their_problem_type() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let x = srv
            .send(Req::create(v, true).h("upload-length", "9").body(b"123"))
            .await;
        let p = problem(&x, 400, "ERR_INVALID_LENGTH");
        let t = ProblemType::InconsistentUploadLength;
        assert_eq!(p["type"], t.uri(), "{p}");
        assert_eq!(p["title"], t.title(), "{p}");
        assert!(p.get("expected-offset").is_none(), "{p}");
    }
}

/// An error the draft has no type for is `about:blank`, titled with its
/// status's reason phrase, and still carries Spool's code.
#[tokio::test]
async fn other_errors_are_about_blank_with_spools_code() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let wrong_type = Req::append(v, &url, 0, Some(false))
            .without("content-type")
            .h("content-type", "text/plain");
        let x = srv.send(wrong_type).await;
        let p = problem(&x, 415, "ERR_INVALID_CONTENT_TYPE");
        assert_eq!(p["type"], "about:blank", "{p}");
        assert_eq!(p["title"], "Unsupported Media Type", "{p}");
        let unauthenticated = Req::new("POST", "/v1/uploads").draft(v).complete(false);
        let p = problem(&srv.send(unauthenticated).await, 401, "ERR_UNAUTHORIZED");
        assert_eq!(p["type"], "about:blank", "{p}");
    }
}

/// A HEAD error has no body; its code rides in a header, and it is not
/// stored by caches.
#[tokio::test]
async fn a_head_error_is_bodiless_with_its_code() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        srv.delete(v, &url).await;
        let m = srv.head(v, &url).await;
        assert!(m.status >= 400, "{m:?}");
        assert!(m.body.is_empty(), "{m:?}");
        assert_eq!(m.code(), Some("ERR_UPLOAD_TERMINATED"));
        assert_eq!(m.header("cache-control"), Some("no-store"), "{m:?}");
    }
}

/// An interop version Spool does not speak (7: drafts -06 to -08) is `412`
/// with the `ERR_UNSUPPORTED_VERSION` problem, on the creation endpoint and
/// on an upload, and nothing is created or appended.
#[tokio::test]
async fn an_unsupported_interop_version_is_412() {
    let srv = Srv::start().await;
    let seven = |r: Req| r.h("upload-draft-interop-version", "7");
    let create = seven(
        Req::new("POST", "/v1/uploads")
            .basic()
            .complete(true)
            .body(b"abc"),
    );
    let p = problem(&srv.send(create).await, 412, "ERR_UNSUPPORTED_VERSION");
    assert_eq!(p["type"], "about:blank", "{p}");
    let url = srv.new_upload(Interop::V8, &[]).await;
    let append = seven(
        Req::new("PATCH", &url)
            .h("content-type", "application/partial-upload")
            .h("upload-offset", "0")
            .complete(true)
            .body(b"abc"),
    );
    problem(&srv.send(append).await, 412, "ERR_UNSUPPORTED_VERSION");
    let head = srv.send(seven(Req::new("HEAD", &url))).await;
    assert_eq!(head.status(), 412, "{head:?}");
    assert_eq!(head.fin.code(), Some("ERR_UNSUPPORTED_VERSION"));
    assert_eq!(srv.offset(Interop::V8, &url).await, 0);
}
