//! Sound benchmark (issue 11). A/V offset over an hour: the recorder's own
//! placing (DeviceClock + Placer, the code the sources run) driven by a
//! simulated device whose clock is skewed by ±300 and +1000 ppm, with
//! arrival jitter and a 150 ms stall every 30 s, on a simulated clock, so
//! 60 minutes take seconds; the offset is exact (the simulation knows when
//! each sample was heard). Then real recordings: a synthetic device skewed
//! by +500 ppm clicking every real second, its clicks' drift in the file;
//! the CPU cost of capturing mic + system sound from PulseAudio and
//! encoding AAC; and Stop → complete with and without sound.
//!
//! Environment: SPOOL_BENCH_AUDIO_SECS (the skewed recording, default 60),
//! SPOOL_BENCH_RECORDINGS (Stop → complete runs, default 5).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// wait4 for a child's CPU time and peak memory has no safe wrapper.
#![allow(unsafe_code)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use spool_capture::audio::{CHANNELS, CHUNK_FRAMES, DeviceClock, HOLD, Placer, SAMPLE_RATE};
use spool_e2e::audio::{Pulse, decode, onsets, tone};
use spool_e2e::*;

/// Offsets (ms) of a simulated hour: max |offset| in the first second, in
/// the second before 10 min, in the second before 60 min, and overall.
fn simulate(ppm: f64, minutes: u64) -> [f64; 4] {
    let base = Instant::now();
    let rate = SAMPLE_RATE as f64 * (1.0 + ppm / 1e6);
    let mut device = DeviceClock::new();
    let mut placer = Placer::new();
    let chunk = vec![0.0f32; CHUNK_FRAMES * CHANNELS];
    let mut pending: std::collections::VecDeque<(f64, u64, f64)> = Default::default();
    let mut out = [0.0f64; 4];
    let mut seed = 11u64;
    let total = minutes as f64 * 60.0;
    let mut k = 0u64;
    loop {
        // The true time the chunk's first frame was heard, and its arrival.
        let heard = (k * CHUNK_FRAMES as u64) as f64 / rate;
        if heard > total {
            break;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = (seed >> 40) as f64 / (1u64 << 24) as f64 * 0.003;
        let mut arrive = heard + CHUNK_FRAMES as f64 / rate + 0.001 + jitter;
        // A stall: the server delivers the last 150 ms at once.
        let in_stall = heard % 30.0;
        if (15.0..15.15).contains(&in_stall) {
            arrive = heard - in_stall + 15.16;
        }
        let before = device.arrive(base + Duration::from_secs_f64(arrive), CHUNK_FRAMES);
        pending.push_back((arrive, before, heard));
        while let Some(&(a, b, h)) = pending.front() {
            if arrive - a < HOLD.as_secs_f64() {
                break;
            }
            pending.pop_front();
            let at = device.heard(b).duration_since(base);
            let (pos, _) = placer.place(at, &chunk);
            let offset_ms = (pos as f64 / SAMPLE_RATE as f64 - h) * 1000.0;
            let slot = if h < 1.0 {
                0
            } else if (599.0..600.0).contains(&h) {
                1
            } else if h >= total - 1.0 {
                2
            } else {
                3
            };
            out[slot] = out[slot].max(offset_ms.abs());
            out[3] = out[3].max(offset_ms.abs());
        }
        k += 1;
    }
    out
}

struct Run {
    complete: serde_json::Value,
    cpu: Duration,
}

/// Runs `spool record` to its end; its complete event and CPU time.
// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn record(args: &[&str], pulse: Option<&Pulse>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = spool("record");
    cmd.args(["--json", "--output"])
        .arg(dir.path().join("out"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(p) = pulse {
        cmd.env("PULSE_SERVER", p.server());
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: waits for our own child and fills a zeroed rusage we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let stdout = reader.join().unwrap();
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    let complete = complete(&json_lines(&lines));
    let local = complete["local_path"].as_str().unwrap().to_owned();
    let run = Run {
        complete: complete.clone(),
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
    };
    // Keep the file for analysis past the temp dir.
    let keep = std::env::temp_dir().join(format!("spool-bench-audio-{}.mp4", std::process::id()));
    std::fs::copy(&local, &keep).unwrap();
    let mut run = run;
    run.complete["local_path"] = keep.display().to_string().into();
    run
}

/// The CPU a recording with `base` arguments takes without and with mic +
/// system sound from `pulse`.
fn sound_cpu(pulse: &Pulse, what: &str, base: &[&str]) {
    let without = record(base, Some(pulse));
    let mut with_args = base.to_vec();
    with_args.extend(["--mic", "default", "--system-audio"]);
    let with = record(&with_args, Some(pulse));
    let secs: f64 = base[base.len() - 1].parse().unwrap();
    let d = with.cpu.as_secs_f64() - without.cpu.as_secs_f64();
    println!(
        "CPU of a {what} recording: {:.2} s without sound, {:.2} s with mic + system sound (two sources captured, mixed, AAC): sound costs {d:.2} s = {:.1} % of one core",
        without.cpu.as_secs_f64(),
        with.cpu.as_secs_f64(),
        d / secs * 100.0
    );
    for r in [&without, &with] {
        let _ = std::fs::remove_file(r.complete["local_path"].as_str().unwrap());
    }
}

fn p50(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    println!(
        "A/V offset, simulated hour (the recorder's DeviceClock + Placer; jitter 1–4 ms, a 150 ms stall every 30 s):"
    );
    println!(
        "{:>10} {:>12} {:>12} {:>12} {:>12}",
        "skew", "first 1 s", "at 10 min", "at 60 min", "max (ms)"
    );
    for ppm in [300.0, -300.0, 1000.0] {
        let t = Instant::now();
        let o = simulate(ppm, 60);
        println!(
            "{:>8} ppm {:>12.2} {:>12.2} {:>12.2} {:>12.2}   ({:.1} s to simulate)",
            ppm,
            o[0],
            o[1],
            o[2],
            o[3],
            t.elapsed().as_secs_f64()
        );
    }

    let secs = env_u64("SPOOL_BENCH_AUDIO_SECS", 60);
    for ppm in ["0", "+500"] {
        let mic = format!("synthetic:1000@{ppm}");
        let r = record(
            &[
                "--source",
                "synthetic:320x240",
                "--fps",
                "15",
                "--duration",
                &secs.to_string(),
                "--mic",
                &mic,
            ],
            None,
        );
        let pcm = decode(std::path::Path::new(
            r.complete["local_path"].as_str().unwrap(),
        ));
        let clicks = onsets(&pcm, 0.6, 0.5);
        let first = clicks[0];
        let dev: Vec<f64> = clicks
            .iter()
            .enumerate()
            .map(|(k, c)| (c - first - k as f64) * 1000.0)
            .collect();
        let max = dev.iter().fold(0.0f64, |m, d| m.max(d.abs()));
        println!(
            "a {secs} s recording, device clock {ppm} ppm: {} clicks, max drift from their seconds {max:.1} ms, last {:.1} ms (uncorrected would be {:.1} ms); recorder's offset {} ms",
            clicks.len(),
            dev.last().unwrap(),
            ppm.parse::<f64>().unwrap() * secs as f64 / 1000.0,
            r.complete["audio"]["av_offset_ms"]
        );
        let _ = std::fs::remove_file(r.complete["local_path"].as_str().unwrap());
    }

    // CPU of sound: the same 20 s 720p recording without and with mic +
    // system sound from PulseAudio (tones playing into both).
    let pulse = Pulse::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (tone(dir.path(), 440, 60.0), tone(dir.path(), 880, 60.0));
    let players = [pulse.play("spk", &a), pulse.play("micsink", &b)];
    sound_cpu(
        &pulse,
        "20 s 720p30",
        &[
            "--source",
            "synthetic:1280x720",
            "--fps",
            "30",
            "--duration",
            "20",
        ],
    );
    // A tiny picture, so the video's own variation does not hide the sound's.
    sound_cpu(
        &pulse,
        "20 s 160x120 5 fps",
        &[
            "--source",
            "synthetic:160x120",
            "--fps",
            "5",
            "--duration",
            "20",
        ],
    );

    // Stop → complete against a local server, with and without sound.
    let n = env_u64("SPOOL_BENCH_RECORDINGS", 5);
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let target = server_args(&server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    for sound in [false, true] {
        let mut ms = Vec::new();
        for _ in 0..n {
            let mut args = target.clone();
            args.extend([
                "--source",
                "synthetic:1280x720",
                "--fps",
                "30",
                "--duration",
                "10",
            ]);
            if sound {
                args.extend(["--mic", "default", "--system-audio"]);
            }
            let r = record(&args, Some(&pulse));
            ms.push(r.complete["stop_to_complete_ms"].as_u64().unwrap());
            let _ = std::fs::remove_file(r.complete["local_path"].as_str().unwrap());
        }
        println!(
            "Stop → complete, 10 s 720p30 recordings over loopback, {}: p50 {} ms (runs {:?})",
            if sound {
                "with mic + system sound"
            } else {
                "video only"
            },
            p50(&mut ms.clone()),
            ms
        );
    }
    drop(players);
}
