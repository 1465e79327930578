//! `make dist` as a team runs it, with its own keys (throwaway ones made
//! here: `tauri signer generate` with a password, `gpg --quick-gen-key` with
//! a passphrase): every updater signature verifies with `minisign -V` and
//! the public key and is bound to the version; `rpm -K` finds the rpm's
//! signature good once the key is imported (and not before); apt, configured
//! in a temp folder with `signed-by` the team's key, installs the .deb from
//! the repository and refuses it when a byte of `Packages` or `InRelease` is
//! flipped; SHA256SUMS.asc verifies with gpg; the package is `spool-desktop`,
//! declares its libraries, and its programs answer `--version`. The debug
//! profile (DIST_PROFILE=debug) reuses what `make test` built.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use spool_e2e::*;

/// The command line without its environment (which may hold keys).
fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{}: {e}", shown(cmd)))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        shown(cmd),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

struct Keys {
    updater_secret: String,
    updater_public: String,
    gpg_secret: String,
    gpg_public: PathBuf,
    gnupg: PathBuf,
}

const UPDATER_PASSWORD: &str = "updater-pass-42";
const GPG_PASSPHRASE: &str = "gpg-pass-42";

fn make_keys(dir: &Path) -> Keys {
    let key = dir.join("updater.key");
    ok(Command::new(root().join("ui/node_modules/.bin/tauri"))
        .args(["signer", "generate", "--ci", "-p", UPDATER_PASSWORD, "-w"])
        .arg(&key));
    let gnupg = dir.join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = || {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &gnupg)
            .args(["--batch", "--pinentry-mode", "loopback"]);
        c
    };
    ok(gpg().args([
        "--passphrase",
        GPG_PASSPHRASE,
        "--quick-gen-key",
        "Spool dist test <dist-test@spool.invalid>",
        "rsa3072",
        "sign",
        "never",
    ]));
    let gpg_secret = ok(gpg().args([
        "--passphrase",
        GPG_PASSPHRASE,
        "--armor",
        "--export-secret-keys",
    ]));
    let gpg_public = dir.join("team.gpg");
    ok(gpg().arg("--export").arg("--output").arg(&gpg_public));
    Keys {
        updater_secret: std::fs::read_to_string(&key).unwrap(),
        updater_public: std::fs::read_to_string(key.with_extension("key.pub")).unwrap(),
        gpg_secret,
        gpg_public,
        gnupg,
    }
}

/// `make dist` with `keys`, into `out`; its output.
fn make_dist(keys: &Keys, out: &Path) -> String {
    let mut cmd = Command::new("make");
    cmd.current_dir(root())
        .args(["--no-print-directory", "dist"])
        .env("DIST_PROFILE", "debug")
        .env("SPOOL_DIST_DIR", out)
        .env("TAURI_SIGNING_PRIVATE_KEY", &keys.updater_secret)
        .env("TAURI_SIGNING_PRIVATE_KEY_PASSWORD", UPDATER_PASSWORD)
        .env("SPOOL_UPDATER_PUBKEY", &keys.updater_public)
        .env("SPOOL_GPG_KEY", &keys.gpg_secret)
        .env("SPOOL_GPG_PASSPHRASE", GPG_PASSPHRASE)
        .env(
            "SPOOL_UPDATE_ENDPOINT",
            "https://updates.spool.invalid/stable/latest.json",
        );
    // As from a developer's shell: without the package variables cargo sets
    // for this test, which build scripts watch (they would rebuild for them).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO_") && name != "CARGO_HOME") || name == "OUT_DIR" {
            cmd.env_remove(&*name);
        }
    }
    let started = std::time::Instant::now();
    let stdout = ok(&mut cmd);
    eprintln!(
        "make dist (debug) took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    stdout
}

fn one(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one *{suffix} in {}: {found:?}",
        dir.display()
    );
    found[0].clone()
}

fn minisign_verifies(file: &Path, sig_b64: &str, pub_b64: &str, tmp: &Path) -> bool {
    let sig = tmp.join("check.minisig");
    let public = tmp.join("check.pub");
    std::fs::write(&sig, b64(sig_b64)).unwrap();
    std::fs::write(&public, b64(pub_b64)).unwrap();
    run(Command::new("minisign")
        .arg("-Vq")
        .arg("-p")
        .arg(&public)
        .arg("-m")
        .arg(file)
        .arg("-x")
        .arg(&sig))
    .status
    .success()
}

