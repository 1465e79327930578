//! The recorder against the synthetic source, locally.

use std::path::Path;
use std::time::Duration;

use super::*;

/// Waits (up to 20 s, polling every 20 ms) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn settings(dir: &Path) -> Settings {
    Settings {
        source: spool_capture::SourceSpec::parse("synthetic:320x240", None).unwrap(),
        fps: 15,
        fragment: Duration::from_millis(500),
        max_height: None,
        preset: spool_encode::Config::DEFAULT_PRESET.into(),
        crf: 30,
        output_dir: dir.to_path_buf(),
        audio: Default::default(),
        chunk: Some(Settings::DEFAULT_CHUNK),
        adapt_bitrate: true,
    }
}

#[tokio::test]
async fn records_locally_and_counts_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = Recorder::start(settings(dir.path()), None).await.unwrap();
    let mut events = rec.take_events().unwrap();
    let progress = rec.progress_handle();
    assert_eq!(rec.progress().state, "recording");
    until("three fragments", || {
        progress.progress().fragments_recorded >= 3
    })
    .await;
    rec.stop();
    let mut recorded = rec.finish().await.unwrap();
    assert!(recorded.fragments >= 3, "{} fragments", recorded.fragments);
    assert_eq!(
        std::fs::metadata(&recorded.path).unwrap().len(),
        recorded.bytes
    );
    let p = progress.progress();
    assert_eq!(p.state, "saved");
    assert_eq!(p.fragments_recorded, recorded.fragments);
    assert_eq!(p.recorded, recorded.bytes);
    assert_eq!(p.confirmed, 0);
    assert!(recorded.finish_upload(None).await.unwrap().is_none());
    let mut fragments = 0;
    let mut stopped = false;
    while let Ok(e) = events.try_recv() {
        match e {
            Event::Fragment { .. } => fragments += 1,
            Event::Stopped => stopped = true,
            Event::Paused | Event::Resumed => panic!("no pause"),
            Event::Upload(_) => panic!("no upload"),
            Event::Muted(_) | Event::Audio(_) => panic!("no sound"),
            Event::Bitrate { .. } => panic!("no uplink to adapt to"),
        }
    }
    assert_eq!(fragments, recorded.fragments);
    assert!(stopped);
}

#[test]
fn rejects_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.fragment = Duration::from_secs(20);
    assert!(matches!(s.validate(), Err(RecordError::Invalid(_))));
    let mut s = settings(dir.path());
    s.fps = 0;
    assert!(s.validate().is_err());
    let mut s = settings(dir.path());
    s.crf = 60;
    assert!(s.validate().is_err());
    let mut s = settings(dir.path());
    s.chunk = Some(Duration::from_millis(10));
    assert!(s.validate().is_err());
}

/// Pause closes the fragment being written, nothing is captured while
/// paused, and the recording's length leaves the pause out.
#[tokio::test]
async fn a_pause_closes_the_fragment_and_is_left_out_of_the_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.fragment = Duration::from_secs(2);
    let mut rec = Recorder::start(s, None).await.unwrap();
    let mut events = rec.take_events().unwrap();
    let controls = rec.controls();
    let progress = rec.progress_handle();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(controls.pause());
    assert!(!controls.pause(), "already paused");
    // The fragment in progress is closed at once, with the pause's reason.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await.unwrap() {
                Event::Fragment {
                    reason, duration, ..
                } => break (reason, duration),
                Event::Paused => {}
                e => panic!("{e:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed.0, spool_encode::Cut::Pause);
    assert!(closed.1 >= Duration::from_millis(650), "{:?}", closed.1);
    let p = progress.progress();
    assert_eq!(p.state, "paused");
    assert!(p.paused);
    let frozen = p.elapsed_ms;
    let bytes_at_pause = std::fs::metadata(&rec.path).unwrap().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        progress.progress().elapsed_ms,
        frozen,
        "the clock stands still"
    );
    assert_eq!(std::fs::metadata(&rec.path).unwrap().len(), bytes_at_pause);
    assert!(!controls.toggle(), "resumed");
    tokio::time::sleep(Duration::from_millis(600)).await;
    rec.stop();
    let recorded = rec.finish().await.unwrap();
    assert!(
        recorded.paused >= Duration::from_millis(800),
        "{:?}",
        recorded.paused
    );
    let ms = recorded.duration.as_millis() as i64;
    assert!((1200..1500).contains(&ms), "{ms} ms recorded");
    let d = (probe_duration_s(&recorded.path) * 1000.0) as i64;
    assert!((d - ms).abs() < 80, "file {d} ms, recorder {ms} ms");
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(match e {
            Event::Fragment { reason, .. } => reason.as_str(),
            Event::Resumed => "resumed",
            Event::Stopped => "stopped",
            e => panic!("{e:?}"),
        });
    }
    assert_eq!(kinds, ["resumed", "stopped", "end"]);
}

#[tokio::test]
async fn a_countdown_lasts_its_length_and_can_be_cancelled() {
    let cancel = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let mut ticks = Vec::new();
    assert!(countdown(2, &cancel, |s| ticks.push(s)).await);
    let took = started.elapsed();
    assert_eq!(ticks, [2, 1]);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2300),
        "{took:?}"
    );
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.cancel();
    });
    let started = std::time::Instant::now();
    assert!(!countdown(5, &cancel, |_| {}).await);
    assert!(started.elapsed() < Duration::from_secs(1));
}

fn probe_duration_s(path: &Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_muted_span_of_sound_as_silence_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.audio = spool_capture::audio::AudioRequest {
        mic: Some("synthetic:440".into()),
        system: Some("synthetic:880@+300".into()),
        mic_gain_db: -6.0,
        system_gain_db: 0.0,
    };
    let mut rec = Recorder::start(s, None).await.unwrap();
    let mut events = rec.take_events().unwrap();
    let controls = rec.controls();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let p = rec.progress();
    let a = p.audio.clone().expect("sound in the progress");
    assert_eq!(
        (a.mic.as_deref(), a.system.as_deref()),
        (Some("active"), Some("active"))
    );
    // 0.3 × −6 dB.
    assert!((0.12..0.5).contains(&a.mic_level.unwrap()), "{a:?}");
    assert!(controls.set_muted(true));
    assert!(controls.is_muted());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!controls.toggle_mute());
    tokio::time::sleep(Duration::from_millis(500)).await;
    rec.stop();
    let recorded = rec.finish().await.unwrap();
    let audio = recorded.audio.clone().expect("a sound track");
    assert_eq!((audio.tracks, audio.sources), (1, 2));
    assert_eq!(audio.duration, recorded.duration);
    assert!(audio.av_offset_ms.abs() < 5.0, "{audio:?}");
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        match e {
            Event::Audio(a) => seen.push(format!("{}:{}", a.kind.as_str(), a.state.as_str())),
            Event::Muted(m) => seen.push(format!("muted:{m}")),
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["mic:active", "muted:false", "muted:true", "system:active"]
    );
}

#[tokio::test]
async fn an_unknown_sound_device_fails_before_anything_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.audio.mic = Some("synthetic:5".into());
    assert!(matches!(
        Recorder::start(s, None).await,
        Err(RecordError::Audio(_))
    ));
    assert_eq!(
        std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}
