//! Turning the poster as the player turns the video: a phone's portrait
//! clip is stored landscape with a display matrix, and a sideways poster
//! over an upright video looks broken.

use ff::format::Pixel;
use ff::frame;
use ffmpeg_next as ff;

/// Clockwise degrees (0, 90, 180 or 270) the stream's display matrix asks
/// for, computed as FFmpeg's CLI does for its autorotate.
pub(super) fn rotation(st: &ff::format::stream::Stream) -> u32 {
    use ff::codec::packet::side_data::Type;
    let Some(sd) = st.side_data().find(|sd| sd.kind() == Type::DisplayMatrix) else {
        return 0;
    };
    let m: Vec<f64> = sd
        .data()
        .chunks_exact(4)
        .take(9)
        .map(|b| f64::from(i32::from_ne_bytes([b[0], b[1], b[2], b[3]])) / 65536.0)
        .collect();
    if m.len() < 9 {
        return 0;
    }
    let (s0, s1) = (m[0].hypot(m[3]), m[1].hypot(m[4]));
    if s0 == 0.0 || s1 == 0.0 {
        return 0;
    }
    let deg = (m[1] / s1).atan2(m[0] / s0).to_degrees().round();
    ((deg.rem_euclid(360.0) / 90.0).round() as u32 % 4) * 90
}

/// `f` (planar YUV, even dimensions) turned clockwise by `deg`.
pub(super) fn rotate(f: &frame::Video, deg: u32) -> frame::Video {
    if deg == 0 {
        return f.clone();
    }
    let (w, h) = (f.width(), f.height());
    let (ow, oh) = if deg == 180 { (w, h) } else { (h, w) };
    let mut out = frame::Video::new(Pixel::YUVJ420P, ow, oh);
    for p in 0..3 {
        let (pw, ph) = (f.plane_width(p) as usize, f.plane_height(p) as usize);
        let (ss, ds) = (f.stride(p), out.stride(p));
        let src = f.data(p);
        let dst = out.data_mut(p);
        for y in 0..ph {
            for x in 0..pw {
                let (dx, dy) = match deg {
                    90 => (ph - 1 - y, x),
                    180 => (pw - 1 - x, ph - 1 - y),
                    _ => (y, pw - 1 - x),
                };
                dst[dy * ds + dx] = src[y * ss + x];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_clockwise() {
        let mut f = frame::Video::new(Pixel::YUVJ420P, 4, 2);
        // Top-left bright.
        f.data_mut(0).fill(0);
        f.data_mut(0)[0] = 255;
        let r = rotate(&f, 90);
        assert_eq!((r.width(), r.height()), (2, 4));
        // Clockwise: the top-left corner goes to the top-right.
        assert_eq!(r.data(0)[1], 255);
        let r = rotate(&f, 270);
        // Counter-clockwise: top-left goes to bottom-left.
        assert_eq!(r.data(0)[3 * r.stride(0)], 255);
        let r = rotate(&f, 180);
        assert_eq!(r.data(0)[r.stride(0) + 3], 255);
    }
}
