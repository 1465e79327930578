//! `spool record`: capture → encode → upload while recording. The upload is
//! created at Start; the init segment and each finished fragment are
//! appended as soon as the encoder has them on disk; Stop (Ctrl-C, SIGTERM,
//! Enter on a terminal, or --duration) encodes the remaining frames into the
//! last fragment and declares the length. SIGUSR1 pauses and resumes: the
//! fragment being written is closed at the pause and everything before it
//! keeps uploading. The local .mp4 always stays.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use spool_client::{Client, Event};
use spool_record::{Event as RecEvent, Recorder, Settings, Upload};

use spool_cli::upload::{StateArgs, TargetArgs, UploadOptions};

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// What to capture: x11[:DISPLAY] (the display in $DISPLAY, or e.g. x11::99), synthetic[:WxH], screen[:N], window:ID, or file:PATH (plays a video file as the screen, paced at its own frame rate, looping).
    #[arg(long, default_value = "x11")]
    pub source: String,
    /// Capture only this rectangle of the display: X,Y,W,H.
    #[arg(long)]
    pub region: Option<String>,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Fragment (and keyframe interval) duration in seconds, 0.5 to 10.
    #[arg(long, default_value_t = 2.0)]
    pub fragment_secs: f64,
    /// Close and send a CMAF chunk this often (milliseconds) inside each
    /// fragment, so at Stop at most this much video is left to send; 0: one
    /// chunk per fragment.
    #[arg(long, env = "SPOOL_CHUNK_MS", default_value_t = 250)]
    pub chunk_ms: u64,
    /// Keep the quality setting whatever the uplink: never lower the
    /// bitrate when the upload falls behind (Stop → link then grows with
    /// the backlog on a slow link).
    #[arg(long, env = "SPOOL_QUALITY_FIRST")]
    pub quality_first: bool,
    /// Scale down to at most this many pixels tall (e.g. 1080 for a 4K screen).
    #[arg(long)]
    pub max_height: Option<u32>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Directory for the local recording.
    #[arg(long, default_value = "recordings")]
    pub output: PathBuf,
    /// libx264 preset.
    #[arg(long, default_value = spool_encode::Config::DEFAULT_PRESET)]
    pub preset: String,
    /// libx264 quality (CRF, 0–51, lower is better).
    #[arg(long, default_value_t = spool_encode::Config::DEFAULT_CRF)]
    pub crf: u8,
    /// Count this many seconds down on the terminal before capture starts.
    #[arg(long, env = "SPOOL_COUNTDOWN", default_value_t = 0)]
    pub countdown: u32,
    /// Record the microphone: `default` (the default input), `none`, or an input's name from `spool sources --audio`.
    #[arg(long, default_value = "none")]
    pub mic: String,
    /// Record the computer's sound: the default output's, or `--system-audio NAME` for another output.
    #[arg(long, num_args = 0..=1, default_missing_value = "default")]
    pub system_audio: Option<String>,
    /// Microphone gain in dB (−60 to 30).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub mic_gain: f32,
    /// System sound gain in dB (−60 to 30).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub system_gain: f32,
    /// The recording's title (the share page and the history show it; sent as the upload's `title` metadata).
    #[arg(long)]
    pub title: Option<String>,
    /// After Stop, give up waiting for the upload when it makes no progress for this many seconds (it stays in the journal for `spool resume`).
    #[arg(long, default_value_t = 30)]
    pub upload_patience: u64,
    /// Upload protocol: TUS 1.0, the IETF resumable-upload draft, or `auto`
    /// (the draft where the server says it speaks it, else TUS).
    #[arg(long, default_value = "auto", value_parser = spool_cli::upload::PROTOCOLS)]
    pub protocol: String,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

fn json_line(v: serde_json::Value) {
    println!("{v}");
}

/// Resolves when the user asks to stop.
async fn stop_requested(duration: Option<Duration>) -> &'static str {
    let enter = async {
        if std::io::stdin().is_terminal() {
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)
            })
            .await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupt",
        _ = term => "terminate",
        _ = enter => "enter",
        _ = timer => "duration",
    }
}

