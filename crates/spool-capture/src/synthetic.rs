//! A synthetic source for tests and demos: a moving colour pattern with the
//! frame number drawn in large digits, so a decoded frame tells which tick it
//! came from.

use crate::{CaptureError, Source};

/// The test pattern.
pub struct Synthetic {
    width: u32,
    height: u32,
}

/// 3×5 bitmaps of the digits 0–9, one row per entry, high bit left.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

impl Synthetic {
    pub fn new(width: u32, height: u32) -> Result<Self, CaptureError> {
        if width < 16
            || height < 16
            || width > 7680
            || height > 4320
            || !width.is_multiple_of(2)
            || !height.is_multiple_of(2)
        {
            return Err(CaptureError::Invalid(format!(
                "synthetic size {width}x{height}: even, 16x16 to 7680x4320"
            )));
        }
        Ok(Synthetic { width, height })
    }
}

impl Source for Synthetic {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn describe(&self) -> String {
        format!("synthetic {}x{}", self.width, self.height)
    }

    fn grab(&mut self, index: u64, buf: &mut Vec<u8>) -> Result<(), CaptureError> {
        let (w, h) = (self.width as usize, self.height as usize);
        buf.resize(w * h * 4, 0);
        let shift = (index * 4) as usize;
        for (y, row) in buf.chunks_exact_mut(w * 4).enumerate() {
            for (x, px) in row.chunks_exact_mut(4).enumerate() {
                let v = ((x + shift) ^ y) as u8;
                px.copy_from_slice(&[v, (y * 255 / h) as u8, ((x + shift) * 255 / w) as u8, 255]);
            }
        }
        // The frame number, white on black, top left.
        let digits = index.to_string();
        let scale = (h / 40).max(2);
        let (bx, by) = (scale * 2, scale * 2);
        let box_w = (digits.len() * 4 * scale + scale).min(w - bx);
        let box_h = (7 * scale).min(h - by);
        for y in by..by + box_h {
            buf[(y * w + bx) * 4..(y * w + bx + box_w) * 4].fill(0);
        }
        for (i, d) in digits.bytes().enumerate() {
            let glyph = DIGITS[(d - b'0') as usize];
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..3 {
                    if bits & (4 >> gx) == 0 {
                        continue;
                    }
                    let x0 = bx + scale + (i * 4 + gx) * scale;
                    let y0 = by + scale + gy * scale;
                    for y in y0..(y0 + scale).min(h) {
                        for x in x0..(x0 + scale).min(w) {
                            buf[(y * w + x) * 4..(y * w + x) * 4 + 4]
                                .copy_from_slice(&[255, 255, 255, 255]);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