/// An apt configuration of its own in `dir`, with only `repo` as a source.
fn apt_config(dir: &Path, repo: &Path, key: &Path) -> PathBuf {
    for d in [
        "state/lists/partial",
        "cache/archives/partial",
        "etc/sources.list.d",
        "etc/trusted.gpg.d",
        "etc/preferences.d",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("etc/sources.list"),
        // copy: (not file:) so that apt fetches the package into its cache.
        format!(
            "deb [signed-by={}] copy://{} stable main\n",
            key.display(),
            repo.display()
        ),
    )
    .unwrap();
    let conf = dir.join("apt.conf");
    std::fs::write(
        &conf,
        format!(
            "Dir::State \"{d}/state\";\nDir::State::status \"/var/lib/dpkg/status\";\nDir::Cache \"{d}/cache\";\n\
             Dir::Etc::SourceList \"{d}/etc/sources.list\";\nDir::Etc::SourceParts \"{d}/etc/sources.list.d\";\n\
             Dir::Etc::TrustedParts \"{d}/etc/trusted.gpg.d\";\nDir::Etc::Preferences \"{d}/etc/preferences\";\n\
             Dir::Etc::PreferencesParts \"{d}/etc/preferences.d\";\nAPT::Sandbox::User \"root\";\n\
             Acquire::Languages \"none\";\n",
            d = dir.display()
        ),
    )
    .unwrap();
    conf
}

fn apt_get(conf: &Path) -> Command {
    let mut c = Command::new("apt-get");
    c.env("APT_CONFIG", conf)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o", "Debug::NoLocking=1"]);
    c
}

fn copy_dir(from: &Path, to: &Path) {
    ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

fn flip_in(file: &Path, needle: &str) {
    let text = std::fs::read(file).unwrap();
    let at = text
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle:?} not in {}", file.display()));
    let mut text = text;
    text[at + needle.len() - 1] ^= 0x01;
    std::fs::write(file, text).unwrap();
}

