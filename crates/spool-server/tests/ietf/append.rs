//! Upload append (§4.4.2) and the request fields it reads (§4.1.1–§4.1.3):
//! a cut-off PATCH keeps its prefix, a wrong offset is a 409 naming the
//! right one, lengths are recorded and must agree, the offset never passes
//! the length, a malformed field is ignored as if absent, and
//! `Content-Digest` (§10.2) guards what is appended.

use sha2::Digest as _;
use spool_proto::ietf::{Interop, digest_header};

use crate::support::{Conn, FLUSH, Req, Srv, data, id_of, wait_until};

/// Sends a `?1` PATCH of `rest` at `offset` but only its first `sent`
/// bytes, waits until at least [`FLUSH`] of them are stored, then resets.
async fn cut_append(srv: &Srv, v: Interop, url: &str, offset: u64, rest: &[u8], sent: usize) {
    let req = Req::append(v, url, offset, Some(true)).h("content-length", &rest.len().to_string());
    let mut c = Conn::connect(srv.addr).await;
    c.send(&req.head_bytes()).await;
    c.send(&rest[..sent]).await;
    let id = id_of(url);
    wait_until("the stored bytes", async || {
        srv.stored(&id) >= offset + FLUSH as u64
    })
    .await;
    c.reset();
    wait_until("the saved offset", async || {
        srv.offset(v, url).await >= offset + FLUSH as u64
    })
    .await;
}

/// R33: an interrupted append keeps what arrived, from its start and
/// without gaps: the stored bytes are exactly a prefix of what was sent.
#[tokio::test]
async fn r33_a_cut_off_append_keeps_its_prefix() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let all = data(3 * FLUSH, v.number());
        let url = srv.create(v, false, &all[..10]).await.location();
        let sent = FLUSH + FLUSH / 3;
        cut_append(&srv, v, &url, 10, &all[10..], sent).await;
        let offset = srv.offset(v, &url).await;
        assert!(offset <= 10 + sent as u64, "{v:?}: {offset}");
        let path = srv.dir.path().join("data/uploads").join(id_of(&url));
        let stored = std::fs::read(path).unwrap();
        assert_eq!(stored.len() as u64, offset, "{v:?}");
        assert!(stored == all[..offset as usize], "{v:?}: not a prefix");
    }
}

/// R34: a `?1` append that was cut off does not complete the upload.
#[tokio::test]
async fn r34_a_cut_off_append_is_not_complete() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let all = data(2 * FLUSH, v.number());
        let url = srv.new_upload(v, &[]).await;
        cut_append(&srv, v, &url, 0, &all, FLUSH).await;
        let head = srv.head(v, &url).await;
        assert_eq!(head.complete(), Some(false), "{v:?}: {head:?}");
    }
}

/// R35: an append at the wrong offset is `409` with `Upload-Complete: ?0`
/// (new in the editor's copy; Spool sends it to interop 6 too).
#[tokio::test]
async fn r35_a_mismatching_offset_is_409_with_upload_complete_false() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"12345").await.location();
        for wrong in [0, 3, 6, 1000] {
            let x = srv.patch(v, &url, wrong, false, b"x").await;
            assert_eq!(x.status(), 409, "{v:?} {wrong}: {x:?}");
            assert_eq!(x.fin.complete(), Some(false), "{v:?} {wrong}");
        }
        assert_eq!(srv.offset(v, &url).await, 5, "nothing was appended");
    }
}

/// R36 (-05 §6): the 409 names the correct offset.
#[tokio::test]
async fn r36_the_409_names_the_correct_offset() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"12345").await.location();
        for wrong in [0, 4, 9] {
            let x = srv.patch(v, &url, wrong, true, b"x").await;
            assert_eq!(x.fin.int("upload-offset"), 5, "{v:?}: {x:?}");
        }
    }
}

/// R37: the final append's answer is what the creation endpoint answers
/// for the whole representation sent at once: the asset it became.
#[tokio::test]
async fn r37_the_final_answer_is_the_creation_targets_answer() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let whole = srv.create(v, true, b"0123456789").await.fin.json();
        let url = srv.create(v, false, b"01234").await.location();
        let x = srv.patch(v, &url, 5, true, b"56789").await;
        assert!((200..300).contains(&x.status()), "{v:?}: {x:?}");
        let resumed = x.fin.json();
        let keys = |j: &serde_json::Value| {
            let mut k: Vec<String> = j.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&whole), keys(&resumed), "{whole} vs {resumed}");
        assert_eq!(resumed["length"], whole["length"]);
        let asset = resumed["asset_id"].as_str().unwrap();
        assert_eq!(resumed["share_url"], srv.asset(asset).await["share_url"]);
    }
}

