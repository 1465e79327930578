//! Concurrency (§4.6) under Spool's one-writer rule: a second appender
//! beside a live writer gets `409` with the current offset and
//! `ERR_UPLOAD_LOCKED`; a writer that has received nothing for the stall
//! grace (moved past with the test's clock, not slept through) is taken
//! over, saving what it received; racing appends never interleave; and the
//! offset offset retrieval names is the one the next append is accepted at.

use spool_proto::ietf::Interop;

use crate::support::{Conn, FLUSH, Req, Srv, data, id_of, wait_until};

/// Starts a `?1` append of `all` at 0 and sends its first [`FLUSH`] bytes,
/// then stops sending; returns once the server has stored them all (so the
/// writer has touched its lock for the last time).
async fn stalled_writer(srv: &Srv, v: Interop, url: &str, all: &[u8]) -> Conn {
    let req = Req::append(v, url, 0, Some(true)).h("content-length", &all.len().to_string());
    let mut c = srv.conn().await;
    c.send(&req.head_bytes()).await;
    c.send(&all[..FLUSH]).await;
    let id = id_of(url);
    wait_until("the writer's bytes on disk", async || {
        srv.stored(&id) == FLUSH as u64
    })
    .await;
    c
}

/// Spool's rule (R50's lock alternative): beside a live writer a second
/// append is `409` naming the current offset, with `ERR_UPLOAD_LOCKED`,
/// and the writer carries on undisturbed.
#[tokio::test]
async fn a_second_appender_beside_a_live_writer_gets_409_locked() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"abc").await.location();
        let req = Req::append(v, &url, 3, Some(true))
            .h("expect", "100-continue")
            .h("content-length", "6");
        let mut writer = srv.conn().await;
        writer.send(&req.head_bytes()).await;
        assert_eq!(writer.next_head().await.status, 100, "{v:?}");
        writer.send(b"def").await;
        let second = srv.patch(v, &url, 3, true, b"XYZghi").await;
        assert_eq!(second.status(), 409, "{v:?}: {second:?}");
        assert_eq!(second.fin.code(), Some("ERR_UPLOAD_LOCKED"), "{v:?}");
        assert_eq!(second.fin.int("upload-offset"), 3, "{v:?}");
        assert_eq!(second.fin.complete(), Some(false), "{v:?}");
        let p = second.fin.json();
        assert_eq!(p["code"], "ERR_UPLOAD_LOCKED", "{p}");
        writer.send(b"ghi").await;
        let done = writer.response(false).await;
        assert_eq!(done.status(), 200, "{v:?}: {done:?}");
        assert_eq!(srv.bytes(&url).await, b"abcdefghi", "{v:?}");
    }
}

/// Spool's rule (R50): a writer that has received nothing for the stall
/// grace is taken over by the next append: it saves what it received, so
/// the newcomer at the offset it knew hears the saved one (409), and the
/// upload then completes with nothing lost.
#[tokio::test]
async fn a_stalled_writer_is_taken_over() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let all = data(2 * FLUSH, v.number());
        let url = srv.new_upload(v, &[]).await;
        let mut stalled = stalled_writer(&srv, v, &url, &all).await;
        srv.clock.advance(srv.config.stall_grace);
        let x = srv.patch(v, &url, 0, false, &all[..10]).await;
        assert_eq!(x.status(), 409, "{v:?}: {x:?}");
        assert_eq!(x.fin.code(), Some("ERR_MISMATCHED_OFFSET"), "{v:?}");
        assert_eq!(x.fin.int("upload-offset"), FLUSH as u64, "{v:?}");
        if let Some(x) = stalled.response_or_close(false).await {
            assert_eq!(x.fin.code(), Some("ERR_UPLOAD_INTERRUPTED"), "{x:?}");
        }
        let x = srv.patch(v, &url, FLUSH as u64, true, &all[FLUSH..]).await;
        assert_eq!(x.status(), 200, "{v:?}: {x:?}");
        assert_eq!(srv.bytes(&url).await, all, "{v:?}");
    }
}

/// R49: the offset offset retrieval names is accepted by the next append —
/// also when a stalled writer still held bytes it had not saved: the HEAD
/// takes it over first, so its answer already counts them.
#[tokio::test]
async fn r49_the_retrieved_offset_is_accepted() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.create(v, false, b"abc").await.location();
        let offset = srv.offset(v, &url).await;
        assert!(srv.patch(v, &url, offset, false, b"d").await.status() < 300);

        let all = data(2 * FLUSH, v.number());
        let url = srv.new_upload(v, &[]).await;
        let _stalled = stalled_writer(&srv, v, &url, &all).await;
        srv.clock.advance(srv.config.stall_grace);
        let offset = srv.offset(v, &url).await;
        assert_eq!(offset, FLUSH as u64, "{v:?}");
        let rest = &all[offset as usize..];
        let x = srv.patch(v, &url, offset, true, rest).await;
        assert_eq!(x.status(), 200, "{v:?}: {x:?}");
        assert_eq!(srv.bytes(&url).await, all, "{v:?}");
    }
}

/// R47: appends racing for one upload never interleave: one wins whole,
/// the other is refused (locked, mismatched, or complete), and the upload
/// holds exactly the winner's bytes.
#[tokio::test]
async fn r47_racing_appends_never_interleave() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for round in 0..5 {
            let url = srv.new_upload(v, &[]).await;
            let a = data(256 * 1024, round * 2);
            let b = data(256 * 1024, round * 2 + 1);
            let (xa, xb) = tokio::join!(
                srv.patch(v, &url, 0, true, &a),
                srv.patch(v, &url, 0, true, &b)
            );
            let ok = [&xa, &xb].iter().filter(|x| x.status() < 300).count();
            assert_eq!(ok, 1, "{v:?}: {xa:?} {xb:?}");
            let winner = if xa.status() < 300 { &a } else { &b };
            let loser = if xa.status() < 300 { &xb } else { &xa };
            assert!((400..500).contains(&loser.status()), "{loser:?}");
            assert!(srv.bytes(&url).await == *winner, "{v:?}: mixed bytes");
        }
    }
}
