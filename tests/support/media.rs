//! Media helpers for the playback suites: test videos made with the ffmpeg
//! CLI, waiting for an asset's status, and a parsed HLS media playlist.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::SpoolServer;

/// Runs `ffmpeg -v error -y <args> <out>`; panics with its stderr on failure.
pub fn ffmpeg_make(out: &Path, args: &[&str]) {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .output()
        .expect("ffmpeg");
    assert!(
        o.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A fragmented MP4 like Spool's recordings (H.264, keyframe-led fragments
/// of `gop` frames), `secs` long at `size` and 30 fps.
pub fn fmp4(out: &Path, size: &str, secs: u32, gop: u32) {
    ffmpeg_make(
        out,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            &gop.to_string(),
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ],
    );
}

/// Polls `GET /v1/assets/{id}` until `done` holds for it; returns it.
pub async fn wait_asset(
    server: &SpoolServer,
    id: &str,
    timeout: Duration,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let a = server.asset(id).await;
        if done(&a) {
            return a;
        }
        assert!(Instant::now() < deadline, "asset never got there: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the asset's status is `status`.
pub async fn wait_status(
    server: &SpoolServer,
    id: &str,
    status: &str,
    timeout: Duration,
) -> serde_json::Value {
    wait_asset(server, id, timeout, |a| a["status"] == status).await
}

/// One `EXTINF` segment of a playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsSegment {
    pub duration: f64,
    pub len: u64,
    pub offset: u64,
    pub uri: String,
}

/// A parsed HLS media playlist (the tags Spool writes).
#[derive(Debug, Clone)]
pub struct Playlist {
    pub text: String,
    pub version: u32,
    pub ended: bool,
    /// The `EXT-X-MAP` URI and byte range (len, offset).
    pub map: (String, u64, u64),
    pub segments: Vec<HlsSegment>,
}

fn byterange(v: &str) -> (u64, u64) {
    let (len, off) = v.trim_matches('"').split_once('@').expect("len@offset");
    (len.parse().unwrap(), off.parse().unwrap())
}

impl Playlist {
    pub fn parse(text: &str) -> Playlist {
        assert!(text.starts_with("#EXTM3U"), "not a playlist: {text}");
        let mut p = Playlist {
            text: text.to_owned(),
            version: 0,
            ended: false,
            map: (String::new(), 0, 0),
            segments: Vec::new(),
        };
        let mut pending: Option<(f64, (u64, u64))> = None;
        let mut dur = None;
        for line in text.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
                p.version = v.parse().unwrap();
            } else if line == "#EXT-X-ENDLIST" {
                p.ended = true;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
                let uri = v.split("URI=\"").nth(1).unwrap().split('"').next().unwrap();
                let br = v
                    .split("BYTERANGE=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                let (len, off) = byterange(br);
                p.map = (uri.to_owned(), len, off);
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                dur = Some(
                    v.trim_end_matches(',')
                        .split(',')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap(),
                );
            } else if let Some(v) = line.strip_prefix("#EXT-X-BYTERANGE:") {
                pending = Some((dur.take().expect("EXTINF before BYTERANGE"), byterange(v)));
            } else if !line.is_empty() && !line.starts_with('#') {
                let (duration, (len, offset)) = pending.take().expect("a byte range per segment");
                p.segments.push(HlsSegment {
                    duration,
                    len,
                    offset,
                    uri: line.to_owned(),
                });
            }
        }
        p
    }

    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

/// `GET <share_url>/playlist.m3u8`, parsed; `None` while it is not there.
pub async fn playlist(share_url: &str) -> Option<Playlist> {
    let resp = reqwest::get(format!("{share_url}/playlist.m3u8"))
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    Some(Playlist::parse(&resp.text().await.ok()?))
}

/// `GET url` with `Range: bytes=offset-(offset+len-1)`.
pub async fn get_range(url: &str, offset: u64, len: u64) -> Vec<u8> {
    let resp = reqwest::Client::new()
        .get(url)
        .header("range", format!("bytes={offset}-{}", offset + len - 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206, "{url}");
    resp.bytes().await.unwrap().to_vec()
}
