//! Unit tests of the indexer on hand-made boxes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use mp4_atom::{
    Avc1, Avcc, Codec, Encode, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mvex, Mvhd,
    Stbl, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, TrunSamples, Visual,
};

use super::boxes::is_sync;
use super::*;

const SYNC: u32 = 0x0200_0000;
const NON: u32 = 0x0101_0000;

fn moov(default_duration: u32, default_flags: u32) -> Moov {
    let avc1 = Avc1 {
        visual: Visual {
            width: 320,
            height: 240,
            ..Default::default()
        },
        avcc: Avcc {
            configuration_version: 1,
            avc_profile_indication: 0x64,
            profile_compatibility: 0,
            avc_level_indication: 0x1f,
            length_size: 4,
            ..Default::default()
        },
        ..Default::default()
    };
    Moov {
        mvhd: Mvhd {
            timescale: 1000,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: 1,
                default_sample_description_index: 1,
                default_sample_duration: default_duration,
                default_sample_size: 0,
                default_sample_flags: default_flags,
            }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: 1,
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: 90000,
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: FourCC::new(b"vide"),
                    name: String::new(),
                },
                minf: Minf {
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![Codec::Avc1(avc1)],
                        },
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn moof(seq: u32, tfhd: Tfhd, tfdt: Option<u64>, trun: Vec<Trun>) -> Moof {
    Moof {
        mfhd: Mfhd {
            sequence_number: seq,
        },
        traf: vec![Traf {
            tfhd,
            tfdt: tfdt.map(|t| Tfdt {
                base_media_decode_time: t,
            }),
            trun,
            ..Default::default()
        }],
    }
}

fn file(moov: &Moov, moofs: &[Moof]) -> Vec<u8> {
    let mut out = Vec::new();
    Ftyp {
        major_brand: FourCC::new(b"isom"),
        minor_version: 0,
        compatible_brands: vec![FourCC::new(b"iso6")],
    }
    .encode(&mut out)
    .unwrap();
    moov.encode(&mut out).unwrap();
    for m in moofs {
        m.encode(&mut out).unwrap();
        Mdat { data: vec![0; 10] }.encode(&mut out).unwrap();
    }
    out
}

fn tfhd() -> Tfhd {
    Tfhd {
        track_id: 1,
        default_base_is_moof: true,
        ..Default::default()
    }
}

fn inherited(count: u32, first_flags: Option<u32>) -> Trun {
    Trun {
        data_offset: Some(0),
        samples: TrunSamples::Inherited { count, first_flags },
    }
}

#[test]
fn sync_flags() {
    assert!(is_sync(0));
    assert!(is_sync(SYNC));
    assert!(!is_sync(NON));
    assert!(!is_sync(0x0001_0000));
    assert!(!is_sync(0x0100_0000));
    assert!(is_sync(0x0200_0000 | 0x0001_0000));
}

#[test]
fn defaults_from_trex_and_tfhd() {
    // trex: 3000-tick samples, non-sync; the first sample's flags in the
    // trun make a keyframe.
    let moofs = vec![
        moof(1, tfhd(), Some(0), vec![inherited(30, Some(SYNC))]),
        moof(2, tfhd(), Some(90_000), vec![inherited(30, None)]),
        // tfhd overrides: 1500 ticks, sync by default.
        moof(
            3,
            Tfhd {
                default_sample_duration: Some(1500),
                default_sample_flags: Some(SYNC),
                ..tfhd()
            },
            None,
            vec![inherited(20, None)],
        ),
        // Explicit entries; the first is sync by its own flags, two truns.
        moof(
            4,
            tfhd(),
            Some(210_000),
            vec![
                Trun {
                    data_offset: Some(0),
                    samples: TrunSamples::Explicit(vec![
                        TrunEntry {
                            duration: Some(1000),
                            flags: Some(SYNC),
                            ..Default::default()
                        },
                        TrunEntry {
                            duration: Some(2000),
                            flags: Some(NON),
                            ..Default::default()
                        },
                    ]),
                },
                inherited(2, None),
            ],
        ),
    ];
    let data = file(&moov(3000, NON), &moofs);
    let ix = index_all(
        &mut Cursor::new(&data),
        data.len() as u64,
        Boundary::NextKeyframe,
    )
    .unwrap();
    let init = ix.init().unwrap();
    assert_eq!(init.timescale, 90000);
    assert_eq!(init.codecs, "avc1.64001f");
    assert_eq!((init.width, init.height), (320, 240));
    let got: Vec<(u64, u64)> = ix
        .segments()
        .iter()
        .map(|s| (s.start, s.duration))
        .collect();
    assert_eq!(got, vec![(0, 180_000), (180_000, 30_000), (210_000, 9000)]);
    assert_eq!(ix.duration_ms(), 219_000 * 1000 / 90_000);

    // EveryMoof: the second moof broke the promise and stands alone.
    let ix = index_all(
        &mut Cursor::new(&data),
        data.len() as u64,
        Boundary::EveryMoof,
    )
    .unwrap();
    let got: Vec<(u64, u64)> = ix
        .segments()
        .iter()
        .map(|s| (s.start, s.duration))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 90_000),
            (90_000, 90_000),
            (180_000, 30_000),
            (210_000, 9000)
        ]
    );
}