pub async fn record(args: RecordArgs, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    TargetArgs::check_exclusive(matches)?;
    let json = args.state.json;
    let region = args
        .region
        .as_deref()
        .map(spool_capture::Rect::parse)
        .transpose()?;
    let source = spool_capture::SourceSpec::parse(&args.source, region)?;
    if !(0.5..=10.0).contains(&args.fragment_secs) {
        bail!("--fragment-secs must be between 0.5 and 10");
    }
    if args.chunk_ms > 0 && args.chunk_ms < 50 {
        bail!("--chunk-ms must be at least 50 (or 0: one chunk per fragment)");
    }
    if args.duration.is_some_and(|d| d <= 0.0 || !d.is_finite()) {
        bail!("--duration must be a positive number of seconds");
    }
    if args.countdown > 600 {
        bail!("--countdown must be at most 600 seconds");
    }
    let title = match args.title.as_deref().map(str::trim) {
        Some("") => bail!("--title must not be empty"),
        Some(t) if t.len() > 1024 => bail!("--title must be at most 1024 bytes"),
        t => t.map(str::to_owned),
    };
    let settings = Settings {
        source,
        fps: args.fps,
        fragment: Duration::from_secs_f64(args.fragment_secs),
        max_height: args.max_height,
        preset: args.preset.clone(),
        crf: args.crf,
        output_dir: args.output.clone(),
        audio: spool_capture::audio::AudioRequest {
            mic: Some(args.mic.clone()).filter(|m| m != "none"),
            system: args.system_audio.clone(),
            mic_gain_db: args.mic_gain,
            system_gain_db: args.system_gain,
        },
        chunk: (args.chunk_ms > 0).then(|| Duration::from_millis(args.chunk_ms)),
        adapt_bitrate: !args.quality_first,
    };
    settings.audio.validate()?;
    // The upload is created at Start.
    let upload = match args.target.target()? {
        Some(target) => Some(Upload {
            client: Client::open(&args.state.dir()?)?,
            target,
            options: UploadOptions {
                chunk_size: "auto".into(),
                min_chunk: 0,
                checksum: "none".into(),
                stall_timeout: 15,
                protocol: args.protocol.clone(),
            }
            .options()
            .map(|mut o| {
                if let Some(t) = &title {
                    o.metadata.push(("title".into(), t.clone()));
                }
                o
            })?,
        }),
        None => {
            if !json {
                eprintln!("no upload target: recording locally only");
            }
            None
        }
    };
    // Listening from here on: SIGUSR1's default action would end the
    // process, also during the countdown.
    #[cfg(unix)]
    let usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGUSR1: pause is unavailable"))
        .ok();
    #[cfg(unix)]
    let usr2 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())
        .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGUSR2: mute is unavailable"))
        .ok();
    if args.countdown > 0 && !countdown(args.countdown, json).await {
        // Interrupted during the countdown: nothing was recorded.
        return Err(spool_cli::exit::coded(
            spool_proto::ErrorCode::Interrupted,
            "cancelled before recording started",
        ));
    }
    let mut recorder = match Recorder::start(settings, upload).await {
        Ok(r) => r,
        Err(e) => {
            if json {
                json_line(
                    serde_json::json!({"event": "error", "code": e.error_code().as_str(), "message": e.to_string()}),
                );
            }
            return Err(e.into());
        }
    };
    let path = recorder.path.clone();
    let upload_id = recorder.upload_id.clone();
    let printer = recorder
        .take_events()
        .map(|events| tokio::spawn(print_events(events, json)));
    if !json {
        eprintln!(
            "recording {} at {} fps to {} — press Enter or Ctrl-C to stop, `kill -USR1 {}` to pause or resume",
            recorder.description,
            args.fps,
            path.display(),
            std::process::id()
        );
    }
    #[cfg(unix)]
    let pauser = tokio::spawn(toggle_pause_on_sigusr1(usr1, recorder.controls()));
    #[cfg(unix)]
    let muter = tokio::spawn(toggle_mute_on_sigusr2(usr2, recorder.controls()));
    let stopper = recorder.stop_handle();
    let stop_task = tokio::spawn(async move {
        let why = stop_requested(args.duration.map(Duration::from_secs_f64)).await;
        tracing::info!(why, "stop requested");
        stopper.cancel();
    });
    let recorded = recorder.finish().await;
    stop_task.abort();
    #[cfg(unix)]
    pauser.abort();
    #[cfg(unix)]
    muter.abort();
    let mut recorded = recorded?;
    let completed = match recorded
        .finish_upload(Some(Duration::from_secs(args.upload_patience)))
        .await
    {
        Ok(c) => c.map(|c| (c, recorded.stopped_at.elapsed())),
        Err(e) => {
            if let Some(p) = printer {
                let _ = p.await;
            }
            eprintln!(
                "spool: {}: the recording is saved at {}; its upload did not complete ({e:#}) — run `spool resume` to finish it (upload {})",
                e.error_code(),
                path.display(),
                upload_id.as_deref().unwrap_or("?")
            );
            std::process::exit(i32::from(spool_cli::exit::KEPT_NOT_UPLOADED));
        }
    };
    if let Some(p) = printer {
        let _ = p.await;
    }
    let local_sha = match &completed {
        Some((c, _)) => c.sha256.clone(),
        None => spool_record::sha256_file(&path)?,
    };
    let (c, stop_ms) = match &completed {
        Some((c, d)) => (Some(c), Some(d.as_millis() as u64)),
        None => (None, None),
    };
    if json {
        json_line(serde_json::json!({
            "event": "complete",
            "upload_url": c.map(|c| c.upload_url.clone()),
            "asset_id": c.and_then(|c| c.asset_id.clone()),
            "share_url": c.and_then(|c| c.share_url.clone()),
            "bytes": recorded.bytes,
            "sha256": local_sha,
            "local_path": path.display().to_string(),
            "frames": recorded.frames,
            "fragments": recorded.fragments,
            "dropped": recorded.dropped,
            "duration_ms": recorded.duration.as_millis() as u64,
            "paused_ms": recorded.paused.as_millis() as u64,
            "stop_to_complete_ms": stop_ms,
            "audio": recorded.audio.as_ref().map(|a| serde_json::json!({
                "tracks": a.tracks,
                "duration_ms": a.duration.as_millis() as u64,
                "av_offset_ms": a.av_offset_ms.round() as i64,
                "max_av_offset_ms": a.max_av_offset_ms.round() as i64,
                "sources": a.sources,
            })),
        }));
    } else {
        println!(
            "recorded {:.1} s, {} frames ({} dropped) to {}",
            recorded.duration.as_secs_f64(),
            recorded.frames,
            recorded.dropped,
            path.display()
        );
        if let (Some(c), Some(ms)) = (c, stop_ms) {
            println!(
                "uploaded {:.1} MB; link ready {ms} ms after Stop",
                c.bytes as f64 / 1e6
            );
            if let Some(url) = &c.share_url {
                println!("share link: {url}");
            }
        }
    }
    Ok(())
}

