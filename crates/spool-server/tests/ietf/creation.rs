//! Upload creation (§4.2.2) and the 104 interim response (§5, Appendix B):
//! what is announced before the body is read, what the final answer names,
//! and the proof that matters most — a creation cut off mid-body resumes
//! from the `Location` its 104 carried without losing an acknowledged byte.

use spool_proto::ietf::Interop;

use crate::support::{FLUSH, Req, Srv, data, id_of, local, wait_until};

/// Sends the head of a `?1` creation of `all` and its first `sent` bytes,
/// waits until the server has stored at least [`FLUSH`] of them, then resets
/// the connection. Returns the upload URL the 104 named.
async fn cut_creation(srv: &Srv, v: Interop, all: &[u8], sent: usize) -> String {
    let req = Req::create(v, true)
        .h("content-type", "video/mp4")
        .h("content-length", &all.len().to_string());
    let mut c = srv.conn().await;
    c.send(&req.head_bytes()).await;
    let announced = c.next_head().await;
    assert_eq!(announced.status, 104, "{announced:?}");
    let url = local(announced.header("location").expect("a 104 with Location"));
    c.send(&all[..sent]).await;
    let id = id_of(&url);
    wait_until("the server to store what arrived", async || {
        srv.stored(&id) >= FLUSH as u64
    })
    .await;
    c.reset();
    url
}

/// R25: the cut-off client learns the upload from the 104, finds at HEAD
/// exactly what the server stored (at least what provably arrived, never
/// more than was sent), sends the rest, and the upload is the original.
#[tokio::test]
async fn r25_a_cut_off_creation_resumes_from_its_104_without_loss() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let all = data(3 * FLUSH, v.number());
        let sent = FLUSH + FLUSH / 2;
        let url = cut_creation(&srv, v, &all, sent).await;
        wait_until("the saved offset", async || {
            srv.offset(v, &url).await >= FLUSH as u64
        })
        .await;
        let head = srv.head(v, &url).await;
        let offset = head.int("upload-offset");
        assert!(offset <= sent as u64, "{v:?}: {offset} > {sent} sent");
        assert_eq!(srv.stored(&id_of(&url)), offset, "{v:?}: HEAD = stored");
        let rest = &all[offset as usize..];
        let x = srv.patch_when_free(v, &url, offset, true, rest).await;
        assert_eq!(x.status(), 200, "{v:?}: {x:?}");
        assert_eq!(x.fin.complete(), Some(true), "{v:?}");
        assert_eq!(srv.bytes(&url).await, all, "{v:?}");
    }
}

/// R26: a `?1` creation that was cut off is not complete.
#[tokio::test]
async fn r26_a_cut_off_creation_is_not_complete() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let all = data(2 * FLUSH, v.number());
        let url = cut_creation(&srv, v, &all, FLUSH).await;
        wait_until("the saved offset", async || {
            srv.offset(v, &url).await >= FLUSH as u64
        })
        .await;
        let head = srv.head(v, &url).await;
        assert_eq!(head.complete(), Some(false), "{v:?}: {head:?}");
        let path = url.split('?').next().unwrap();
        let get = srv.send(Req::new("GET", path).basic()).await;
        assert_eq!(get.fin.code(), Some("ERR_UPLOAD_INCOMPLETE"), "{get:?}");
    }
}

/// R18: a creation is announced with a 104, with content or without.
#[tokio::test]
async fn r18_a_creation_is_announced_with_104() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for (complete, body) in [(false, &b"hello"[..]), (true, b"hello"), (false, b"")] {
            let x = srv.create(v, complete, body).await;
            assert_eq!(x.status(), 201, "{v:?}: {x:?}");
            assert_eq!(x.interim(104).len(), 1, "{v:?} {complete} {body:?}: {x:?}");
        }
    }
}

/// R19: the 104 names the upload (`Location`) and its limits.
#[tokio::test]
async fn r19_the_104_carries_location_and_upload_limit() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let x = srv.create(v, false, b"hello").await;
        let i = x.interim(104)[0];
        let url = local(i.header("location").expect("Location"));
        assert_eq!(id_of(&url).len(), 32, "{i:?}");
        assert_eq!(i.limit().max_size, Some(srv.config.max_size), "{i:?}");
        // The URL it names is the upload, reachable at once.
        assert_eq!(srv.offset(v, &url).await, 5);
    }
}

/// R20: an incomplete (`?0`) creation answers with `Location` and
/// `Upload-Limit`, with content or without.
#[tokio::test]
async fn r20_an_incomplete_creation_names_location_and_upload_limit() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for body in [&b""[..], b"abc"] {
            let x = srv.create(v, false, body).await;
            assert!(x.fin.header("location").is_some(), "{v:?}: {x:?}");
            assert_eq!(x.fin.limit().max_size, Some(srv.config.max_size));
        }
    }
}

/// R21 (-05 §4: MUST): an incomplete creation is `201 Created`.
#[tokio::test]
async fn r21_an_incomplete_creation_is_201() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for body in [&b""[..], b"abc"] {
            let x = srv.create(v, false, body).await;
            assert_eq!(x.status(), 201, "{v:?}: {x:?}");
            assert_eq!(x.fin.complete(), Some(false), "{v:?}");
        }
    }
}

