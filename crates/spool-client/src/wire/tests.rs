//! The wire's decisions and headers, one row per case.

#![allow(clippy::unwrap_used)]

use super::*;

fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.insert(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}

type Headers<'a> = Vec<(&'static str, &'a str)>;

fn wire_of(protocol: Protocol, status: u16, headers: &[(&'static str, &str)]) -> String {
    match decide(protocol, status, &map(headers)) {
        Ok(Decided::Speak(d)) => format!("{} {:?}", d.wire.as_str(), d.max_size),
        Ok(Decided::Transient) => "later".into(),
        Err(e) => format!("error {:?}", e.code()),
    }
}

/// One row per OPTIONS answer: the draft needs all three signs.
#[test]
fn discovery_chooses_the_draft_only_when_the_server_says_so() {
    let draft = [
        ("upload-limit", "max-size=1000, max-age=60"),
        ("upload-draft-interop-version", "8"),
    ];
    let tus = [("tus-resumable", "1.0.0"), ("tus-max-size", "500")];
    let unsupported = "error Some(UnsupportedVersion)";
    let cases: Vec<(Protocol, u16, Headers, &str)> = vec![
        (Protocol::Auto, 200, draft.to_vec(), "ietf Some(1000)"),
        (Protocol::Ietf, 204, draft.to_vec(), "ietf Some(1000)"),
        (Protocol::Auto, 204, tus.to_vec(), "tus Some(500)"),
        (Protocol::Ietf, 204, tus.to_vec(), unsupported),
        // An echo of another version, or none, is not this draft.
        (
            Protocol::Auto,
            200,
            vec![
                ("upload-limit", "min-size=0"),
                ("upload-draft-interop-version", "6"),
            ],
            "tus None",
        ),
        (Protocol::Auto, 200, vec![draft[0]], "tus None"),
        (Protocol::Ietf, 200, vec![draft[0]], unsupported),
        // An Upload-Limit that cannot be read voids the field.
        (
            Protocol::Ietf,
            200,
            vec![("upload-limit", "max-size=\"x\""), draft[1]],
            unsupported,
        ),
        // Not a 2xx: the signs do not count.
        (Protocol::Ietf, 404, draft.to_vec(), unsupported),
        (Protocol::Auto, 405, vec![], "tus None"),
        // A failing server has not answered the question yet.
        (Protocol::Auto, 503, vec![], "later"),
        (Protocol::Ietf, 500, vec![], "later"),
        (Protocol::Auto, 429, vec![], "later"),
        // TUS asked for: never the draft, whatever the server says.
        (
            Protocol::Tus,
            200,
            [&draft[..], &tus[..]].concat(),
            "tus Some(500)",
        ),
        (Protocol::Tus, 503, vec![], "tus None"),
    ];
    for (protocol, status, headers, want) in cases {
        assert_eq!(
            wire_of(protocol, status, &headers),
            want,
            "{protocol:?} {status} {headers:?}"
        );
    }
}

#[test]
fn only_tus_discovery_goes_without_the_interop_header() {
    assert!(discovery_headers(Protocol::Tus).is_empty());
    for p in [Protocol::Ietf, Protocol::Auto] {
        assert_eq!(discovery_headers(p)[ietf::INTEROP_VERSION], "8");
    }
    for p in [Protocol::Tus, Protocol::Ietf, Protocol::Auto] {
        assert_eq!(Protocol::parse(p.as_str()), Some(p));
    }
    assert_eq!(Protocol::parse("http"), None);
}

#[test]
fn the_unsupported_error_says_what_was_missing() {
    let e = decide(Protocol::Ietf, 204, &map(&[("tus-resumable", "1.0.0")])).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("--protocol ietf") && m.contains("Upload-Limit"),
        "{m}"
    );
    assert!(m.contains("Upload-Draft-Interop-Version: 8"), "{m}");
    assert_eq!(e.class(), crate::FailureClass::Invalid);
}

fn headers_of(m: &HeaderMap) -> Vec<String> {
    let mut v: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn creation_headers_per_wire() {
    assert_eq!(
        headers_of(&Wire::Tus.creation_headers("filename YS5iaW4=", Some("a.bin"))),
        [
            "tus-resumable: 1.0.0",
            "upload-defer-length: 1",
            "upload-metadata: filename YS5iaW4=",
        ]
    );
    assert_eq!(
        headers_of(&Wire::Ietf.creation_headers("filename YS5iaW4=", Some("a.bin"))),
        [
            "content-disposition: inline; filename=\"a.bin\"",
            "content-length: 0",
            "upload-complete: ?0",
            "upload-draft-interop-version: 8",
            "upload-metadata: filename YS5iaW4=",
        ]
    );
    assert_eq!(
        headers_of(&Wire::Ietf.creation_headers("", None)),
        [
            "content-length: 0",
            "upload-complete: ?0",
            "upload-draft-interop-version: 8",
        ]
    );
}

#[test]
fn file_names_always_fit_content_disposition() {
    assert_eq!(
        content_disposition(r#"my "take" \ 2.mp4"#),
        r#"inline; filename="my \"take\" \\ 2.mp4""#
    );
    assert_eq!(
        content_disposition("café.mp4"),
        "inline; filename=\"caf_.mp4\"; filename*=UTF-8''caf%C3%A9.mp4"
    );
    assert!(HeaderValue::from_str(&content_disposition("a\nb é")).is_ok());
}

fn sha256() -> Checksum {
    Checksum {
        algorithm: ChecksumAlgorithm::Sha256,
        digest: vec![0; 32],
    }
}

#[test]
fn patch_headers_per_wire() {
    let c = sha256();
    assert_eq!(
        headers_of(&Wire::Tus.patch_headers(10, 5, None, Some(&c))),
        [
            "content-length: 5",
            "content-type: application/offset+octet-stream",
            "tus-resumable: 1.0.0",
            "upload-checksum: sha256 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "upload-offset: 10",
        ]
    );
    assert_eq!(
        headers_of(&Wire::Ietf.patch_headers(10, 5, None, Some(&c))),
        [
            "content-digest: sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:",
            "content-length: 5",
            "content-type: application/partial-upload",
            "upload-complete: ?0",
            "upload-draft-interop-version: 8",
            "upload-offset: 10",
        ]
    );
    // The append that declares the length completes the upload.
    assert_eq!(
        headers_of(&Wire::Ietf.patch_headers(10, 0, Some(10), None)),
        [
            "content-length: 0",
            "content-type: application/partial-upload",
            "upload-complete: ?1",
            "upload-draft-interop-version: 8",
            "upload-length: 10",
            "upload-offset: 10",
        ]
    );
    assert_eq!(
        Wire::Ietf.checksum_algorithm(ChecksumAlgorithm::Sha1),
        ChecksumAlgorithm::Sha256
    );
    assert_eq!(
        Wire::Tus.checksum_algorithm(ChecksumAlgorithm::Sha1),
        ChecksumAlgorithm::Sha1
    );
}

#[test]
fn append_answers_per_wire() {
    let ietf = |pairs: &[(&'static str, &str)], completing| {
        Wire::Ietf
            .offset_after_append(&map(pairs), 100, 50, completing)
            .map_err(|e| e.to_string())
    };
    assert_eq!(ietf(&[("upload-complete", "?0")], false), Ok(150));
    assert_eq!(
        ietf(
            &[("upload-complete", "?0"), ("upload-offset", "120")],
            false
        ),
        Ok(120)
    );
    assert_eq!(ietf(&[("upload-complete", "?1")], true), Ok(150));
    assert_eq!(ietf(&[], true), Ok(150));
    assert!(ietf(&[("upload-complete", "?0")], true).is_err());
    assert!(ietf(&[("upload-complete", "?1")], false).is_err());
    assert!(ietf(&[("upload-complete", "?1"), ("upload-offset", "120")], true).is_err());
    // TUS needs its Upload-Offset.
    assert_eq!(
        Wire::Tus
            .offset_after_append(&map(&[("upload-offset", "150")]), 100, 50, false)
            .unwrap(),
        150
    );
    assert!(
        Wire::Tus
            .offset_after_append(&map(&[]), 100, 50, true)
            .is_err()
    );
    assert!(Wire::Ietf.appended(200) && Wire::Ietf.appended(204));
    assert!(!Wire::Tus.appended(200) && Wire::Tus.appended(204));
}

#[test]
fn head_answers_per_wire() {
    let pairs = [("upload-offset", "7"), ("upload-length", "9")];
    let tus = Wire::Tus.head_info(&map(&pairs)).unwrap();
    assert_eq!((tus.offset, tus.length, tus.declared), (7, Some(9), true));
    // A draft upload with a known length is not done until its `?1`.
    let draft = Wire::Ietf
        .head_info(&map(&[pairs[0], pairs[1], ("upload-complete", "?0")]))
        .unwrap();
    assert_eq!(
        (draft.offset, draft.length, draft.declared),
        (7, Some(9), false)
    );
    let done = Wire::Ietf
        .head_info(&map(&[
            ("upload-offset", "9"),
            ("upload-length", "9"),
            ("upload-complete", "?1"),
        ]))
        .unwrap();
    assert!(done.declared);
    assert!(
        Wire::Ietf
            .head_info(&map(&[("upload-offset", "-1")]))
            .is_err()
    );
    assert!(
        Wire::Tus
            .head_info(&map(&[("upload-offset", "x")]))
            .is_err()
    );
}
