//! Sound on macOS and Windows through cpal (CoreAudio, WASAPI): the
//! microphone on both, and on Windows the system's sound as WASAPI loopback
//! of an output device (cpal opens an input stream on an output device).
//! macOS has no loopback device of its own; its system sound needs
//! ScreenCaptureKit (scap) and is refused with a clear error here. Each
//! device's own format is converted in the stream's callback to 48 kHz
//! stereo float (channels mapped, rate converted linearly). Compiled on
//! those platforms only, and unverified: the CI machine runs Linux.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::{AudioDevice, AudioDevices, AudioError, AudioKind, Input, Opener, SAMPLE_RATE};

fn unavailable(why: impl std::fmt::Display) -> AudioError {
    AudioError::Unavailable(format!("no sound device answers: {why}"))
}

fn named(devices: impl Iterator<Item = cpal::Device>, name: &str) -> Option<cpal::Device> {
    devices
        .into_iter()
        .find(|d| d.name().is_ok_and(|n| n == name))
}

pub(crate) fn devices() -> Result<AudioDevices, AudioError> {
    let host = cpal::default_host();
    let default_in = host.default_input_device().and_then(|d| d.name().ok());
    let default_out = host.default_output_device().and_then(|d| d.name().ok());
    let list = |it: &mut dyn Iterator<Item = cpal::Device>, default: &Option<String>| {
        it.filter_map(|d| d.name().ok())
            .map(|name| AudioDevice {
                default: default.as_deref() == Some(name.as_str()),
                description: name.clone(),
                monitor: None,
                name,
            })
            .collect::<Vec<_>>()
    };
    Ok(AudioDevices {
        inputs: list(&mut host.input_devices().map_err(unavailable)?, &default_in),
        outputs: list(
            &mut host.output_devices().map_err(unavailable)?,
            &default_out,
        ),
    })
}

pub(crate) fn resolve(kind: AudioKind, name: &str) -> Result<Opener, AudioError> {
    let host = cpal::default_host();
    match kind {
        AudioKind::Mic => {
            let device = if name == "default" {
                host.default_input_device()
                    .and_then(|d| d.name().ok())
                    .ok_or_else(|| {
                        AudioError::Unavailable(
                            "no microphone: the system has no input device".into(),
                        )
                    })?
            } else {
                let inputs = host.input_devices().map_err(unavailable)?;
                named(inputs, name).ok_or_else(|| {
                    AudioError::Unavailable(format!(
                        "no input device named {name:?} (`spool sources --audio` lists them)"
                    ))
                })?;
                name.to_owned()
            };
            Ok(Opener::Cpal {
                device,
                loopback: false,
            })
        }
        #[cfg(target_os = "windows")]
        AudioKind::System => {
            let device = if name == "default" {
                host.default_output_device()
                    .and_then(|d| d.name().ok())
                    .ok_or_else(|| {
                        AudioError::Unavailable(
                            "no system audio: the system has no output device".into(),
                        )
                    })?
            } else {
                name.to_owned()
            };
            Ok(Opener::Cpal {
                device,
                loopback: true,
            })
        }
        #[cfg(not(target_os = "windows"))]
        AudioKind::System => {
            let _ = name;
            Err(AudioError::Unavailable(
                "system audio on macOS needs ScreenCaptureKit, which this version does not use yet"
                    .into(),
            ))
        }
    }
}

/// A running cpal input stream, its converted samples arriving in chunks.
pub(crate) struct CpalInput {
    _stream: cpal::Stream,
    rx: Receiver<Vec<f32>>,
    failed: Arc<Mutex<Option<String>>>,
    pending: VecDeque<f32>,
}

/// Converts interleaved `channels`-channel frames at `rate` to 48 kHz
/// stereo, keeping its position across callbacks.
struct Convert {
    channels: usize,
    step: f64,
    pos: f64,
    last: [f32; 2],
}

impl Convert {
    fn push(&mut self, data: &[f32], out: &mut Vec<f32>) {
        let frames = data.len() / self.channels.max(1);
        let frame = |i: usize| -> [f32; 2] {
            let f = &data[i * self.channels..(i + 1) * self.channels];
            match f.len() {
                0 => [0.0; 2],
                1 => [f[0]; 2],
                _ => [f[0], f[1]],
            }
        };
        // Output frames lie at `pos` in input frames, `last` is frame -1.
        while self.pos < frames as f64 {
            let i = self.pos.floor();
            let t = (self.pos - i) as f32;
            let a = if i < 1.0 {
                self.last
            } else {
                frame(i as usize - 1)
            };
            let b = frame(i as usize);
            out.push(a[0] + (b[0] - a[0]) * t);
            out.push(a[1] + (b[1] - a[1]) * t);
            self.pos += self.step;
        }
        self.pos -= frames as f64;
        if frames > 0 {
            self.last = frame(frames - 1);
        }
    }
}

pub(crate) fn open(device: &str, loopback: bool) -> Result<CpalInput, String> {
    let host = cpal::default_host();
    let dev = if loopback {
        named(host.output_devices().map_err(|e| e.to_string())?, device)
    } else {
        named(host.input_devices().map_err(|e| e.to_string())?, device)
    }
    .ok_or_else(|| format!("the device {device:?} is not there"))?;
    let config = if loopback {
        dev.default_output_config()
    } else {
        dev.default_input_config()
    }
    .map_err(|e| e.to_string())?;
    if config.sample_format() != cpal::SampleFormat::F32 {
        return Err(format!(
            "the device delivers {:?} samples; only float is supported",
            config.sample_format()
        ));
    }
    let channels = config.channels() as usize;
    let rate = config.sample_rate().0;
    let (tx, rx): (SyncSender<Vec<f32>>, _) = sync_channel(256);
    let failed = Arc::new(Mutex::new(None));
    let f = failed.clone();
    let mut convert = Convert {
        channels,
        step: rate as f64 / SAMPLE_RATE as f64,
        pos: 0.0,
        last: [0.0; 2],
    };
    let stream = dev
        .build_input_stream(
            &config.into(),
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                let mut out = Vec::with_capacity(data.len() * 2);
                convert.push(data, &mut out);
                // A full queue means the reader is gone or stuck: drop.
                let _ = tx.try_send(out);
            },
            move |e| {
                if let Ok(mut g) = f.lock() {
                    *g = Some(e.to_string());
                }
            },
            None,
        )
        .map_err(|e| e.to_string())?;
    stream.play().map_err(|e| e.to_string())?;
    Ok(CpalInput {
        _stream: stream,
        rx,
        failed,
        pending: VecDeque::new(),
    })
}

impl Input for CpalInput {
    fn read(&mut self, buf: &mut [f32]) -> Result<Instant, String> {
        while self.pending.len() < buf.len() {
            if let Some(e) = self.failed.lock().ok().and_then(|mut g| g.take()) {
                return Err(e);
            }
            match self.rx.recv_timeout(Duration::from_secs(2)) {
                Ok(v) => self.pending.extend(v),
                Err(RecvTimeoutError::Timeout) => {
                    return Err("the device stopped delivering sound".into());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the device's stream ended".into());
                }
            }
        }
        let n = buf.len();
        for (v, p) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *v = p;
        }
        Ok(Instant::now())
    }
}