/// R22: the length is recorded from `Upload-Length`, or from the end of a
/// `?1` creation's content; without either the upload has none.
#[tokio::test]
async fn r22_creation_records_the_length() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let x = srv
            .send(
                Req::create(v, false)
                    .h("upload-length", "20")
                    .body(b"12345"),
            )
            .await;
        let head = srv.head(v, &x.location()).await;
        assert_eq!(head.int("upload-length"), 20, "{v:?}: {head:?}");
        let x = srv.create(v, true, b"1234567").await;
        let head = srv.head(v, &x.location()).await;
        assert_eq!(head.int("upload-length"), 7, "{v:?}: {head:?}");
        let x = srv.create(v, false, b"123").await;
        let head = srv.head(v, &x.location()).await;
        assert_eq!(head.header("upload-length"), None, "{v:?}: {head:?}");
    }
}

/// R23: the 104 and the final answer name the very same `Location`.
#[tokio::test]
async fn r23_interim_and_final_locations_are_identical() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for complete in [false, true] {
            let x = srv.create(v, complete, b"some bytes").await;
            let interim = x.interim(104)[0].header("location");
            assert!(interim.is_some(), "{x:?}");
            assert_eq!(interim, x.fin.header("location"), "{v:?} {complete}");
        }
    }
}

/// R24: the creation answer says whether the upload is complete.
#[tokio::test]
async fn r24_a_creation_answer_carries_upload_complete() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for complete in [false, true] {
            let x = srv.create(v, complete, b"bytes").await;
            assert_eq!(x.fin.complete(), Some(complete), "{v:?}: {x:?}");
        }
    }
}

/// §4.2.2 (-05 §4: a 2xx, 201 RECOMMENDED, with `Location` and no `?0`): a
/// `?1` creation that arrives whole is an ordinary upload and gets the
/// final answer — the asset it became.
#[tokio::test]
async fn a_whole_complete_creation_gets_the_final_answer() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let x = srv.create(v, true, b"the whole thing").await;
        assert_eq!(x.status(), 201, "{v:?}: {x:?}");
        assert_eq!(x.fin.complete(), Some(true));
        assert!(x.fin.header("location").is_some());
        let body = x.fin.json();
        assert_eq!(body["length"], 15, "{body}");
        let asset = srv.asset(body["asset_id"].as_str().unwrap()).await;
        assert_eq!(asset["offset"], 15, "{asset}");
        assert_eq!(srv.bytes(&x.location()).await, b"the whole thing");
    }
}

/// R51: `Expect: 100-continue` still gets its 100 next to the 104, which
/// carries `Location`, `Upload-Limit` and the interop version.
#[tokio::test]
async fn r51_expect_continue_gets_the_100_and_the_104() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let req = Req::create(v, true)
            .h("expect", "100-continue")
            .h("content-length", "5");
        let mut c = srv.conn().await;
        c.send(&req.head_bytes()).await;
        let (a, b) = (c.next_head().await, c.next_head().await);
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [100, 104], "{v:?}: {a:?} {b:?}");
        let i = if a.status == 104 { &a } else { &b };
        assert!(i.header("location").is_some(), "{i:?}");
        assert_eq!(i.limit().max_size, Some(srv.config.max_size));
        let version = v.number().to_string();
        assert_eq!(i.header("upload-draft-interop-version"), Some(&*version));
        c.send(b"hello").await;
        let x = c.response(false).await;
        assert_eq!(x.status(), 201, "{x:?}");
        assert_eq!(x.fin.complete(), Some(true));
    }
}

/// R64 (-05 §4.2): no 104 for a request without the interop header (a TUS
/// creation, or a draft-shaped one that names no version).
#[tokio::test]
async fn r64_no_104_without_the_interop_header() {
    let srv = Srv::start().await;
    let tus = Req::new("POST", "/v1/uploads")
        .basic()
        .h("tus-resumable", "1.0.0")
        .h("upload-length", "5")
        .h("content-type", "application/offset+octet-stream")
        .body(b"hello");
    let x = srv.send(tus).await;
    assert_eq!(x.status(), 201, "{x:?}");
    assert!(x.interims.is_empty(), "{x:?}");
    let unversioned = Req::new("POST", "/v1/uploads")
        .basic()
        .complete(true)
        .body(b"hello");
    let x = srv.send(unversioned).await;
    assert!(x.interims.is_empty(), "{x:?}");
}

/// R64: no 104 for an interop version the server does not speak.
#[tokio::test]
async fn r64_no_104_for_a_mismatching_interop_version() {
    let srv = Srv::start().await;
    for other in ["7", "5", "9"] {
        let req = Req::new("POST", "/v1/uploads")
            .basic()
            .h("upload-draft-interop-version", other)
            .complete(true)
            .body(b"hello");
        let x = srv.send(req).await;
        assert_eq!(x.status(), 412, "{other}: {x:?}");
        assert!(x.interims.is_empty(), "{other}: {x:?}");
    }
}

/// RFC 9110 §15.2: no 1xx to an HTTP/1.0 client, which could not read it.
#[tokio::test]
async fn no_104_to_an_http10_client() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let x = srv.send(Req::create(v, true).http10().body(b"hello")).await;
        assert_eq!(x.status(), 201, "{v:?}: {x:?}");
        assert!(x.interims.is_empty(), "{v:?}: {x:?}");
    }
}

/// R65 (-05 §4.2): the 104 names the request's interop version.
#[tokio::test]
async fn r65_the_104_names_the_interop_version() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let x = srv.create(v, false, b"x").await;
        let version = v.number().to_string();
        let i = x.interim(104)[0];
        assert_eq!(i.header("upload-draft-interop-version"), Some(&*version));
        assert_eq!(
            (&*i.version, &*i.reason),
            ("HTTP/1.1", "Upload Resumption Supported")
        );
    }
}
