//! HLS media playlists (version 7) over an [`crate::index`]: `EXT-X-MAP` for
//! the init segment and one `EXT-X-BYTERANGE` segment per keyframe-led
//! segment, all byte ranges of one object (zero copies). A live playlist has
//! no `EXT-X-ENDLIST` and grows; the finished one ends with it.
//!
//! Durations: each `EXTINF` is the difference of the *cumulative* segment
//! end times rounded to microseconds, computed from the integer tick values,
//! so the `EXTINF`s add up exactly to the video duration (to the
//! microsecond) however many segments there are, and the float is only
//! formatted at the end.
//!
//! Target duration: the spec (RFC 8216 §6.2.1) forbids changing
//! `EXT-X-TARGETDURATION` while a live playlist grows. This function is
//! stateless, so it renders `max(1, ceil(first segment), ceil(longest
//! segment so far))` in whole seconds: the first segment gives the floor
//! (a producer with a steady GOP never exceeds it, so the value stays put),
//! and a later segment longer than that raises it, which is the producer's
//! breach, not hidden by a value the segments break. With no segments yet
//! it is 1.

use crate::index::{InitInfo, Segment};

/// Renders the playlist. `uri` is the object's URL as the playlist names it
/// (relative or absolute); `ended` adds `EXT-X-ENDLIST` (and
/// `EXT-X-PLAYLIST-TYPE:VOD`; a live one is `EVENT`).
///
/// `uri` is written as is (it must not contain `"` or a line break; a URL
/// never does).
pub fn media_playlist(init: &InitInfo, segments: &[Segment], uri: &str, ended: bool) -> String {
    use std::fmt::Write;

    let ts = u64::from(init.timescale.max(1));
    let ceil_secs = |d: u64| d.div_ceil(ts);
    let floor = segments.first().map_or(1, |s| ceil_secs(s.duration));
    let longest = segments
        .iter()
        .map(|s| ceil_secs(s.duration))
        .max()
        .unwrap_or(1);
    let target = floor.max(longest).max(1);

    let mut out = String::with_capacity(256 + segments.len() * (64 + 2 * uri.len()));
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
    out.push_str(if ended {
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
    } else {
        "#EXT-X-PLAYLIST-TYPE:EVENT\n"
    });
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{uri}\",BYTERANGE=\"{}@0\"", init.len);

    // Cumulative ticks → microseconds, rounded half up.
    let us = |ticks: u128| (ticks * 1_000_000 + ts as u128 / 2) / ts as u128;
    let mut cum: u128 = 0;
    let mut prev_us: u128 = 0;
    for s in segments {
        cum += s.duration as u128;
        let now = us(cum);
        let d = now - prev_us;
        prev_us = now;
        let _ = writeln!(out, "#EXTINF:{}.{:06},", d / 1_000_000, d % 1_000_000);
        let _ = writeln!(out, "#EXT-X-BYTERANGE:{}@{}", s.len, s.offset);
        out.push_str(uri);
        out.push('\n');
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn init() -> InitInfo {
        InitInfo {
            len: 1234,
            timescale: 15360,
            track_id: 1,
            width: 640,
            height: 360,
            codecs: "avc1.64001e".into(),
        }
    }

    fn segs() -> Vec<Segment> {
        vec![
            Segment {
                offset: 1234,
                len: 5000,
                start: 0,
                duration: 30720,
            },
            Segment {
                offset: 6234,
                len: 4000,
                start: 30720,
                duration: 30720,
            },
            Segment {
                offset: 10234,
                len: 777,
                start: 61440,
                duration: 512 * 7,
            },
        ]
    }

    #[test]
    fn vod_golden() {
        let got = media_playlist(&init(), &segs(), "v.mp4", true);
        let want = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"v.mp4\",BYTERANGE=\"1234@0\"
#EXTINF:2.000000,
#EXT-X-BYTERANGE:5000@1234
v.mp4
#EXTINF:2.000000,
#EXT-X-BYTERANGE:4000@6234
v.mp4
#EXTINF:0.233333,
#EXT-X-BYTERANGE:777@10234
v.mp4
#EXT-X-ENDLIST
";
        assert_eq!(got, want);
    }

    #[test]
    fn live_golden() {
        let got = media_playlist(&init(), &segs()[..1], "https://x/o?sig=1", false);
        let want = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"https://x/o?sig=1\",BYTERANGE=\"1234@0\"
#EXTINF:2.000000,
#EXT-X-BYTERANGE:5000@1234
https://x/o?sig=1
";
        assert_eq!(got, want);
        let empty = media_playlist(&init(), &[], "v.mp4", false);
        assert!(empty.contains("#EXT-X-TARGETDURATION:1\n"));
        assert!(!empty.contains("#EXTINF"));
    }

    #[test]
    fn durations_add_up_exactly() {
        // 1001/30000 frames: per-segment rounding would drift.
        let init = InitInfo {
            timescale: 30000,
            ..init()
        };
        let segs: Vec<Segment> = (0..1000)
            .map(|i| Segment {
                offset: 1234 + i * 10,
                len: 10,
                start: i * 1001,
                duration: 1001,
            })
            .collect();
        let text = media_playlist(&init, &segs, "v.mp4", true);
        let total_us: u64 = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|v| {
                let v = v.trim_end_matches(',');
                let (a, b) = v.split_once('.').unwrap();
                a.parse::<u64>().unwrap() * 1_000_000 + b.parse::<u64>().unwrap()
            })
            .sum();
        // 1000 * 1001 / 30000 s = 33.366666.. s
        assert_eq!(total_us, 33_366_667);
    }

    #[test]
    fn target_duration_is_ceil_of_longest() {
        let mut s = segs();
        s[1].duration = 30721;
        let text = media_playlist(&init(), &s, "v.mp4", true);
        assert!(text.contains("#EXT-X-TARGETDURATION:3\n"));
    }
}
