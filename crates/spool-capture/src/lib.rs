//! Spool's screen sources. A [`Source`] grabs one frame of pixels (BGRA) on
//! demand; [`start`] runs it on its own thread at a steady rate from a
//! monotonic clock and pushes timestamped [`Frame`]s into a bounded channel.
//! Capture never waits on its consumer: when the encoder falls behind, the
//! frame is dropped and counted, so memory stays bounded and the timestamps
//! keep the video's timing right. Backends: X11 through x11rb with MIT-SHM
//! (cursor drawn in through XFixes), Wayland through the xdg-desktop-portal
//! ScreenCast portal and PipeWire, ScreenCaptureKit on macOS and
//! Windows.Graphics.Capture on Windows (`screen[:N]`; compiled there only,
//! unverified), a synthetic test pattern, and a video file played as if it
//! were the screen ([`FileSource`]). [`audio`] records the microphone and
//! the system's sound on the same clock.

pub mod audio;
mod clock;
mod file;
#[cfg(any(target_os = "macos", target_os = "windows"))]
mod native;
mod pace;
#[cfg(target_os = "linux")]
mod portal;
mod spec;
mod synthetic;
#[cfg(target_os = "linux")]
mod x11;

use std::path::PathBuf;
use std::time::Duration;

pub use clock::Clock;
pub use file::FileSource;
pub use pace::{Capture, CaptureStats, Captured, start};
pub use spec::{Rect, SourceSpec, Target, X11Target};
pub use synthetic::Synthetic;

/// One captured frame: tightly packed BGRA rows.
#[derive(Debug, Clone)]
pub struct Frame {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Position on the recording's timeline: time since capture started,
    /// from a monotonic clock, minus the pauses.
    pub pts: Duration,
    /// The tick this frame was taken at (gaps are dropped or missed frames).
    pub index: u64,
}

/// Why capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot connect to X display {display}: {reason}")]
    Connect { display: String, reason: String },
    #[error("X11: {0}")]
    X11(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("invalid capture request: {0}")]
    Invalid(String),
    /// A video file source cannot be opened, decoded or looped.
    #[error("video file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

/// Something that can be captured, one frame at a time.
pub trait Source: Send {
    /// Frame size in pixels.
    fn size(&self) -> (u32, u32);
    /// A human-readable name ("X11 :99 display 1920x1080").
    fn describe(&self) -> String;
    /// Grabs the current pixels as tightly packed BGRA into `buf`
    /// (resized to width × height × 4). `index` is the tick number.
    fn grab(&mut self, index: u64, buf: &mut Vec<u8>) -> Result<(), CaptureError>;
    /// Tells the source that tick `index` falls `index / fps` seconds into
    /// the recording. [`start`] calls it before the first grab. Sources that
    /// show the present moment (a screen) ignore it; one whose picture is a
    /// function of time (a video file) maps ticks to its own clock with it.
    fn set_tick_rate(&mut self, fps: u32) {
        let _ = fps;
    }
}

/// Opens the source described by `spec`.
pub fn open(spec: &SourceSpec) -> Result<Box<dyn Source>, CaptureError> {
    match spec {
        SourceSpec::Synthetic { width, height } => Ok(Box::new(Synthetic::new(*width, *height)?)),
        #[cfg(target_os = "linux")]
        SourceSpec::X11 { display, target } => {
            Ok(Box::new(x11::X11Source::open(display.as_deref(), target)?))
        }
        #[cfg(not(target_os = "linux"))]
        SourceSpec::X11 { .. } => Err(CaptureError::Unsupported(
            "X11 capture is available on Linux only".into(),
        )),
        #[cfg(target_os = "linux")]
        SourceSpec::Screen(n) => Ok(Box::new(portal::PortalSource::open(*n)?)),
        #[cfg(any(target_os = "macos", target_os = "windows"))]
        SourceSpec::Screen(n) => Ok(Box::new(native::NativeSource::open(*n)?)),
        #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
        SourceSpec::Screen(n) => Err(screen_unavailable(*n)),
        // The tick rate is the recording's, which `start` hands over
        // (`Source::set_tick_rate`) before the first grab.
        SourceSpec::File(path) => Ok(Box::new(FileSource::open(path, 30)?)),
    }
}

/// What `screen[:N]` means where this build has no platform capture.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn screen_unavailable(n: u32) -> CaptureError {
    CaptureError::Unsupported(format!(
        "screen:{n}: this platform has no screen capture in this build (Linux, macOS and Windows do)"
    ))
}

/// Whether a window manager that can minimise windows runs (on X11: the
/// display `display`, default $DISPLAY).
#[cfg(target_os = "linux")]
pub fn window_manager_running(display: Option<&str>) -> bool {
    x11::window_manager_running(display)
}

/// Whether a window manager that can minimise windows runs.
#[cfg(not(target_os = "linux"))]
pub fn window_manager_running(_display: Option<&str>) -> bool {
    true
}

/// Lists what can be captured on the X display `display` (default $DISPLAY).
#[cfg(target_os = "linux")]
pub fn list(display: Option<&str>) -> Result<Vec<Target>, CaptureError> {
    x11::list(display)
}

/// Lists what can be captured: the displays, as `screen:N`.
#[cfg(any(target_os = "macos", target_os = "windows"))]
pub fn list(_display: Option<&str>) -> Result<Vec<Target>, CaptureError> {
    native::list()
}

/// Lists what can be captured.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
pub fn list(_display: Option<&str>) -> Result<Vec<Target>, CaptureError> {
    Ok(Vec::new())
}