/// Prints `secs` seconds down (a `countdown` event per second with
/// `--json`); false when interrupted.
async fn countdown(secs: u32, json: bool) -> bool {
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    let watcher = tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        c.cancel();
    });
    let done = spool_record::countdown(secs, &cancel, |left| {
        if json {
            json_line(serde_json::json!({"event": "countdown", "seconds": left}));
        } else {
            eprint!("\rrecording in {left}… ");
        }
    })
    .await;
    watcher.abort();
    if !json {
        eprintln!();
    }
    done
}

/// SIGUSR2 toggles mute for as long as the recording runs.
#[cfg(unix)]
async fn toggle_mute_on_sigusr2(
    mut usr2: Option<tokio::signal::unix::Signal>,
    controls: spool_record::Controls,
) {
    let Some(usr2) = usr2.as_mut() else {
        return;
    };
    while usr2.recv().await.is_some() {
        let muted = controls.toggle_mute();
        tracing::info!(muted, "SIGUSR2");
    }
}

/// SIGUSR1 toggles pause for as long as the recording runs.
#[cfg(unix)]
async fn toggle_pause_on_sigusr1(
    mut usr1: Option<tokio::signal::unix::Signal>,
    controls: spool_record::Controls,
) {
    let Some(usr1) = usr1.as_mut() else {
        return;
    };
    while usr1.recv().await.is_some() {
        let paused = controls.toggle();
        tracing::info!(paused, "SIGUSR1");
    }
}

