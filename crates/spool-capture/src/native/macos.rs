//! macOS: ScreenCaptureKit (macOS 12.3+) through the `screencapturekit`
//! crate. A stream on one display, cursor drawn in, BGRA frames at the
//! display's size; its output handler runs on ScreenCaptureKit's dispatch
//! queue and copies each frame's pixels into the [`Slot`]. The process needs
//! the Screen Recording permission (System Settings › Privacy & Security);
//! without it listing the displays fails. Unverified: written from the
//! crate's documentation and examples, never compiled on this project's
//! machines.

// Reading the locked CVPixelBuffer's bytes is the one unsafe call.
#![allow(unsafe_code)]

use screencapturekit::cv::CVPixelBufferLockFlags;
use screencapturekit::prelude::*;

use super::Slot;
use crate::{CaptureError, Target};

fn unavailable(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Unsupported(format!(
        "screen capture through ScreenCaptureKit is not available: {e} (System Settings › Privacy & Security › Screen Recording must allow this app)"
    ))
}

/// A running ScreenCaptureKit stream.
pub(super) struct Capture(SCStream);

impl Capture {
    pub(super) fn stop(self) {
        if let Err(e) = self.0.stop_capture() {
            tracing::warn!(error = %e, "stopping the ScreenCaptureKit stream");
        }
    }
}

fn displays() -> Result<Vec<SCDisplay>, CaptureError> {
    Ok(SCShareableContent::get().map_err(unavailable)?.displays())
}

/// Starts capturing display `index` (in ScreenCaptureKit's order) into
/// `slot`; returns the stream and a name for it.
pub(super) fn start(index: u32, slot: Slot) -> Result<(Capture, String), CaptureError> {
    let displays = displays()?;
    let display = displays.get(index as usize).ok_or_else(|| {
        CaptureError::Invalid(format!(
            "screen:{index}: this Mac has {} display(s), screen:0 to screen:{}",
            displays.len(),
            displays.len().saturating_sub(1)
        ))
    })?;
    let filter = SCContentFilter::create()
        .with_display(display)
        .with_excluding_windows(&[])
        .build()
        .map_err(unavailable)?;
    // The display's size as ScreenCaptureKit reports it; on a Retina display
    // Apple documents it in points, which would record at half the pixel
    // resolution (unverified).
    let config = SCStreamConfiguration::new()
        .with_width(display.width())
        .with_height(display.height())
        .with_pixel_format(PixelFormat::BGRA)
        .with_shows_cursor(true);
    let errors = slot.clone();
    let mut stream = SCStream::new_with_delegate(
        &filter,
        &config,
        ErrorHandler::new(move |e: SCError| errors.fail(format!("ScreenCaptureKit stopped: {e}"))),
    )
    .map_err(unavailable)?;
    stream
        .add_output_handler(
            move |sample: CMSampleBuffer, of_type: SCStreamOutputType| {
                if !matches!(of_type, SCStreamOutputType::Screen) {
                    return;
                }
                // Frames that only say "nothing changed" carry no pixels:
                // the newest frame stays.
                let Some(pixels) = sample.pixel_buffer() else {
                    return;
                };
                let Ok(guard) = pixels.lock(CVPixelBufferLockFlags::READ_ONLY) else {
                    return;
                };
                let (Ok(w), Ok(h)) = (u32::try_from(guard.width()), u32::try_from(guard.height()))
                else {
                    return;
                };
                // SAFETY: the read-only lock keeps the buffer mapped and
                // unchanged while `guard` lives, and `bytes` does not outlive
                // it; nothing here writes to or unlocks the buffer.
                let Some(bytes) = (unsafe { guard.as_slice() }) else {
                    return;
                };
                slot.put(w, h, guard.bytes_per_row(), bytes);
            },
            SCStreamOutputType::Screen,
        )
        .map_err(unavailable)?;
    stream.start_capture().map_err(unavailable)?;
    Ok((
        Capture(stream),
        format!("screen:{index} (ScreenCaptureKit)"),
    ))
}

/// Every display, as `screen:N`.
pub(super) fn list() -> Result<Vec<Target>, CaptureError> {
    Ok(displays()?
        .iter()
        .enumerate()
        .map(|(i, d)| Target {
            source: format!("screen:{i}"),
            name: format!("Display {}", i + 1),
            width: d.width(),
            height: d.height(),
        })
        .collect())
}