#[test]
fn make_dist_signs_every_artifact_with_the_teams_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = make_keys(tmp.path());
    let out = tmp.path().join("dist");
    let stdout = make_dist(&keys, &out);
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.contains("signed with your keys"), "last line: {last}");

    let version = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(root().join("tauri.conf.json")).unwrap(),
    )
    .unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let deb = one(&out, "_amd64.deb");
    let rpm = one(&out, ".x86_64.rpm");
    assert_eq!(
        deb.file_name().unwrap().to_string_lossy(),
        format!("spool-desktop_{version}_amd64.deb")
    );

    // Updater signatures: minisign -V with the public key, the version in
    // the trusted comment, the same signatures in latest.json.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("latest.json")).unwrap()).unwrap();
    assert_eq!(manifest["version"], version.as_str());
    for artifact in [&deb, &rpm] {
        let sig = std::fs::read_to_string(format!("{}.sig", artifact.display())).unwrap();
        assert!(
            minisign_verifies(artifact, &sig, &keys.updater_public, tmp.path()),
            "{} does not verify",
            artifact.display()
        );
        let text = String::from_utf8(b64(&sig)).unwrap();
        assert!(
            text.contains(&format!("version:{version}")),
            "the signature is not bound to {version}: {text}"
        );
        let name = artifact.file_name().unwrap().to_string_lossy().into_owned();
        let listed: Vec<&serde_json::Value> = manifest["platforms"]
            .as_object()
            .unwrap()
            .values()
            .filter(|p| p["url"].as_str().is_some_and(|u| u.ends_with(&name)))
            .collect();
        assert!(!listed.is_empty(), "{name} is not in latest.json");
        for p in listed {
            assert_eq!(p["signature"].as_str().unwrap().trim(), sig.trim());
            assert_eq!(
                p["url"].as_str().unwrap(),
                format!("https://updates.spool.invalid/stable/{name}")
            );
        }
        // A flipped byte does not verify.
        let bad = tmp.path().join("tampered");
        let mut bytes = std::fs::read(artifact).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&bad, bytes).unwrap();
        assert!(!minisign_verifies(
            &bad,
            &sig,
            &keys.updater_public,
            tmp.path()
        ));
    }
    assert!(
        manifest["platforms"]["linux-x86_64"].is_object(),
        "{manifest}"
    );

    // rpm -K: good with the team's key imported, not without.
    let armored = tmp.path().join("team.asc");
    ok(Command::new("gpg")
        .env("GNUPGHOME", &keys.gnupg)
        .args(["--batch", "--armor", "--export", "--output"])
        .arg(&armored));
    let rpmdb = tmp.path().join("rpmdb");
    std::fs::create_dir_all(&rpmdb).unwrap();
    let rpm_k = |rpmdb: &Path| {
        let o = run(Command::new("rpm")
            .arg("--dbpath")
            .arg(rpmdb)
            .arg("-K")
            .arg(&rpm));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (good, text) = rpm_k(&rpmdb);
    assert!(!good, "rpm -K passed without the team's key: {text}");
    ok(Command::new("rpm")
        .arg("--dbpath")
        .arg(&rpmdb)
        .arg("--import")
        .arg(&armored));
    let (good, text) = rpm_k(&rpmdb);
    assert!(good && text.contains("signatures OK"), "rpm -K: {text}");

    // SHA256SUMS: the sums hold, and the signature verifies with the key.
    ok(Command::new("sha256sum")
        .current_dir(&out)
        .args(["--strict", "-c", "SHA256SUMS"]));
    let verify = tmp.path().join("verify-gnupg");
    std::fs::create_dir_all(&verify).unwrap();
    std::fs::set_permissions(&verify, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    ok(Command::new("gpg")
        .env("GNUPGHOME", &verify)
        .args(["--batch", "--import"])
        .arg(&keys.gpg_public));
    ok(Command::new("gpg")
        .env("GNUPGHOME", &verify)
        .args(["--batch", "--verify"])
        .arg(out.join("SHA256SUMS.asc"))
        .arg(out.join("SHA256SUMS")));

    // apt installs spool-desktop from the repository, signed-by the key…
    let apt = out.join("apt");
    for f in [
        "dists/stable/InRelease",
        "dists/stable/Release",
        "dists/stable/Release.gpg",
        "dists/stable/main/binary-amd64/Packages",
    ] {
        assert!(apt.join(f).is_file(), "apt/{f}");
    }
    let conf = apt_config(&tmp.path().join("apt-ok"), &apt, &keys.gpg_public);
    ok(apt_get(&conf).arg("update"));
    ok(apt_get(&conf).args(["install", "-y", "--download-only", "spool-desktop"]));
    let fetched = one(&tmp.path().join("apt-ok/cache/archives"), ".deb");
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(&deb).unwrap()
    );
    // …and refuses a repository with a flipped byte in Packages or InRelease.
    for (file, needle) in [
        (
            "dists/stable/main/binary-amd64/Packages",
            "Package: spool-desktop",
        ),
        ("dists/stable/InRelease", "Label: Spool"),
    ] {
        let name = file.rsplit('/').next().unwrap();
        let bad = tmp.path().join(format!("repo-bad-{name}"));
        copy_dir(&apt, &bad);
        flip_in(&bad.join(file), needle);
        if name == "Packages" {
            // apt would take the intact Packages.gz instead.
            let _ = std::fs::remove_file(bad.join(format!("{file}.gz")));
        }
        let conf = apt_config(
            &tmp.path().join(format!("apt-bad-{name}")),
            &bad,
            &keys.gpg_public,
        );
        let update = run(apt_get(&conf).arg("update"));
        let install =
            run(apt_get(&conf).args(["install", "-y", "--download-only", "spool-desktop"]));
        assert!(
            !update.status.success() && !install.status.success(),
            "apt accepted a tampered {name}:\n{}\n{}",
            String::from_utf8_lossy(&update.stderr),
            String::from_utf8_lossy(&install.stderr)
        );
    }

    // The package: its name, its libraries, the CLI inside, --version.
    let field = |f: &str| {
        ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f))
            .trim()
            .to_owned()
    };
    assert_eq!(field("Package"), "spool-desktop");
    let depends = field("Depends");
    for lib in [
        "libwebkit2gtk-4.1-0",
        "libgtk-3-0",
        "libavcodec59",
        "libpipewire-0.3-0",
        "libpulse0",
    ] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }
    ok(Command::new("python3")
        .arg(root().join("scripts/check-deb-depends.py"))
        .arg(&deb));
    let unpacked = tmp.path().join("unpacked");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    let v = ok(Command::new(unpacked.join("usr/bin/spool-desktop"))
        .arg("--version")
        .env_remove("DISPLAY"));
    assert_eq!(v.trim(), format!("spool-desktop {version}"));
    let v = ok(Command::new(unpacked.join("usr/bin/spool")).arg("--version"));
    assert!(v.contains(&version), "{v}");
    // The launcher finds the spool-full it execs in ../lib/spool/.
    let v = ok(Command::new(unpacked.join("usr/lib/spool/spool-full")).arg("--version"));
    assert!(v.contains(&version), "{v}");
    let help = ok(Command::new(unpacked.join("usr/bin/spool")).args(["serve", "--help"]));
    assert!(help.contains("--listen"), "{help}");
}