async fn print_events(mut rx: tokio::sync::mpsc::Receiver<RecEvent>, json: bool) {
    while let Some(e) = rx.recv().await {
        match e {
            RecEvent::Stopped => {
                if json {
                    json_line(serde_json::json!({"event": "stopped"}));
                } else {
                    eprintln!("stopping…");
                }
            }
            RecEvent::Fragment {
                index,
                bytes,
                duration,
                reason,
                chunks,
            } => {
                if json {
                    json_line(
                        serde_json::json!({"event": "fragment", "index": index, "bytes": bytes, "duration_ms": duration.as_millis() as u64, "reason": reason.as_str(), "chunks": chunks}),
                    );
                }
            }
            RecEvent::Bitrate { kbps, reason } => {
                if json {
                    json_line(
                        serde_json::json!({"event": "bitrate", "kbps": kbps, "reason": reason.as_str()}),
                    );
                } else if reason == spool_record::BitrateReason::Backlog {
                    eprintln!(
                        "the upload is falling behind: bitrate lowered to {kbps} kbit/s (--quality-first keeps it)"
                    );
                } else {
                    eprintln!("the upload keeps up again: bitrate raised to {kbps} kbit/s");
                }
            }
            RecEvent::Paused => {
                if json {
                    json_line(serde_json::json!({"event": "paused"}));
                } else {
                    eprintln!(
                        "paused (SIGUSR1 again to resume); what was recorded keeps uploading"
                    );
                }
            }
            RecEvent::Resumed => {
                if json {
                    json_line(serde_json::json!({"event": "resumed"}));
                } else {
                    eprintln!("resumed");
                }
            }
            RecEvent::Muted(muted) => {
                if json {
                    json_line(
                        serde_json::json!({"event": if muted { "muted" } else { "unmuted" }}),
                    );
                } else {
                    eprintln!(
                        "{}",
                        if muted {
                            "muted (silence is recorded)"
                        } else {
                            "unmuted"
                        }
                    );
                }
            }
            RecEvent::Audio(a) => {
                if json {
                    json_line(
                        serde_json::json!({"event": "audio", "source": a.kind.as_str(), "state": a.state.as_str(), "detail": a.detail}),
                    );
                } else if a.state != spool_capture::audio::AudioState::Active {
                    eprintln!(
                        "{} {}{}",
                        match a.kind {
                            spool_capture::audio::AudioKind::Mic => "microphone",
                            spool_capture::audio::AudioKind::System => "system audio",
                        },
                        match a.state {
                            spool_capture::audio::AudioState::Lost =>
                                "lost: recording silence in its place",
                            _ => "is back",
                        },
                        a.detail.map(|d| format!(" ({d})")).unwrap_or_default()
                    );
                }
            }
            // record prints its own, richer, complete event
            RecEvent::Upload(Event::Complete { .. }) => {}
            RecEvent::Upload(e) => {
                if json {
                    // An event that cannot be serialised is said, not printed as `null`.
                    match serde_json::to_value(&e) {
                        Ok(v) => println!("{v}"),
                        Err(why) => eprintln!("spool: cannot print an event: {why}"),
                    }
                } else if let Event::Reconnecting { attempt, error, .. } = &e {
                    eprintln!("upload reconnecting (attempt {attempt}): {error}");
                } else if let Event::Stalled { error } = &e {
                    eprintln!("upload stalled, still retrying (the recording goes on): {error}");
                }
            }
        }
    }
}
