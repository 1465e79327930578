//! `spool record` with sound, against a private PulseAudio server per test
//! (null sinks, a virtual microphone; tones from sox, words from espeak-ng):
//! each source records its own sound, both mix, sound and picture stay in
//! sync, a microphone that disappears leaves silence of the right length,
//! and sound survives a network cut and kill -9 + `spool resume` like the
//! video. Without an audio server an explicit request fails before
//! anything is recorded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spool_e2e::audio::{Pulse, click, decode, power, rms, tone, window, words};
use spool_e2e::timeline::{frames, runs};
use spool_e2e::*;

fn event(line: &str, name: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["event"] == name)
}

fn audio_event(line: &str, source: &str, state: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|v| v["event"] == "audio" && v["source"] == source && v["state"] == state)
}

/// `spool record` of a small synthetic picture with sound from `pulse`.
fn record(pulse: &Pulse, dir: &Path, target: &[&str], extra: &[&str]) -> Proc {
    let mut cmd = spool_record(&dir.join("state"), &dir.join("out"), target, extra);
    cmd.env("PULSE_SERVER", pulse.server());
    if !extra.contains(&"--source") {
        cmd.args(["--source", "synthetic:160x120", "--fps", "10"]);
    }
    Proc::spawn(cmd)
}

/// The complete event, after the recording ended by itself.
fn completed(rec: Proc) -> serde_json::Value {
    let (status, lines) = rec.finish(Duration::from_secs(60));
    assert!(status.success(), "{lines:?}");
    complete(&json_lines(&lines))
}

/// Which of 440 Hz and 880 Hz are loud in `pcm` between `from` and `to` s.
fn tones_in(pcm: &[f32], from: f64, to: f64) -> (bool, bool) {
    let w = window(pcm, from, to);
    let (a, b, off) = (power(w, 440.0), power(w, 880.0), power(w, 1300.0));
    (a > 1e-3 && a > 100.0 * off, b > 1e-3 && b > 100.0 * off)
}

