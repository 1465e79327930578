//! What the index is for, played by ffmpeg: the indexed MP4 header that
//! makes the upload seekable, and the HLS playlist of byte ranges.

use super::*;

#[test]
fn indexed_mp4_has_duration_and_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let mut codec = H264.to_vec();
    codec.extend(["-c:a", "aac"]);
    check_indexed(dir.path(), "a.mp4", &codec);
    // B-frames (composition offsets, an edit list).
    let codec = [
        "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac",
    ];
    check_indexed(dir.path(), "b.mp4", &codec);
    // A millisecond timescale, as Spool's recorder writes it.
    let codec = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        "-video_track_timescale",
        "1000",
    ];
    check_indexed(dir.path(), "c.mp4", &codec);
}

fn check_indexed(dir: &Path, name: &str, codec: &[&str]) {
    let input = if codec.contains(&"aac") {
        with_audio("6")
    } else {
        testsrc("6")
    };
    let path = fragmented(
        dir,
        name,
        &input,
        codec,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let ix = whole(&data, Boundary::NextKeyframe);
    let init = ix.init().unwrap();
    let segs = ix.segments();
    let head = spool_media::indexed::header(&data[..init.len as usize], init, segs).unwrap();

    // The sidx parses back.
    // The init bytes keep their layout; the sidx follows them.
    assert_eq!(&head[..8], &data[..8]);
    let sidx_at = init.len as usize;
    let size = u32::from_be_bytes(head[sidx_at..sidx_at + 4].try_into().unwrap()) as usize;
    assert_eq!(size, head.len() - sidx_at);
    assert_eq!(&head[sidx_at + 4..sidx_at + 8], b"sidx");
    use mp4_atom::Decode;
    let sidx = mp4_atom::Sidx::decode(&mut &head[sidx_at..]).unwrap();
    assert_eq!(head[sidx_at + 8], 1, "version 1");
    assert_eq!(sidx.reference_id, init.track_id);
    assert_eq!(sidx.timescale, init.timescale);
    assert_eq!(sidx.earliest_presentation_time, segs[0].start);
    assert_eq!(sidx.first_offset, 0);
    assert_eq!(sidx.references.len(), segs.len());
    for (r, s) in sidx.references.iter().zip(segs) {
        assert!(!r.reference_type);
        assert_eq!(r.referenced_size as u64, s.len);
        assert_eq!(r.subsegment_duration as u64, s.duration);
        assert!(r.starts_with_sap);
        assert_eq!(r.sap_type, 1);
    }
    // The patched moov still decodes, with the durations.
    let moov_at = {
        let mut pos = 0;
        loop {
            let size = u32::from_be_bytes(head[pos..pos + 4].try_into().unwrap()) as usize;
            if &head[pos + 4..pos + 8] == b"moov" {
                break pos;
            }
            pos += size;
        }
    };
    let moov = mp4_atom::Moov::decode(&mut &head[moov_at..]).unwrap();
    let total = total_ticks(segs);
    let movie_secs = moov.mvhd.duration as f64 / moov.mvhd.timescale as f64;
    assert!((movie_secs - total as f64 / init.timescale as f64).abs() < 0.01);
    let video = moov
        .trak
        .iter()
        .find(|t| t.tkhd.track_id == init.track_id)
        .unwrap();
    assert_eq!(video.mdia.mdhd.duration, total);
    assert_eq!(video.tkhd.duration, moov.mvhd.duration);
    let mehd = moov.mvex.as_ref().unwrap().mehd.as_ref();
    if let Some(mehd) = mehd {
        assert_eq!(mehd.fragment_duration, moov.mvhd.duration);
    }

    let last = segs.last().unwrap();
    let mut file = head.clone();
    file.extend_from_slice(&data[segs[0].offset as usize..(last.offset + last.len) as usize]);
    let out = dir.join(format!("indexed-{name}"));
    std::fs::write(&out, &file).unwrap();
    let secs = total as f64 / init.timescale as f64;
    // The video stream lasts what the index says; the file as long as the
    // fragmented original (which can be longer: AAC padding, the B-frame
    // delay before the first picture).
    let video = probe(
        &out,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=duration",
            "-of",
            "csv=p=0",
        ],
    );
    let video: f64 = video.trim().parse().unwrap();
    assert!(
        (video - secs).abs() <= 1.0 / 30.0 + 1e-6,
        "{video} vs {secs}"
    );
    let probed = format_duration(&out);
    let original = format_duration(&path);
    assert!(
        (probed - original).abs() <= 1.0 / 30.0 + 1e-6 && (probed - secs).abs() <= 0.1,
        "{probed} vs {original} / {secs}"
    );
    // The original, with its empty moov, also probes; ours must not be worse.
    let ss = format!("{:.3}", secs * 0.8);
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-ss", &ss, "-i"])
        .arg(&out)
        .args(["-frames:v", "1", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(st.success());
    // The whole file decodes without errors.
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(&out)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn hls_playlist_plays_in_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let mut codec = H264.to_vec();
    codec.extend(["-c:a", "aac"]);
    let path = fragmented(
        dir.path(),
        "video.mp4",
        &with_audio("5"),
        &codec,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let ix = whole(&data, Boundary::NextKeyframe);
    let text =
        spool_media::hls::media_playlist(ix.init().unwrap(), ix.segments(), "video.mp4", true);
    let pl = dir.path().join("index.m3u8");
    std::fs::write(&pl, &text).unwrap();
    let secs = total_ticks(ix.segments()) as f64 / ix.init().unwrap().timescale as f64;
    let probed = format_duration(&pl);
    assert!(
        (probed - secs).abs() <= 1.0 / 30.0 + 1e-6,
        "{probed} vs {secs}"
    );
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&pl)
        .args(["-c", "copy", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Every video frame is there.
    let frames = probe(
        &pl,
        &[
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ],
    );
    assert_eq!(frames.lines().next().unwrap().trim(), "150");
}