/// R38: the answer that completes the upload says `Upload-Complete: ?1`,
/// and so does its replay to an empty `?1` append.
#[tokio::test]
async fn r38_the_final_answer_carries_upload_complete_true() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"abc").await.location();
        let x = srv.patch(v, &url, 3, true, b"def").await;
        assert_eq!(x.fin.complete(), Some(true), "{v:?}: {x:?}");
        let again = srv.patch(v, &url, 6, true, b"").await;
        assert!(again.status() < 300, "{v:?}: {again:?}");
        assert_eq!(again.fin.complete(), Some(true), "{v:?}: {again:?}");
    }
}

/// R39: an append records the length from `Upload-Length`, or from the end
/// of a `?1` append's content.
#[tokio::test]
async fn r39_an_append_records_the_length() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let req = Req::append(v, &url, 0, Some(false))
            .h("upload-length", "10")
            .body(b"abc");
        assert!(srv.send(req).await.status() < 300);
        assert_eq!(srv.head(v, &url).await.int("upload-length"), 10, "{v:?}");
        let url = srv.create(v, false, b"abc").await.location();
        assert!(srv.patch(v, &url, 3, true, b"defg").await.status() < 300);
        assert_eq!(srv.head(v, &url).await.int("upload-length"), 7, "{v:?}");
    }
}

/// R40 (-05 §6, which says 400): content past the recorded length is
/// refused — with its size known or not (chunked) — and the offset never
/// passes the length. (Spool refuses before storing a byte; it does not
/// also invalidate the upload, see the table.)
#[tokio::test]
async fn r40_the_offset_never_exceeds_the_length() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv
            .send(Req::create(v, false).h("upload-length", "10").body(b"abc"))
            .await
            .location();
        let x = srv.patch(v, &url, 3, false, b"defghijklmno").await;
        assert!((400..500).contains(&x.status()), "{v:?}: {x:?}");
        let chunked = Req::append(v, &url, 3, Some(false))
            .h("transfer-encoding", "chunked")
            .body(b"c\r\ndefghijklmno\r\n0\r\n\r\n");
        let x = srv.send(chunked).await;
        assert!((400..500).contains(&x.status()), "{v:?}: {x:?}");
        assert_eq!(srv.offset(v, &url).await, 3, "{v:?}");
        assert_eq!(srv.stored(&id_of(&url)), 3, "{v:?}");
    }
}

/// R42: an append gets no 104 (Spool sends no progress interims), so none
/// carries `Location`; with `Expect: 100-continue` only the 100 comes.
#[tokio::test]
async fn r42_no_104_with_location_on_an_append() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let req = Req::append(v, &url, 0, Some(true))
            .h("expect", "100-continue")
            .h("content-length", "3");
        let mut c = srv.conn().await;
        c.send(&req.head_bytes()).await;
        let first = c.next_head().await;
        assert_eq!(first.status, 100, "{v:?}: {first:?}");
        c.send(b"abc").await;
        let x = c.response(false).await;
        assert!(x.interims.is_empty(), "{v:?}: {x:?}");
        assert!(x.status() < 300, "{x:?}");
        let plain = srv.create(v, false, b"").await.location();
        let x = srv.patch(v, &plain, 0, false, b"abc").await;
        assert!(x.interims.is_empty(), "{v:?}: {x:?}");
    }
}

/// R43: every append answer says whether the upload is complete.
#[tokio::test]
async fn r43_an_append_answer_carries_upload_complete() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let x = srv.patch(v, &url, 0, false, b"abc").await;
        assert_eq!(x.fin.complete(), Some(false), "{v:?}: {x:?}");
        let x = srv.patch(v, &url, 3, true, b"d").await;
        assert_eq!(x.fin.complete(), Some(true), "{v:?}: {x:?}");
    }
}

/// R7 (-05 §4, §6: 400): two length indications that disagree — in one
/// request, or across requests — are refused, and nothing is appended.
#[tokio::test]
async fn r7_disagreeing_lengths_are_refused() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let x = srv
            .send(Req::create(v, true).h("upload-length", "10").body(b"12345"))
            .await;
        assert_eq!(x.status(), 400, "{v:?}: {x:?}");
        let url = srv
            .send(Req::create(v, false).h("upload-length", "10").body(b"123"))
            .await
            .location();
        let other = Req::append(v, &url, 3, Some(false))
            .h("upload-length", "12")
            .body(b"4");
        let ends_early = Req::append(v, &url, 3, Some(true)).body(b"4");
        let below = Req::append(v, &url, 3, Some(false)).h("upload-length", "2");
        for req in [other, ends_early, below] {
            let x = srv.send(req).await;
            assert_eq!(x.status(), 400, "{v:?}: {x:?}");
        }
        assert_eq!(srv.offset(v, &url).await, 3);
        assert_eq!(srv.head(v, &url).await.int("upload-length"), 10);
    }
}

