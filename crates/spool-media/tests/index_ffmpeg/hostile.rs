//! Input the indexer must refuse or survive: what it cannot index, broken
//! structure, reading past what is available, corrupted headers.

use super::*;

fn expect_unsupported(r: Result<(), MediaError>, what: &str) {
    match r {
        Err(MediaError::Unsupported(m)) => assert!(m.contains(what), "{m}"),
        other => panic!("expected Unsupported({what}), got {other:?}"),
    }
}

#[test]
fn rejects_what_it_cannot_index() {
    let dir = tempfile::tempdir().unwrap();
    // A regular MP4, moov first.
    let mut args = testsrc("2");
    args.extend(H264);
    args.extend(["-movflags", "+faststart"]);
    let fast = std::fs::read(ffmpeg(dir.path(), "fast.mp4", &args)).unwrap();
    let mut ix = Indexer::new(Boundary::NextKeyframe);
    let r = ix.advance(&mut Cursor::new(&fast[..]), fast.len() as u64);
    expect_unsupported(r.map(|_| ()), "not a fragmented MP4");
    // It stays failed.
    let r = ix.advance(&mut Cursor::new(&fast[..]), fast.len() as u64);
    expect_unsupported(r.map(|_| ()), "not a fragmented MP4");
    let r = ix.finish(&mut Cursor::new(&fast[..]), fast.len() as u64);
    expect_unsupported(r, "not a fragmented MP4");

    // A regular MP4, moov last: known as soon as the mdat header shows.
    let mut args = testsrc("2");
    args.extend(H264);
    let slow = std::fs::read(ffmpeg(dir.path(), "slow.mp4", &args)).unwrap();
    let r = Indexer::new(Boundary::NextKeyframe).advance(&mut Cursor::new(&slow[..]), 100);
    expect_unsupported(r.map(|_| ()), "not a fragmented MP4");

    // frag_keyframe without empty_moov: the first GOP is in moov's tables.
    let mut args = testsrc("2");
    args.extend(H264);
    args.extend(["-movflags", "frag_keyframe"]);
    let hybrid = std::fs::read(ffmpeg(dir.path(), "hybrid.mp4", &args)).unwrap();
    let r = index_all(
        &mut Cursor::new(&hybrid[..]),
        hybrid.len() as u64,
        Boundary::NextKeyframe,
    );
    expect_unsupported(r.map(|_| ()), "not a fragmented MP4");

    // Random bytes.
    let mut rng = 7u64;
    let junk: Vec<u8> = (0..10_000)
        .map(|_| {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            (rng >> 56) as u8
        })
        .collect();
    let r = index_all(
        &mut Cursor::new(&junk[..]),
        junk.len() as u64,
        Boundary::EveryMoof,
    );
    expect_unsupported(r.map(|_| ()), "not an MP4");
    let r = index_all(&mut Cursor::new(&junk[..3]), 3, Boundary::EveryMoof);
    expect_unsupported(r.map(|_| ()), "not an MP4");
    let r = index_all(&mut Cursor::new(&[][..]), 0, Boundary::EveryMoof);
    expect_unsupported(r.map(|_| ()), "not an MP4");

    // A Matroska file.
    let mut args = testsrc("1");
    args.extend(H264);
    let mkv = std::fs::read(ffmpeg(dir.path(), "a.mkv", &args)).unwrap();
    let r = index_all(
        &mut Cursor::new(&mkv[..]),
        mkv.len() as u64,
        Boundary::EveryMoof,
    );
    expect_unsupported(r.map(|_| ()), "not an MP4");
}