/// Half a second of silence as a WAV file.
fn silence(dir: &Path) -> PathBuf {
    let path = dir.join("silence.wav");
    let ok = std::process::Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "2", "-b", "16"])
        .arg(&path)
        .args(["trim", "0", "0.5"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    path
}

fn local_of(c: &serde_json::Value) -> PathBuf {
    PathBuf::from(c["local_path"].as_str().unwrap())
}

/// Records 4 s with `flags` while 440 Hz plays into the output and 880 Hz
/// into the microphone; which of them are in the recording.
fn record_both_tones(flags: &[&str]) -> (bool, bool, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start();
    let (t440, t880) = (tone(dir.path(), 440, 4.0), tone(dir.path(), 880, 4.0));
    let mut args = vec!["--duration", "4"];
    args.extend_from_slice(flags);
    let mut rec = record(&pulse, dir.path(), &[], &args);
    let first = if flags.contains(&"--mic") {
        "mic"
    } else {
        "system"
    };
    rec.wait_line(Duration::from_secs(20), |l| audio_event(l, first, "active"));
    let a = pulse.play("spk", &t440);
    let b = pulse.play("micsink", &t880);
    let c = completed(rec);
    drop((a, b));
    let pcm = decode(&local_of(&c));
    let (has440, has880) = tones_in(&pcm, 1.5, 3.5);
    (has440, has880, c)
}

#[test]
fn the_microphone_records_the_microphone_only() {
    let (has440, has880, c) = record_both_tones(&["--mic", "default"]);
    assert!(has880 && !has440, "440: {has440}, 880: {has880}");
    let a = &c["audio"];
    assert_eq!(a["tracks"], 1, "{c}");
    let dur = a["duration_ms"].as_i64().unwrap();
    assert!((dur - c["duration_ms"].as_i64().unwrap()).abs() <= 1, "{c}");
    assert!(a["av_offset_ms"].as_i64().unwrap().abs() <= 20, "{c}");
}

#[test]
fn system_audio_records_what_the_output_plays_only() {
    let (has440, has880, _) = record_both_tones(&["--system-audio"]);
    assert!(has440 && !has880, "440: {has440}, 880: {has880}");
}

#[tokio::test(flavor = "multi_thread")]
async fn both_sources_mix_into_one_track_that_is_uploaded_while_recording() {
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let target = server_args(&server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let (t440, t880) = (tone(dir.path(), 440, 6.0), tone(dir.path(), 880, 6.0));
    let mut rec = record(
        &pulse,
        dir.path(),
        &target,
        &[
            "--duration",
            "5",
            "--mic",
            "default",
            "--system-audio",
            "--system-gain",
            "-3",
        ],
    );
    rec.wait_line(Duration::from_secs(20), |l| {
        audio_event(l, "system", "active")
    });
    let a = pulse.play("spk", &t440);
    let b = pulse.play("micsink", &t880);
    let c = completed(rec);
    drop((a, b));
    assert!(c["stop_to_complete_ms"].as_u64().unwrap() < 3000, "{c}");
    let uploaded = Tus::default()
        .get(&rebase(c["upload_url"].as_str().unwrap(), &server.base))
        .await;
    let local = std::fs::read(local_of(&c)).unwrap();
    assert_eq!(sha256_hex(&uploaded), sha256_hex(&local));
    let path = dir.path().join("uploaded.mp4");
    std::fs::write(&path, &uploaded).unwrap();
    let streams = ffprobe(
        &path,
        &[
            "-show_entries",
            "stream=codec_name,sample_rate",
            "-of",
            "csv=p=0",
        ],
    );
    assert!(streams.contains("aac,48000"), "{streams}");
    assert_eq!(tones_in(&decode(&path), 2.0, 4.5), (true, true));
}

#[test]
fn spoken_words_come_out_audible_for_as_long_as_they_were_spoken() {
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start();
    let (speech, secs) = words(
        dir.path(),
        "Spool records the voice of the creator while the screen is captured",
    );
    let mut rec = record(
        &pulse,
        dir.path(),
        &[],
        &["--duration", &format!("{}", secs + 2.5), "--mic", "default"],
    );
    rec.wait_line(Duration::from_secs(20), |l| audio_event(l, "mic", "active"));
    std::thread::sleep(Duration::from_millis(500));
    pulse.play_and_wait("micsink", &speech);
    let pcm = decode(&local_of(&completed(rec)));
    // Audible 50 ms windows, from the first to the last.
    let loud: Vec<f64> = (0..pcm.len() / 2400)
        .filter(|&i| rms(&pcm[i * 2400..(i + 1) * 2400]) > 0.01)
        .map(|i| i as f64 * 0.05)
        .collect();
    let span = loud.last().unwrap() - loud.first().unwrap();
    assert!(
        (span - secs).abs() < 0.4,
        "words last {secs:.2} s, heard over {span:.2} s"
    );
}

#[test]
fn a_flash_and_a_click_at_the_same_instant_stay_together() {
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start();
    let x = Xvfb::start(320, 240);
    x.paint("black");
    let click = click(dir.path());
    let source = format!("x11:{}", x.display);
    let mut rec = record(
        &pulse,
        dir.path(),
        &[],
        &[
            "--source",
            &source,
            "--fps",
            "60",
            "--duration",
            "9",
            "--system-audio",
        ],
    );
    rec.wait_line(Duration::from_secs(20), |l| {
        audio_event(l, "system", "active")
    });
    // A null sink's first playback starts up to a second late (it renders
    // in long blocks until a stream asks for less): warm it up first.
    pulse.play_and_wait("spk", &silence(dir.path()));
    for _ in 0..5 {
        // The click's player and the painter start together.
        let mut player = pulse.play("spk", &click);
        x.paint("white");
        std::thread::sleep(Duration::from_millis(300));
        x.paint("black");
        let _ = player.wait();
        std::thread::sleep(Duration::from_millis(900));
    }
    let c = completed(rec);
    let path = local_of(&c);
    let flashes: Vec<f64> = runs(&frames(&path))
        .into_iter()
        .filter(|r| r.colour == "white")
        .map(|r| r.first)
        .collect();
    let clicks = spool_e2e::audio::onsets(&decode(&path), 0.3, 0.5);
    assert_eq!(
        (flashes.len(), clicks.len()),
        (5, 5),
        "flashes {flashes:?} clicks {clicks:?}"
    );
    let offsets: Vec<i64> = clicks
        .iter()
        .zip(&flashes)
        .map(|(c, f)| ((c - f) * 1000.0).round() as i64)
        .collect();
    eprintln!("click − flash offsets (ms): {offsets:?}");
    assert!(offsets.iter().all(|o| o.abs() <= 60), "{offsets:?}");
}

#[test]
fn a_microphone_that_disappears_leaves_silence_of_the_right_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut pulse = Pulse::start();
    let t880 = tone(dir.path(), 880, 12.0);
    let mut rec = record(
        &pulse,
        dir.path(),
        &[],
        &["--duration", "9", "--mic", "mic"],
    );
    rec.wait_line(Duration::from_secs(20), |l| audio_event(l, "mic", "active"));
    let started = Instant::now();
    let player = pulse.play("micsink", &t880);
    std::thread::sleep(Duration::from_millis(2500));
    pulse.unload_mic();
    let unplugged = started.elapsed().as_secs_f64();
    rec.wait_line(Duration::from_secs(5), |l| audio_event(l, "mic", "lost"));
    std::thread::sleep(Duration::from_millis(1500));
    pulse.load_mic();
    rec.wait_line(Duration::from_secs(5), |l| {
        audio_event(l, "mic", "restored")
    });
    let back = started.elapsed().as_secs_f64();
    let c = completed(rec);
    drop(player);
    let pcm = decode(&local_of(&c));
    let secs = pcm.len() as f64 / 48_000.0;
    assert!(
        (secs - c["duration_ms"].as_f64().unwrap() / 1000.0).abs() < 0.05,
        "{secs} s of sound"
    );
    // The silent stretch after the tone began, in 20 ms windows.
    let loud: Vec<bool> = (0..pcm.len() / 960)
        .map(|i| rms(&pcm[i * 960..(i + 1) * 960]) > 0.005)
        .collect();
    let began = loud.iter().position(|l| *l).unwrap();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, l) in loud.iter().enumerate().skip(began) {
        match runs.last_mut() {
            Some((_, end)) if !*l && *end == i => *end = i + 1,
            _ if !*l => runs.push((i, i + 1)),
            _ => {}
        }
    }
    let (a, b) = runs.into_iter().max_by_key(|(a, b)| b - a).unwrap();
    let (first_quiet, last_quiet) = (a as f64 * 0.02, b as f64 * 0.02);
    let gap = last_quiet - first_quiet;
    let expected = back - unplugged;
    let tone_at = |t: f64| tones_in(&pcm, t, t + 0.3).1;
    eprintln!("silent {first_quiet:.2}–{last_quiet:.2} s; the mic was gone {expected:.2} s");
    assert!(
        (gap - expected).abs() < 0.35,
        "silence of {gap:.2} s for a mic gone {expected:.2} s"
    );
    assert!(
        tone_at(first_quiet - 0.5) && tone_at(last_quiet + 0.2),
        "the tone before and after the gap"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sound_survives_a_network_cut_and_kill_9_then_resume() {
    use spool_e2e::proxy::{FaultProxy, Faults};
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start();
    let proxy = FaultProxy::start_unconnected(Faults::default()).await;
    let public = proxy.url();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &["--public-url", &public]);
    proxy.set_upstream(server.addr);
    let target = server_args(&proxy.url());
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let t440 = tone(dir.path(), 440, 20.0);
    let mut rec = record(
        &pulse,
        dir.path(),
        &target,
        &["--fragment-secs", "1", "--system-audio"],
    );
    rec.wait_line(Duration::from_secs(20), |l| {
        audio_event(l, "system", "active")
    });
    let player = pulse.play("spk", &t440);
    rec.wait_line(Duration::from_secs(20), |l| {
        event(l, "fragment") && l.contains("\"index\":1")
    });
    proxy.set_down(true);
    rec.wait_line(Duration::from_secs(20), |l| event(l, "reconnecting"));
    proxy.set_down(false);
    rec.wait_line(Duration::from_secs(20), |l| {
        event(l, "fragment") && l.contains("\"index\":5")
    });
    rec.kill9();
    drop(player);
    let (_, uploaded) = resume_and_fetch(&dir.path().join("state"), &server.base, &[]).await;
    let local = std::fs::read(only_file(&dir.path().join("out"))).unwrap();
    assert_eq!(
        sha256_hex(&uploaded),
        sha256_hex(&local),
        "the complete fragments, sound included"
    );
    let path = dir.path().join("uploaded.mp4");
    std::fs::write(&path, &uploaded).unwrap();
    let pcm = decode(&path);
    let video = duration_s(&path);
    let secs = pcm.len() as f64 / 48_000.0;
    // Cut off by kill -9: a fragment's sound ends up to ~150 ms before its
    // picture (taken 100 ms behind at a cut, plus AAC's look-ahead).
    assert!(
        secs > 5.0 && secs <= video + 0.01 && video - secs < 0.2,
        "{secs} s of sound in {video} s of video"
    );
    let began = (0..pcm.len() / 4800)
        .find(|&i| tones_in(&pcm, i as f64 * 0.1, i as f64 * 0.1 + 0.1).0)
        .unwrap() as f64
        * 0.1;
    // (A null sink's first playback can start a second late.)
    assert!(began < 2.5, "the tone begins at {began:.1} s");
    // The tone throughout, across the cut.
    let mut t = began + 0.2;
    while t < secs - 0.4 {
        assert!(tones_in(&pcm, t, t + 0.3).0, "no tone at {t:.1} s");
        t += 0.5;
    }
}

/// A one-second local `spool record` of a small picture with `extra`,
/// its sound from `pulse_server`, run to its end.
fn record_one_second(dir: &Path, extra: &[&str], pulse_server: &str) -> std::process::Output {
    spool("record")
        .args([
            "--json",
            "--source",
            "synthetic:160x120",
            "--duration",
            "1",
            "--output",
        ])
        .arg(dir.join("out"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
        .env("PULSE_SERVER", pulse_server)
        .output()
        .unwrap()
}

/// The JSON lines a command printed.
fn stdout_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    json_lines(&lines)
}

#[test]
fn without_an_audio_server_an_explicit_request_fails_before_recording() {
    let dir = tempfile::tempdir().unwrap();
    let no_server = format!("unix:{}", dir.path().join("nothing").display());
    let out = record_one_second(dir.path(), &["--mic", "default"], &no_server);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERR_AUDIO_UNAVAILABLE") && stderr.contains("audio server"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""code":"ERR_AUDIO_UNAVAILABLE""#),
        "{stdout}"
    );
    assert!(!dir.path().join("out").exists(), "nothing was recorded");
    let out = spool("sources")
        .args(["--audio"])
        .env("PULSE_SERVER", &no_server)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERR_AUDIO_UNAVAILABLE"));
    // No sound asked for: none recorded, and none needed.
    let out = record_one_second(dir.path(), &[], &no_server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(complete(&stdout_lines(&out))["audio"].is_null());
}

#[test]
fn sources_lists_inputs_and_outputs_by_their_stable_names() {
    let pulse = Pulse::start();
    let out = spool("sources")
        .args(["--audio", "--json"])
        .env("PULSE_SERVER", pulse.server())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let devices = stdout_lines(&out);
    let find = |kind: &str, name: &str| {
        devices
            .iter()
            .find(|d| d["kind"] == kind && d["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name} in {devices:?}"))
    };
    assert_eq!(find("input", "mic")["default"], true);
    let spk = find("output", "spk");
    assert_eq!(
        (spk["default"].clone(), spk["monitor"].clone()),
        (true.into(), "spk.monitor".into())
    );
    // Monitors are not microphones.
    assert!(
        !devices
            .iter()
            .any(|d| d["kind"] == "input" && d["name"].as_str().unwrap().ends_with(".monitor"))
    );
    // A name that is not there is refused before recording.
    let dir = tempfile::tempdir().unwrap();
    let out = record_one_second(dir.path(), &["--mic", "no-such-mic"], &pulse.server());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no input device named \"no-such-mic\""));
}

