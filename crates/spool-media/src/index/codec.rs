//! RFC 6381 codec strings from `mp4-atom` sample entries.

use mp4_atom::{Av1c, Avcc, Codec, Hvcc, VpcC};

/// The codec string of a video sample entry, if it is one HLS players know.
pub(crate) fn video(codec: &Codec) -> Option<String> {
    match codec {
        Codec::Avc1(c) => Some(avc("avc1", &c.avcc)),
        Codec::Avc3(c) => Some(avc("avc3", &c.avcc)),
        Codec::Hvc1(c) => Some(hevc("hvc1", &c.hvcc)),
        Codec::Hev1(c) => Some(hevc("hev1", &c.hvcc)),
        Codec::Vp09(c) => Some(vp9(&c.vpcc)),
        Codec::Vp08(_) => Some("vp8".to_string()),
        Codec::Av01(c) => Some(av1(&c.av1c)),
        _ => None,
    }
}

/// The codec string of an audio sample entry.
pub(crate) fn audio(codec: &Codec) -> Option<String> {
    match codec {
        Codec::Mp4a(m) => {
            let dc = &m.esds.es_desc.dec_config;
            let oti = dc.object_type_indication;
            let aot = dc
                .dec_specific
                .as_ref()
                .map(|d| d.profile)
                .filter(|p| *p != 0)
                .unwrap_or(2);
            if oti == 0x40 || oti == 0 {
                Some(format!("mp4a.40.{aot}"))
            } else {
                Some(format!("mp4a.{oti:02x}"))
            }
        }
        Codec::Opus(_) => Some("opus".to_string()),
        Codec::Flac(_) => Some("fLaC".to_string()),
        Codec::Ac3(_) => Some("ac-3".to_string()),
        Codec::Eac3(_) => Some("ec-3".to_string()),
        _ => None,
    }
}

fn avc(fourcc: &str, c: &Avcc) -> String {
    format!(
        "{fourcc}.{:02x}{:02x}{:02x}",
        c.avc_profile_indication, c.profile_compatibility, c.avc_level_indication
    )
}

/// ISO/IEC 14496-15 Annex E: `hvc1.<space><profile>.<compat reversed>.<tier><level>.<constraints>`.
fn hevc(fourcc: &str, c: &Hvcc) -> String {
    let space = match c.general_profile_space {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let compat = u32::from_be_bytes(c.general_profile_compatibility_flags).reverse_bits();
    let tier = if c.general_tier_flag { 'H' } else { 'L' };
    let mut s = format!(
        "{fourcc}.{space}{}.{compat:X}.{tier}{}",
        c.general_profile_idc, c.general_level_idc
    );
    let flags = &c.general_constraint_indicator_flags;
    let used = flags.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    for b in &flags[..used] {
        s.push_str(&format!(".{b:X}"));
    }
    s
}

/// VP9 codec ISO BMFF binding: `vp09.PP.LL.DD`.
fn vp9(c: &VpcC) -> String {
    format!("vp09.{:02}.{:02}.{:02}", c.profile, c.level, c.bit_depth)
}

/// AV1 ISO BMFF binding: `av01.P.LLT.DD`.
fn av1(c: &Av1c) -> String {
    let tier = if c.seq_tier_0 { 'H' } else { 'M' };
    let depth = match (c.high_bitdepth, c.twelve_bit) {
        (true, true) => 12,
        (true, false) => 10,
        _ => 8,
    };
    format!(
        "av01.{}.{:02}{tier}.{depth:02}",
        c.seq_profile, c.seq_level_idx_0
    )
}

/// The sample entry's four-character code (for codecs without an RFC 6381
/// rule here), e.g. `mp4v`.
pub(crate) fn fourcc(codec: &Codec) -> Option<String> {
    use mp4_atom::Encode;
    if let Codec::Unknown(kind, _) = codec {
        return Some(kind.to_string());
    }
    let mut buf = Vec::new();
    codec.encode(&mut buf).ok()?;
    let kind = buf.get(4..8)?;
    kind.iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-' || *b == b' ')
        .then(|| String::from_utf8_lossy(kind).trim().to_string())
}