#[test]
fn broken_structure_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented(
        dir.path(),
        "a.mp4",
        &testsrc("2"),
        H264,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    // Truncated inside the last mdat: fine while uploading, Malformed at finish.
    let cut = &data[..data.len() - 100];
    let mut ix = Indexer::new(Boundary::NextKeyframe);
    let mut src = Cursor::new(cut);
    ix.advance(&mut src, cut.len() as u64).unwrap();
    assert!(matches!(
        ix.finish(&mut src, cut.len() as u64),
        Err(MediaError::Malformed(_))
    ));
    assert!(matches!(
        ix.advance(&mut src, cut.len() as u64),
        Err(MediaError::Malformed(_))
    ));

    // A box with size 3.
    let init_len = whole(&data, Boundary::NextKeyframe).init().unwrap().len as usize;
    let mut bad = data.clone();
    bad[init_len..init_len + 4].copy_from_slice(&3u32.to_be_bytes());
    let r = index_all(
        &mut Cursor::new(&bad[..]),
        bad.len() as u64,
        Boundary::NextKeyframe,
    );
    assert!(matches!(r, Err(MediaError::Malformed(_))), "{r:?}");

    // A moof whose body is garbage.
    let mut bad = data.clone();
    for b in &mut bad[init_len + 8..init_len + 40] {
        *b = 0xff;
    }
    let r = index_all(
        &mut Cursor::new(&bad[..]),
        bad.len() as u64,
        Boundary::NextKeyframe,
    );
    assert!(matches!(r, Err(MediaError::Malformed(_))), "{r:?}");
}

#[test]
fn never_reads_past_available() {
    /// A reader that fails on any byte at or past `limit`.
    struct Fenced<'a> {
        data: &'a [u8],
        pos: u64,
        limit: u64,
    }
    impl std::io::Read for Fenced<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let end = (self.pos + buf.len() as u64).min(self.data.len() as u64);
            if end > self.limit {
                return Err(std::io::Error::other("read past available"));
            }
            let n = (end - self.pos) as usize;
            buf[..n].copy_from_slice(&self.data[self.pos as usize..end as usize]);
            self.pos = end;
            Ok(n)
        }
    }
    impl std::io::Seek for Fenced<'_> {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            if let std::io::SeekFrom::Start(p) = to {
                self.pos = p;
            } else {
                unimplemented!()
            }
            Ok(self.pos)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented(
        dir.path(),
        "a.mp4",
        &testsrc("3"),
        H264,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let mut ix = Indexer::new(Boundary::NextKeyframe);
    let mut avail = 0;
    while avail < data.len() as u64 {
        avail = (avail + 997).min(data.len() as u64);
        let mut src = Fenced {
            data: &data,
            pos: 0,
            limit: avail,
        };
        ix.advance(&mut src, avail).unwrap();
    }
    let mut src = Fenced {
        data: &data,
        pos: 0,
        limit: avail,
    };
    ix.finish(&mut src, avail).unwrap();
    assert_eq!(
        ix.segments(),
        whole(&data, Boundary::NextKeyframe).segments()
    );
}

#[test]
fn corrupted_headers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut codec = H264.to_vec();
    codec.extend(["-c:a", "aac"]);
    let path = fragmented(
        dir.path(),
        "a.mp4",
        &with_audio("2"),
        &codec,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let good = whole(&data, Boundary::NextKeyframe);
    // Byte positions worth breaking: the init segment and every moof.
    let mut spots: Vec<usize> = (0..good.init().unwrap().len as usize).collect();
    for s in good.segments() {
        let at = s.offset as usize;
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        spots.extend(at..at + size + 16);
    }
    let mut rng = 99u64;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng >> 33
    };
    for _ in 0..600 {
        let mut bad = data.clone();
        for _ in 0..1 + next() % 4 {
            let at = spots[next() as usize % spots.len()];
            bad[at] = next() as u8;
        }
        for boundary in [Boundary::NextKeyframe, Boundary::EveryMoof] {
            let stepped = {
                let mut ix = Indexer::new(boundary);
                let mut src = Cursor::new(&bad[..]);
                let mut avail = 0;
                let mut r = Ok(0);
                while avail < bad.len() as u64 && r.is_ok() {
                    avail = (avail + 1 + next() % 40_000).min(bad.len() as u64);
                    r = ix.advance(&mut src, avail);
                }
                r.and_then(|_| ix.finish(&mut src, bad.len() as u64))
                    .map(|_| ix)
            };
            let Ok(ix) = stepped else { continue };
            let init = ix.init().unwrap();
            let segs = ix.segments();
            for w in segs.windows(2) {
                assert!(w[0].offset < w[1].offset);
            }
            let _ = spool_media::hls::media_playlist(init, segs, "x.mp4", true);
            if (init.len as usize) <= bad.len() {
                let _ = spool_media::indexed::header(&bad[..init.len as usize], init, segs);
            }
        }
    }
}
