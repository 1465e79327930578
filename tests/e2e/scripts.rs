//! The Makefile and scripts/ as a developer runs them: `make demo` with
//! `CARGO_TARGET_DIR` naming another folder must run the binary cargo built
//! there, not a `./target/release/spool` that happens to exist.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use spool_e2e::*;

/// A process group, ended (SIGTERM, then SIGKILL) on drop: `make`, the
/// demo script and everything it starts (Xvfb, `spool serve`).
struct Group(i32);

impl Group {
    fn signal(&self, which: &str) {
        let _ = Command::new("kill")
            .args([which, "--", &format!("-{}", self.0)])
            .status();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal("-TERM");
        if !wait_until(Duration::from_secs(10), || group_members(self.0).is_empty()) {
            self.signal("-KILL");
        }
    }
}

/// The argument vectors of the live processes in process group `pgid`.
fn group_members(pgid: i32) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = entry.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        if fields.first() == Some(&"Z") || fields.get(2) != Some(&pgid.to_string().as_str()) {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let argv: Vec<String> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !argv.is_empty() {
            found.push(argv);
        }
    }
    found
}

/// `make demo` with CARGO_TARGET_DIR set to another spelling of the target
/// folder this test was built in (a symlink in a temp dir: cargo finds its
/// builds up to date, so this costs at most the release build `make demo`
/// always does). The server the demo leaves running must be the binary under
/// that folder — `./target/release/spool` exists too, so a script that
/// hard-codes it would still print a link but fail here — and its share link
/// must answer.
#[test]
fn make_demo_runs_the_binaries_where_cargo_target_dir_puts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::os::unix::fs::symlink(target_dir(), &elsewhere).unwrap();
    let port = free_port();
    let mut cmd = Command::new("make");
    cmd.current_dir(root())
        .args(["--no-print-directory", "demo"])
        .env("CARGO_TARGET_DIR", &elsewhere)
        .env("DEMO_SECONDS", "2")
        .env("DEMO_DIR", tmp.path().join("demo"))
        .env("SPOOL_DATA", tmp.path().join("data"))
        .env("SPOOL_LISTEN", format!("127.0.0.1:{port}"))
        .process_group(0);
    // As from a developer's shell: without the package variables cargo sets
    // for this test, which build scripts (ring's) watch, so that the release
    // build would be redone for them, and again after.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO_") && name != "CARGO_HOME") || name == "OUT_DIR" {
            cmd.env_remove(&*name);
        }
    }
    let mut demo = Proc::spawn(cmd);
    let _group = Group(demo.child.id() as i32);

    // The release build may be out of date: allow for building it.
    let link = demo.wait_line(Duration::from_secs(1800), |l| l.starts_with("share link: "));
    let link = link.trim_start_matches("share link: ").to_owned();

    let servers: Vec<Vec<String>> = group_members(demo.child.id() as i32)
        .into_iter()
        .filter(|argv| argv.get(1).map(String::as_str) == Some("serve"))
        .collect();
    let expected = elsewhere.join("release/spool");
    assert_eq!(
        servers.len(),
        1,
        "one `spool serve` in the demo's process group: {servers:?}"
    );
    assert_eq!(
        Path::new(&servers[0][0]),
        expected,
        "the demo's server is not the binary under CARGO_TARGET_DIR"
    );

    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(reqwest::get(&link))
        .map(|r| r.status())
        .unwrap_or_else(|e| panic!("GET {link}: {e}"));
    assert!(status.is_success(), "GET {link}: {status}");
}
