//! The CLI's failures: `spool: ERR_…: message` on stderr, with the exit
//! status of the failure's class (README, "Exit statuses") — a script can
//! tell wrong credentials from bad arguments without parsing messages.

use std::process::Output;

use spool_e2e::*;

fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_exit_5_with_the_servers_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let file = dir.path().join("bytes");
    std::fs::write(&file, vec![7u8; 10_000]).unwrap();
    let out = spool("upload")
        .arg(&file)
        .args(["--server", &server.base, "--token-id", TOKEN_ID])
        .args(["--token-secret", "not-the-secret"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    let err = said(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.starts_with("spool: ERR_UNAUTHORIZED: "), "{err}");
}

#[test]
fn bad_arguments_exit_2_with_err_invalid_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = spool("record")
        .args(["--source", "synthetic", "--fragment-secs", "0.1"])
        .arg("--output")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = said(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("spool: ERR_INVALID_SETTINGS: "), "{err}");
    assert!(err.contains("fragment-secs"), "{err}");
}

#[test]
fn an_unknown_source_exits_1_with_err_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = spool("record")
        .args(["--source", "x11::4242", "--duration", "1"])
        .arg("--output")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = said(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("\nspool: ERR_SOURCE: "), "{err}");
}
