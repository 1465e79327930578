//! Windows: Windows.Graphics.Capture (Windows 10 1903+) through the
//! `windows-capture` crate. A free-threaded capture of one monitor, cursor
//! drawn in, BGRA frames; the crate's thread calls the handler with each new
//! frame, which is copied without its row padding into the [`Slot`].
//! Unverified: written from the crate's documentation and examples, never
//! compiled on this project's machines.

use windows_capture::capture::{CaptureControl, Context, GraphicsCaptureApiHandler};
use windows_capture::frame::Frame;
use windows_capture::graphics_capture_api::InternalCaptureControl;
use windows_capture::monitor::Monitor;
use windows_capture::settings::{
    ColorFormat, CursorCaptureSettings, DirtyRegionSettings, DrawBorderSettings,
    MinimumUpdateIntervalSettings, SecondaryWindowSettings, Settings,
};

use super::Slot;
use crate::{CaptureError, Target};

fn unavailable(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Unsupported(format!(
        "screen capture through Windows.Graphics.Capture is not available: {e}"
    ))
}

/// Receives the frames on windows-capture's thread.
struct Handler {
    slot: Slot,
    /// Reused for each frame's pixels without row padding.
    packed: Vec<u8>,
}

impl GraphicsCaptureApiHandler for Handler {
    type Flags = Slot;
    type Error = String;

    fn new(ctx: Context<Self::Flags>) -> Result<Self, Self::Error> {
        Ok(Handler {
            slot: ctx.flags,
            packed: Vec::new(),
        })
    }

    fn on_frame_arrived(
        &mut self,
        frame: &mut Frame,
        _control: InternalCaptureControl,
    ) -> Result<(), Self::Error> {
        let (w, h) = (frame.width(), frame.height());
        let buffer = frame.buffer().map_err(|e| e.to_string())?;
        let bytes = buffer.as_nopadding_buffer(&mut self.packed);
        self.slot.put(w, h, w as usize * 4, bytes);
        Ok(())
    }

    fn on_closed(&mut self) -> Result<(), Self::Error> {
        self.slot
            .fail("the captured display is gone (Windows.Graphics.Capture closed it)".into());
        Ok(())
    }
}

/// A running capture.
pub(super) struct Capture(CaptureControl<Handler, String>);

impl Capture {
    pub(super) fn stop(self) {
        if let Err(e) = self.0.stop() {
            tracing::warn!(error = %e, "stopping Windows.Graphics.Capture");
        }
    }
}

/// Starts capturing monitor `index` (Windows' display order, from 0) into
/// `slot`; returns the capture and a name for it.
pub(super) fn start(index: u32, slot: Slot) -> Result<(Capture, String), CaptureError> {
    // windows-capture counts monitors from 1.
    let monitor = Monitor::from_index(index as usize + 1)
        .map_err(|e| CaptureError::Invalid(format!("screen:{index}: {e}")))?;
    let name = monitor
        .name()
        .map(|n| format!("screen:{index} {n} (Windows.Graphics.Capture)"))
        .unwrap_or_else(|_| format!("screen:{index} (Windows.Graphics.Capture)"));
    let settings = Settings::new(
        monitor,
        CursorCaptureSettings::WithCursor,
        // The yellow border stays where Windows insists on it (before
        // Windows 11, removing it is refused).
        DrawBorderSettings::Default,
        SecondaryWindowSettings::Default,
        MinimumUpdateIntervalSettings::Default,
        DirtyRegionSettings::Default,
        ColorFormat::Bgra8,
        slot,
    );
    let control = Handler::start_free_threaded(settings).map_err(unavailable)?;
    Ok((Capture(control), name))
}

/// Every monitor, as `screen:N`.
pub(super) fn list() -> Result<Vec<Target>, CaptureError> {
    let monitors = Monitor::enumerate().map_err(unavailable)?;
    Ok(monitors
        .iter()
        .enumerate()
        .map(|(i, m)| Target {
            source: format!("screen:{i}"),
            name: m.name().unwrap_or_else(|_| format!("Display {}", i + 1)),
            width: m.width().unwrap_or(0),
            height: m.height().unwrap_or(0),
        })
        .collect())
}