#[test]
fn moov_without_mvex_is_unsupported() {
    let mut m = moov(0, 0);
    m.mvex = None;
    let data = file(&m, &[]);
    let r = index_all(
        &mut Cursor::new(&data),
        data.len() as u64,
        Boundary::EveryMoof,
    );
    assert!(matches!(r, Err(MediaError::Unsupported(m)) if m.contains("not a fragmented")));
}

#[test]
fn no_fragments_is_an_empty_index() {
    let data = file(&moov(0, 0), &[]);
    let ix = index_all(
        &mut Cursor::new(&data),
        data.len() as u64,
        Boundary::EveryMoof,
    )
    .unwrap();
    assert_eq!(ix.init().unwrap().len, data.len() as u64);
    assert!(ix.segments().is_empty());
    assert_eq!(ix.duration_ms(), 0);
}
#[test]
fn audio_only_moofs_join_a_segment() {
    let audio = || {
        moof(
            0,
            Tfhd {
                track_id: 2,
                default_sample_duration: Some(1024),
                ..tfhd()
            },
            Some(0),
            vec![inherited(10, None)],
        )
    };
    let moofs = vec![
        audio(),
        moof(1, tfhd(), Some(500), vec![inherited(10, Some(SYNC))]),
        audio(),
        moof(2, tfhd(), Some(30_500), vec![inherited(10, None)]),
        moof(3, tfhd(), Some(60_500), vec![inherited(10, Some(SYNC))]),
        audio(),
    ];
    let data = file(&moov(3000, NON), &moofs);
    let init_len = index_all(
        &mut Cursor::new(&data),
        data.len() as u64,
        Boundary::EveryMoof,
    )
    .unwrap()
    .init()
    .unwrap()
    .len;
    for (boundary, want) in [
        (
            Boundary::NextKeyframe,
            vec![(500, 60_000), (60_500, 30_000)],
        ),
        (
            Boundary::EveryMoof,
            // The trailing audio moof is its own (empty) segment.
            vec![
                (500, 30_000),
                (30_500, 30_000),
                (60_500, 30_000),
                (90_500, 0),
            ],
        ),
    ] {
        let ix = index_all(&mut Cursor::new(&data), data.len() as u64, boundary).unwrap();
        let segs = ix.segments();
        let got: Vec<(u64, u64)> = segs.iter().map(|s| (s.start, s.duration)).collect();
        assert_eq!(got, want, "{boundary:?}");
        assert_eq!(segs[0].offset, init_len);
        let last = segs.last().unwrap();
        assert_eq!(last.offset + last.len, data.len() as u64);
    }
}
