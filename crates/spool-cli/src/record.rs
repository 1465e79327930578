//! `spool record`: capture → encode → upload while recording. The upload is
//! created at Start; the init segment and each finished fragment are
//! appended as soon as the encoder has them on disk; Stop (Ctrl-C, SIGTERM,
//! Enter on a terminal, or --duration) encodes the remaining frames into the
//! last fragment and declares the length. The local .mp4 always stays.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use spool_client::{Client, Event, Session, SourceRecord, State};

use crate::upload::{StateArgs, TargetArgs, UploadOptions};

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// What to capture: x11[:DISPLAY] (the display in $DISPLAY, or e.g. x11::99), synthetic[:WxH], screen[:N], window:ID.
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
    /// After Stop, give up waiting for the upload when it makes no progress for this many seconds (it stays in the journal for `spool resume`).
    #[arg(long, default_value_t = 30)]
    pub upload_patience: u64,
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

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

pub async fn record(args: RecordArgs, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    TargetArgs::check_exclusive(matches)?;
    let json = args.state.json;
    let region = args
        .region
        .as_deref()
        .map(spool_capture::Rect::parse)
        .transpose()?;
    let spec = spool_capture::SourceSpec::parse(&args.source, region)?;
    if !(0.5..=10.0).contains(&args.fragment_secs) {
        bail!("--fragment-secs must be between 0.5 and 10");
    }
    if args.duration.is_some_and(|d| d <= 0.0 || !d.is_finite()) {
        bail!("--duration must be a positive number of seconds");
    }
    let source = spool_capture::open(&spec)?;
    let (width, height) = source.size();
    let description = source.describe();

    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let output = std::fs::canonicalize(&args.output)?;
    let path = output.join(format!(
        "spool-{}.mp4",
        chrono::Local::now().format("%Y%m%d-%H%M%S%.3f")
    ));

    // The upload is created at Start.
    let target = args.target.target()?;
    let mut session: Option<Session> = None;
    let mut printer = None;
    if let Some(target) = target {
        let client = Client::open(&args.state.dir()?)?;
        let mut options = UploadOptions {
            chunk_size: "auto".into(),
            min_chunk: 0,
            checksum: "none".into(),
            stall_timeout: 15,
        }
        .options()?;
        options.metadata.push((
            "filename".into(),
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned(),
        ));
        let mut s = client
            .start(
                target,
                SourceRecord::Stream {
                    label: path.display().to_string(),
                },
                options,
            )
            .await?;
        let events = s.take_events().context("events")?;
        printer = Some(tokio::spawn(print_upload_events(events, json)));
        session = Some(s);
    } else if !json {
        eprintln!("no upload target: recording locally only");
    }

    let (mut capture, frames) =
        spool_capture::start(source, args.fps, (args.fps as usize / 2).max(4))?;
    let config = spool_encode::Config {
        path: path.clone(),
        width,
        height,
        max_height: args.max_height,
        fps: args.fps,
        fragment: Duration::from_secs_f64(args.fragment_secs),
        preset: args.preset.clone(),
        crf: args.crf,
    };
    let (etx, erx) = std::sync::mpsc::channel();
    let encoder = spool_encode::spawn(config, frames, etx)?;
    // Encoder events cross to the async side through a small bridge thread.
    let (atx, mut arx) = tokio::sync::mpsc::channel::<spool_encode::Event>(64);
    std::thread::Builder::new()
        .name("spool-encode-events".into())
        .spawn(move || {
            for e in erx {
                if atx.blocking_send(e).is_err() {
                    break;
                }
            }
        })?;
    if !json {
        eprintln!(
            "recording {description} at {} fps to {} — press Enter or Ctrl-C to stop",
            args.fps,
            path.display()
        );
    }

    let stop = stop_requested(args.duration.map(Duration::from_secs_f64));
    tokio::pin!(stop);
    let mut stopped_at: Option<Instant> = None;
    let mut fragments = 0u64;
    loop {
        tokio::select! {
            why = &mut stop, if stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
                tracing::info!(why, "stop requested");
                capture.stop();
                if json { json_line(serde_json::json!({"event": "stopped"})); } else { eprintln!("stopping…"); }
            }
            event = arx.recv() => {
                let Some(event) = event else { break };
                let (offset, len) = match &event {
                    spool_encode::Event::Init { len } => (0, *len),
                    spool_encode::Event::Fragment(f) => (f.offset, f.len),
                };
                if let Some(s) = &session {
                    s.append_file(&path, offset, len).await?;
                }
                if let spool_encode::Event::Fragment(f) = event {
                    fragments += 1;
                    if json {
                        json_line(serde_json::json!({"event": "fragment", "index": f.index, "bytes": f.len, "duration_ms": f.duration.as_millis() as u64}));
                    }
                }
            }
        }
    }
    // The channel closed: the encoder is done (capture stopped, or failed).
    let summary = tokio::task::spawn_blocking(move || encoder.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the encoder thread panicked"))?;
    let capture_result = capture.join();
    let stopped_at = stopped_at.unwrap_or_else(Instant::now);
    let summary = summary.context("encoding failed; the fragments finished so far are kept")?;
    capture_result.context("capture failed")?;
    let dropped = capture
        .stats
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed)
        + capture
            .stats
            .missed
            .load(std::sync::atomic::Ordering::Relaxed);

    let mut completed = None;
    if let Some(s) = session {
        s.finish().await?;
        let id = s.id.clone();
        let status = s.status();
        let waited = wait_with_patience(s, status, Duration::from_secs(args.upload_patience)).await;
        if let Some(p) = printer {
            let _ = p.await;
        }
        match waited {
            Ok(c) => completed = Some((c, stopped_at.elapsed())),
            Err(e) => {
                eprintln!(
                    "spool: the recording is saved at {}; its upload did not complete ({e:#}) — run `spool resume` to finish it (upload {id})",
                    path.display()
                );
                std::process::exit(3);
            }
        }
    }
    let local_sha = match &completed {
        Some((c, _)) => c.sha256.clone(),
        None => sha256_file(&path)?,
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
            "bytes": summary.bytes,
            "sha256": local_sha,
            "local_path": path.display().to_string(),
            "frames": summary.frames,
            "fragments": fragments,
            "dropped": dropped,
            "duration_ms": summary.duration.as_millis() as u64,
            "stop_to_complete_ms": stop_ms,
        }));
    } else {
        println!(
            "recorded {:.1} s, {} frames ({} dropped) to {}",
            summary.duration.as_secs_f64(),
            summary.frames,
            dropped,
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

/// Waits for the upload to complete while it makes progress; gives up when
/// the confirmed offset has not moved for `patience`.
async fn wait_with_patience(
    session: Session,
    mut status: tokio::sync::watch::Receiver<spool_client::Status>,
    patience: Duration,
) -> anyhow::Result<spool_client::Completed> {
    let stopper = session_stopper(&session);
    let wait = session.wait();
    tokio::pin!(wait);
    let mut last = status.borrow().confirmed;
    let mut since = Instant::now();
    loop {
        tokio::select! {
            r = &mut wait => return Ok(r?),
            changed = status.changed() => {
                if changed.is_err() { continue; }
                let s = status.borrow().clone();
                if s.confirmed > last || s.state == State::Complete {
                    last = s.confirmed;
                    since = Instant::now();
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if since.elapsed() > patience {
            stopper();
            let _ = (&mut wait).await;
            bail!("no upload progress for {} s", patience.as_secs());
        }
    }
}

fn session_stopper(session: &Session) -> impl Fn() + use<> {
    let handle = session.stop_handle();
    move || handle.cancel()
}

async fn print_upload_events(mut rx: tokio::sync::mpsc::Receiver<Event>, json: bool) {
    while let Some(e) = rx.recv().await {
        if matches!(e, Event::Complete { .. }) {
            continue; // record prints its own, richer, complete event
        }
        if json {
            println!("{}", serde_json::to_value(&e).unwrap_or_default());
        } else if let Event::Reconnecting { attempt, error, .. } = &e {
            eprintln!("upload reconnecting (attempt {attempt}): {error}");
        } else if let Event::Stalled { error } = &e {
            eprintln!("upload stalled, still retrying (the recording goes on): {error}");
        }
    }
}