#[test]
fn sigusr2_mutes_exactly_the_span_it_was_muted_and_pause_keeps_the_sound_continuous() {
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start();
    let mut rec = record(
        &pulse,
        dir.path(),
        &[],
        &["--duration", "7", "--mic", "synthetic:440"],
    );
    rec.wait_line(Duration::from_secs(20), |l| audio_event(l, "mic", "active"));
    std::thread::sleep(Duration::from_millis(1700));
    rec.sigusr2();
    let muted_at = Instant::now();
    rec.wait_line(Duration::from_secs(5), |l| event(l, "muted"));
    std::thread::sleep(Duration::from_millis(1500));
    rec.sigusr2();
    let muted_for = muted_at.elapsed().as_secs_f64();
    rec.wait_line(Duration::from_secs(5), |l| event(l, "unmuted"));
    // A pause after it: the sound goes on where it stopped.
    std::thread::sleep(Duration::from_millis(700));
    rec.sigusr1();
    rec.wait_line(Duration::from_secs(5), |l| event(l, "paused"));
    std::thread::sleep(Duration::from_millis(1000));
    rec.sigusr1();
    let c = completed(rec);
    let pcm = decode(&local_of(&c));
    let secs = pcm.len() as f64 / 48_000.0;
    assert!((secs - c["duration_ms"].as_f64().unwrap() / 1000.0).abs() < 0.05);
    // Silent 10 ms windows: exactly the muted span, in one piece.
    let silent: Vec<usize> = (0..pcm.len() / 480)
        .filter(|&i| pcm[i * 480..(i + 1) * 480].iter().all(|v| v.abs() < 1e-4))
        .collect();
    let (a, b) = (silent[0], *silent.last().unwrap());
    assert_eq!(b - a + 1, silent.len(), "one silent span: {silent:?}");
    let span = silent.len() as f64 * 0.01;
    assert!(
        (span - muted_for).abs() < 0.15,
        "silent {span:.2} s, muted {muted_for:.2} s"
    );
}
