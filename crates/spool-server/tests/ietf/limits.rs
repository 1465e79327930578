//! Upload limits (§4.1.4): `Upload-Limit` is a well-formed dictionary on
//! OPTIONS, on the 104, on creation, on offset retrieval and on a 413; it
//! is never empty; and over an upload's life its limits only ever loosen —
//! the end of its lifetime (`max-age`, ticked down with the test's clock)
//! never moves earlier.

use std::time::Duration;

use spool_proto::ietf::{Interop, UploadLimit};

use crate::support::{Msg, Req, Srv};

/// Every `Upload-Limit` one upload's life shows: OPTIONS, the 104, the
/// creation answer, HEAD, an append answer, HEAD again.
async fn limits_over_a_life(srv: &Srv, v: Interop) -> Vec<Msg> {
    let mut seen = Vec::new();
    let options = srv.send(Req::new("OPTIONS", "/v1/uploads").draft(v)).await;
    seen.push(options.fin);
    let x = srv.create(v, false, b"abc").await;
    seen.push(x.interim(104)[0].clone());
    seen.push(x.fin.clone());
    let url = x.location();
    seen.push(srv.head(v, &url).await);
    seen.push(srv.patch(v, &url, 3, false, b"def").await.fin);
    seen.push(srv.head(v, &url).await);
    seen
}

/// R8: what Spool sends is a Dictionary whose members are all Integers
/// (the rule itself is for the receiver; the server receives none).
#[tokio::test]
async fn r8_upload_limit_is_a_dictionary_of_integers() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for m in limits_over_a_life(&srv, v).await {
            let value = m.header("upload-limit").unwrap();
            for member in value.split(',') {
                let (key, int) = member.trim().split_once('=').expect(value);
                assert!(
                    key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                    "{value}"
                );
                assert!(!int.is_empty() && int.len() <= 15, "{value}");
                assert!(int.bytes().all(|b| b.is_ascii_digit()), "{value}");
            }
            assert!(UploadLimit::parse(value).is_some(), "{value}");
        }
    }
}

/// R9: limits never change so that a client following the first ones
/// fails: an upload of exactly the announced `max-size`, in pieces, is
/// accepted to the end.
#[tokio::test]
async fn r9_a_client_following_the_first_limits_never_fails() {
    let srv = Srv::with(|c| c.max_size = 64 * 1024).await;
    for v in Interop::ALL {
        let options = srv.send(Req::new("OPTIONS", "/v1/uploads").draft(v)).await;
        let max = options.fin.limit().max_size.unwrap() as usize;
        let url = srv.new_upload(v, &[]).await;
        let piece = max / 4;
        for i in 0..4 {
            let last = i == 3;
            let x = srv
                .patch(v, &url, (i * piece) as u64, last, &vec![1; piece])
                .await;
            assert!(x.status() < 300, "{v:?} piece {i}: {x:?}");
        }
        assert_eq!(srv.offset(v, &url).await, max as u64);
    }
}

/// R10: `max-size` never decreases over an upload's life.
#[tokio::test]
async fn r10_max_size_never_decreases() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let sizes: Vec<u64> = limits_over_a_life(&srv, v)
            .await
            .iter()
            .map(|m| m.limit().max_size.unwrap())
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{v:?}: {sizes:?}");
    }
}

/// R11: `min-size` and `min-append-size` never increase: Spool applies
/// neither, and never starts to.
#[tokio::test]
async fn r11_min_sizes_never_increase() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for m in limits_over_a_life(&srv, v).await {
            let l = m.limit();
            assert_eq!((l.min_size, l.min_append_size), (None, None), "{m:?}");
        }
    }
}

/// R12 (-05: `expires` SHOULD NOT be reduced): the end of the upload's
/// lifetime never moves earlier: with the clock moved on, `max-age` counts
/// down by exactly that much, and bytes arriving move the end later.
#[tokio::test]
async fn r12_the_end_of_the_lifetime_never_moves_earlier() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let url = srv.new_upload(v, &[]).await;
        let mut ends = Vec::new();
        let mut end_now = async |srv: &Srv| {
            let age = srv.head(v, &url).await.limit().lifetime_secs.unwrap();
            let now = spool_server::clock::Clock::now_ms(&*srv.clock);
            ends.push(now + age as i64 * 1000);
            age
        };
        let first = end_now(&srv).await;
        srv.clock.advance(Duration::from_secs(7));
        assert_eq!(end_now(&srv).await, first - 7, "{v:?}");
        assert!(srv.patch(v, &url, 0, false, b"abc").await.status() < 300);
        end_now(&srv).await;
        srv.clock.advance(Duration::from_secs(60));
        end_now(&srv).await;
        assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{v:?}: {ends:?}");
    }
}

/// R13 (-05 too): OPTIONS to the creation endpoint names `Upload-Limit`,
/// asked in the draft or not (a client may probe before choosing).
#[tokio::test]
async fn r13_options_names_upload_limit() {
    let srv = Srv::start().await;
    let tus = srv.send(Req::new("OPTIONS", "/v1/uploads")).await;
    assert_eq!(tus.fin.limit().max_size, Some(srv.config.max_size));
    for v in Interop::ALL {
        let x = srv.send(Req::new("OPTIONS", "/v1/uploads").draft(v)).await;
        assert!(x.status() < 300, "{x:?}");
        assert_eq!(x.fin.limit().max_size, Some(srv.config.max_size), "{v:?}");
    }
}

/// R15: `Upload-Limit` is never an empty value (Spool always applies a
/// `max-size`; without any limit it would send `min-size=0`).
#[tokio::test]
async fn r15_upload_limit_is_never_empty() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        for m in limits_over_a_life(&srv, v).await {
            let value = m.header("upload-limit").unwrap();
            assert!(!value.trim().is_empty(), "{m:?}");
            assert_ne!(m.limit(), UploadLimit::default(), "{m:?}");
        }
    }
}

/// R16: OPTIONS is not less restrictive than what an upload created at
/// that endpoint then gets.
#[tokio::test]
async fn r16_options_is_not_looser_than_a_created_upload() {
    let srv = Srv::start().await;
    for v in Interop::ALL {
        let options = srv.send(Req::new("OPTIONS", "/v1/uploads").draft(v)).await;
        let announced = options.fin.limit();
        let url = srv.new_upload(v, &[]).await;
        let applied = srv.head(v, &url).await.limit();
        assert!(announced.max_size <= applied.max_size, "{v:?}");
        assert!(announced.lifetime_secs <= applied.lifetime_secs, "{v:?}");
    }
}

/// R17: a 413 from the limits names them — the server's on a creation too
/// large, the upload's own on an append past an on-demand upload's
/// `max_size`.
#[tokio::test]
async fn r17_a_413_names_the_limits() {
    let srv = Srv::with(|c| c.max_size = 1000).await;
    for v in Interop::ALL {
        let big = Req::create(v, false).h("upload-length", "1001");
        let x = srv.send(big).await;
        assert_eq!(x.status(), 413, "{v:?}: {x:?}");
        assert_eq!(x.fin.limit().max_size, Some(1000), "{v:?}");
        let (_, url) = srv.on_demand(r#"{"max_size": 100}"#).await;
        assert_eq!(srv.head(v, &url).await.limit().max_size, Some(100));
        let x = srv.patch(v, &url, 0, false, &[0; 101]).await;
        assert_eq!(x.status(), 413, "{v:?}: {x:?}");
        assert_eq!(x.fin.limit().max_size, Some(100), "{v:?}: {x:?}");
    }
}
