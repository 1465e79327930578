//! Sound for the suites: a private PulseAudio server per test (its own
//! socket, runtime dir and null sinks: `spk`, the output whose monitor is
//! "system audio", and `micsink`, remapped into the virtual microphone
//! `mic`), test sounds made with sox and espeak-ng, and the analysis of a
//! recording's decoded sound (tone power by Goertzel, loud spans).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use spool_testkit::audio::{decode, onsets, power, rms, window};

/// A PulseAudio server on a private socket.
pub struct Pulse {
    pub dir: tempfile::TempDir,
    child: Child,
    mic_module: Option<u32>,
}

impl Pulse {
    /// Starts the server with `spk` (the default output), `micsink` and the
    /// virtual microphone `mic` (the default input).
    pub fn start() -> Pulse {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("native");
        let child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
            ])
            .arg("-L")
            .arg(format!(
                "module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .args([
                "-L",
                "module-null-sink sink_name=spk sink_properties=device.description=Speakers",
            ])
            .args(["-L", "module-null-sink sink_name=micsink"])
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio (scripts/setup.sh installs it)");
        let mut p = Pulse {
            dir,
            child,
            mic_module: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.pactl(&["info"]).status.success() {
            assert!(Instant::now() < deadline, "pulseaudio did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        p.load_mic();
        assert!(p.pactl(&["set-default-sink", "spk"]).status.success());
        assert!(p.pactl(&["set-default-source", "mic"]).status.success());
        p
    }

    /// `PULSE_SERVER` for clients of this server.
    pub fn server(&self) -> String {
        format!("unix:{}", self.dir.path().join("native").display())
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("PULSE_SERVER", self.server())
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path());
        c
    }

    pub fn pactl(&self, args: &[&str]) -> std::process::Output {
        self.command("pactl").args(args).output().expect("pactl")
    }

    /// (Re)creates the virtual microphone `mic`.
    pub fn load_mic(&mut self) {
        let out = self.pactl(&[
            "load-module",
            "module-remap-source",
            "master=micsink.monitor",
            "source_name=mic",
            "source_properties=device.description=Virtual_Mic",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.mic_module = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    }

    /// Removes the virtual microphone, as unplugging a USB mic does.
    pub fn unload_mic(&mut self) {
        if let Some(m) = self.mic_module.take() {
            assert!(
                self.pactl(&["unload-module", &m.to_string()])
                    .status
                    .success()
            );
        }
    }

    /// Plays a sound file into `sink` (`spk`: system audio; `micsink`: the
    /// microphone); the player stops when dropped.
    pub fn play(&self, sink: &str, file: &Path) -> Player {
        Player(
            self.command("paplay")
                .args(["-d", sink, "--latency-msec=10"])
                .arg(file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("paplay"),
        )
    }

    /// Plays into `sink` and waits for the player to end.
    pub fn play_and_wait(&self, sink: &str, file: &Path) {
        assert!(self.play(sink, file).wait(), "paplay failed");
    }
}

/// A sound playing; stopped when dropped.
pub struct Player(Child);

impl Player {
    /// Waits until it has played; whether it succeeded.
    pub fn wait(&mut self) -> bool {
        self.0.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sine tone of `secs` seconds at `hz` as a WAV file in `dir`.
pub fn tone(dir: &Path, hz: u32, secs: f64) -> PathBuf {
    let path = dir.join(format!("tone-{hz}-{secs}.wav"));
    let ok = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "2", "-b", "16"])
        .arg(&path)
        .args([
            "synth",
            &secs.to_string(),
            "sine",
            &hz.to_string(),
            "vol",
            "0.5",
        ])
        .status()
        .expect("sox")
        .success();
    assert!(ok, "sox failed");
    path
}

/// A click (5 ms of a loud square wave) as a WAV file.
pub fn click(dir: &Path) -> PathBuf {
    let path = dir.join("click.wav");
    let ok = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "2", "-b", "16"])
        .arg(&path)
        .args(["synth", "0.02", "square", "1000", "vol", "0.9"])
        .status()
        .expect("sox")
        .success();
    assert!(ok);
    path
}

/// Spoken words (espeak-ng) as a WAV file; returns it and its duration.
pub fn words(dir: &Path, text: &str) -> (PathBuf, f64) {
    let path = dir.join("words.wav");
    let ok = Command::new("espeak-ng")
        .args(["-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng")
        .success();
    assert!(ok);
    let secs = crate::duration_s(&path);
    (path, secs)
}
