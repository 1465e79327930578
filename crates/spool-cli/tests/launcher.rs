//! The two programs: `spool` (the launcher) links no FFmpeg, runs the
//! client commands alone and execs `spool-full` for the rest — in the same
//! process, with its exit status — and says clearly when `spool-full` is
//! missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const SPOOL: &str = env!("CARGO_BIN_EXE_spool");
const SPOOL_FULL: &str = env!("CARGO_BIN_EXE_spool-full");

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run")
}

fn needed(bin: &Path) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-d").arg(bin));
    assert!(out.status.success(), "readelf -d {}", bin.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(str::to_owned))
        .collect()
}

#[test]
fn the_launcher_loads_no_ffmpeg_and_the_full_program_does() {
    let lean = needed(Path::new(SPOOL));
    assert!(
        lean.iter()
            .all(|l| !l.starts_with("libav") && !l.starts_with("libsw")),
        "the launcher needs {lean:?}"
    );
    let full = needed(Path::new(SPOOL_FULL));
    assert!(
        full.iter().any(|l| l.starts_with("libavcodec")),
        "spool-full needs {full:?}"
    );
}

#[test]
fn both_programs_say_the_same_version() {
    let a = run(Command::new(SPOOL).arg("--version"));
    let b = run(Command::new(SPOOL_FULL).arg("--version"));
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(
        String::from_utf8_lossy(&a.stdout).trim(),
        format!("spool {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn other_commands_reach_the_full_program_with_its_status() {
    let help = run(Command::new(SPOOL).args(["serve", "--help"]));
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--listen"));
    // The whole help lists every command, the client's among them.
    let help = run(Command::new(SPOOL).arg("--help"));
    let text = String::from_utf8_lossy(&help.stdout);
    for c in ["serve", "upload", "resume", "uploads", "record", "sources"] {
        assert!(text.contains(c), "{c} missing from:\n{text}");
    }
    // A usage error of spool-full is its status 2, passed through.
    let bad = run(Command::new(SPOOL).args(["serve", "--max-connections", "x"]));
    assert_eq!(bad.status.code(), Some(2));
    let bad = run(Command::new(SPOOL).arg("no-such-command"));
    assert_eq!(bad.status.code(), Some(2));
    // The client's own usage errors are the launcher's, the same status.
    let bad = run(Command::new(SPOOL).args(["upload", "--chunk-size"]));
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_launcher_without_the_full_program_uploads_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("spool");
    std::fs::copy(SPOOL, &lone).unwrap();
    let out = run(Command::new(&lone).args(["serve", "--help"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ERR_INTERNAL") && err.contains("spool-full"),
        "{err}"
    );
    // The client commands need nothing else: a journal listing works.
    let out = run(Command::new(&lone)
        .args(["uploads", "--json", "--state-dir"])
        .arg(dir.path().join("state")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