/// R4: a malformed `Upload-Offset` is ignored: a PATCH carrying one is
/// answered as one without it, a creation carrying one as one without.
#[tokio::test]
async fn r4_a_malformed_upload_offset_is_ignored() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let absent = srv
            .send(Req::append(v, &url, 0, Some(false)).without("upload-offset"))
            .await;
        assert_eq!(absent.status(), 400, "{absent:?}");
        for bad in ["-1", "abc", "1.5", "?1"] {
            let req = Req::append(v, &url, 0, Some(false))
                .without("upload-offset")
                .h("upload-offset", bad);
            let x = srv.send(req).await;
            assert_eq!(x.status(), absent.status(), "{v:?} {bad}: {x:?}");
            assert_eq!(x.fin.code(), absent.fin.code(), "{v:?} {bad}");
            let x = srv
                .send(Req::create(v, false).h("upload-offset", bad))
                .await;
            assert_eq!(x.status(), 201, "{v:?} {bad}: {x:?}");
        }
    }
}

/// R5: a malformed `Upload-Complete` is ignored: answered as if absent
/// (interop 8 requires the field on an append; interop 6 reads its absence
/// as `?1`).
#[tokio::test]
async fn r5_a_malformed_upload_complete_is_ignored() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for bad in ["1", "true", "?2", "\"?0\""] {
            let url = srv.create(v, false, b"ab").await.location();
            let absent = srv.send(Req::append(v, &url, 2, None).body(b"")).await;
            let url = srv.create(v, false, b"ab").await.location();
            let req = Req::append(v, &url, 2, None).h("upload-complete", bad);
            let x = srv.send(req).await;
            assert_eq!(x.status(), absent.status(), "{v:?} {bad}: {x:?}");
            assert_eq!(x.fin.complete(), absent.fin.complete(), "{v:?} {bad}");
            assert_eq!(x.fin.code(), absent.fin.code(), "{v:?} {bad}");
        }
    }
}

/// R6: a malformed `Upload-Length` is ignored: the upload has no length,
/// as if the field were absent.
#[tokio::test]
async fn r6_a_malformed_upload_length_is_ignored() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for bad in ["-5", "ten", "5.0", "1e3"] {
            let x = srv
                .send(Req::create(v, false).h("upload-length", bad).body(b"ab"))
                .await;
            assert_eq!(x.status(), 201, "{v:?} {bad}: {x:?}");
            let url = x.location();
            let req = Req::append(v, &url, 2, Some(false))
                .h("upload-length", bad)
                .body(b"c");
            assert!(srv.send(req).await.status() < 300, "{v:?} {bad}");
            let head = srv.head(v, &url).await;
            assert_eq!(head.header("upload-length"), None, "{v:?} {bad}");
            assert_eq!(head.int("upload-offset"), 3);
        }
    }
}

/// §4.4 (-05 §6: MUST): an append's body is `application/partial-upload`;
/// anything else is refused (415) and nothing is appended.
#[tokio::test]
async fn an_append_must_be_a_partial_upload() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        for ct in [
            None,
            Some("application/offset+octet-stream"),
            Some("video/mp4"),
        ] {
            let mut req = Req::append(v, &url, 0, Some(false)).without("content-type");
            if let Some(ct) = ct {
                req = req.h("content-type", ct);
            }
            let x = srv.send(req.body(b"abc")).await;
            assert_eq!(x.status(), 415, "{v:?} {ct:?}: {x:?}");
        }
        assert_eq!(srv.offset(v, &url).await, 0);
    }
}

/// R56: an append whose `Content-Digest` does not match is refused and
/// nothing of it is appended; a matching one is appended.
#[tokio::test]
async fn r56_a_content_digest_mismatch_appends_nothing() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"abc").await.location();
        let wrong = digest_header(&sha2::Sha256::digest(b"other"));
        let req = Req::append(v, &url, 3, Some(false))
            .h("content-digest", &wrong)
            .body(b"defg");
        let x = srv.send(req).await;
        assert!((400..500).contains(&x.status()), "{v:?}: {x:?}");
        assert_eq!(srv.offset(v, &url).await, 3, "{v:?}");
        assert_eq!(srv.stored(&id_of(&url)), 3, "{v:?}");
        let right = digest_header(&sha2::Sha256::digest(b"defg"));
        let req = Req::append(v, &url, 3, Some(false))
            .h("content-digest", &right)
            .body(b"defg");
        assert!(srv.send(req).await.status() < 300, "{v:?}");
        assert_eq!(srv.offset(v, &url).await, 7, "{v:?}");
    }
}
