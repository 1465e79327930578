//! Screen capture on macOS and Windows (`screen[:N]`, N counted from 0):
//! ScreenCaptureKit through the `screencapturekit` crate, and
//! Windows.Graphics.Capture through `windows-capture` — the crates scap
//! 0.0.8 wraps on those platforms. scap itself cannot be a dependency: every
//! release needs pipewire 0.8 on Linux, whose `links = "pipewire-0.3"` clashes
//! with the portal's pipewire 0.10 in the one lock file. As with the portal
//! source, the platform delivers frames on its own thread as the screen
//! changes; each is copied out as tightly packed BGRA and kept as the newest
//! frame, which [`NativeSource::grab`] copies at the recording's pace, so a
//! still screen (no new frames) repeats the last one. Compiled on those
//! platforms only and unverified: the project's machines run Linux.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::{CaptureError, Source, Target};

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use self::macos as platform;
#[cfg(target_os = "windows")]
mod windows;
#[cfg(target_os = "windows")]
use self::windows as platform;

/// How long opening waits for the first frame, which fixes the size.
const FIRST_FRAME: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Latest {
    frame: Option<(u32, u32, Vec<u8>)>,
    error: Option<String>,
}

/// Where the platform's capture thread leaves the newest frame.
#[derive(Clone, Default)]
pub(crate) struct Slot(Arc<(Mutex<Latest>, Condvar)>);

impl Slot {
    /// Keeps a frame of `height` rows, each `stride` bytes apart and starting
    /// with `width` BGRA pixels (the stride may pad rows). A buffer too short
    /// for that is ignored.
    pub(crate) fn put(&self, width: u32, height: u32, stride: usize, bytes: &[u8]) {
        let row = width as usize * 4;
        let rows = height as usize;
        if row == 0 || rows == 0 || stride < row || bytes.len() < stride * (rows - 1) + row {
            return;
        }
        let mut packed = Vec::with_capacity(row * rows);
        for y in 0..rows {
            packed.extend_from_slice(&bytes[y * stride..][..row]);
        }
        let (m, cv) = &*self.0;
        if let Ok(mut l) = m.lock() {
            l.frame = Some((width, height, packed));
        }
        cv.notify_all();
    }

    /// Capture stopped: every later grab fails with `why`.
    pub(crate) fn fail(&self, why: String) {
        let (m, cv) = &*self.0;
        if let Ok(mut l) = m.lock() {
            l.error.get_or_insert(why);
        }
        cv.notify_all();
    }

    /// Waits for the first frame; its size, made even (YUV 4:2:0 needs it).
    fn first_size(&self) -> Result<(u32, u32), CaptureError> {
        let poisoned = || CaptureError::Unsupported("capture state poisoned".into());
        let (m, cv) = &*self.0;
        let guard = m.lock().map_err(|_| poisoned())?;
        let (guard, _) = cv
            .wait_timeout_while(guard, FIRST_FRAME, |l| {
                l.frame.is_none() && l.error.is_none()
            })
            .map_err(|_| poisoned())?;
        if let Some(e) = &guard.error {
            return Err(CaptureError::Unsupported(e.clone()));
        }
        let (w, h) = guard
            .frame
            .as_ref()
            .map(|(w, h, _)| (*w & !1, *h & !1))
            .ok_or_else(|| {
                CaptureError::Unsupported(format!(
                    "no frame arrived from the screen within {} s",
                    FIRST_FRAME.as_secs()
                ))
            })?;
        if w < 2 || h < 2 {
            return Err(CaptureError::Invalid("the captured screen is empty".into()));
        }
        Ok((w, h))
    }
}

/// A display captured through the platform's own API.
pub struct NativeSource {
    slot: Slot,
    size: (u32, u32),
    name: String,
    capture: Option<platform::Capture>,
}

impl NativeSource {
    /// Starts capturing display `index` and waits for its first frame.
    pub fn open(index: u32) -> Result<NativeSource, CaptureError> {
        let slot = Slot::default();
        let (capture, name) = platform::start(index, slot.clone())?;
        let size = match slot.first_size() {
            Ok(size) => size,
            Err(e) => {
                capture.stop();
                return Err(e);
            }
        };
        Ok(NativeSource {
            slot,
            size,
            name,
            capture: Some(capture),
        })
    }
}

impl Drop for NativeSource {
    fn drop(&mut self) {
        if let Some(c) = self.capture.take() {
            c.stop();
        }
    }
}

impl Source for NativeSource {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn describe(&self) -> String {
        format!("{} {}x{}", self.name, self.size.0, self.size.1)
    }

    fn grab(&mut self, _index: u64, buf: &mut Vec<u8>) -> Result<(), CaptureError> {
        let (w, h) = self.size;
        let (m, _) = &*self.slot.0;
        let l = m
            .lock()
            .map_err(|_| CaptureError::Unsupported("capture state poisoned".into()))?;
        if let Some(e) = &l.error {
            return Err(CaptureError::Unsupported(e.clone()));
        }
        buf.resize(w as usize * h as usize * 4, 0);
        if let Some((fw, fh, data)) = &l.frame {
            // A display whose resolution changed is cropped or padded to the
            // recording's size.
            let row = (w.min(*fw) as usize) * 4;
            for y in 0..h.min(*fh) as usize {
                let src = &data[y * *fw as usize * 4..][..row];
                buf[y * w as usize * 4..][..row].copy_from_slice(src);
            }
        }
        Ok(())
    }
}

/// The displays, as `screen:N`.
pub fn list() -> Result<Vec<Target>, CaptureError> {
    platform::list()
}
