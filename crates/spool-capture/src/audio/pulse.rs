//! The PulseAudio protocol, served by PulseAudio itself and by
//! pipewire-pulse on PipeWire desktops, through libpulse: the full API lists
//! devices and the server's defaults (one short connection, never
//! autospawning a server), and each source reads one record stream on its
//! own connection at 48 kHz stereo float (the server converts the device's
//! own format and rate), pinned to its device. Nothing here changes the user's default
//! devices: a monitor is recorded by naming it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use libpulse_binding as pa;
use pa::context::{Context, FlagSet, State};
use pa::mainloop::standard::{IterateResult, Mainloop};
use pa::operation;
use pa::sample::{Format, Spec};
use pa::stream::{FlagSet as StreamFlags, PeekResult, State as StreamState, Stream};

use super::{
    AudioDevice, AudioDevices, AudioError, AudioKind, CHANNELS, CHUNK_FRAMES, Input, Opener,
    SAMPLE_RATE,
};

const APP: &str = "Spool";
/// How long listing waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn unavailable(why: impl std::fmt::Display) -> AudioError {
    AudioError::Unavailable(format!(
        "no audio server (PulseAudio or PipeWire's pipewire-pulse) answers: {why}"
    ))
}

struct Conn {
    ml: Mainloop,
    ctx: Context,
}

impl Conn {
    fn open() -> Result<Conn, AudioError> {
        let mut ml = Mainloop::new().ok_or_else(|| unavailable("cannot create a main loop"))?;
        let mut ctx =
            Context::new(&ml, APP).ok_or_else(|| unavailable("cannot create a context"))?;
        ctx.connect(None, FlagSet::NOAUTOSPAWN, None)
            .map_err(|e| unavailable(e.to_string().unwrap_or_else(|| format!("{e:?}"))))?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if let IterateResult::Err(e) = ml.iterate(false) {
                return Err(unavailable(format!("{e:?}")));
            }
            match ctx.get_state() {
                State::Ready => break,
                State::Failed | State::Terminated => {
                    let e = ctx.errno();
                    return Err(unavailable(
                        e.to_string().unwrap_or_else(|| format!("{e:?}")),
                    ));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(unavailable("timed out connecting"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(Conn { ml, ctx })
    }

    /// Runs the main loop until `op` is done.
    fn wait<T: ?Sized>(&mut self, op: operation::Operation<T>) -> Result<(), AudioError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while op.get_state() == operation::State::Running {
            if let IterateResult::Err(e) = self.ml.iterate(false) {
                return Err(unavailable(format!("{e:?}")));
            }
            if Instant::now() > deadline {
                return Err(unavailable("timed out listing devices"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.ctx.disconnect();
    }
}

/// A source as the server lists it.
#[derive(Debug, Clone)]
struct SourceEntry {
    name: String,
    description: String,
    is_monitor: bool,
}

struct Listing {
    default_source: Option<String>,
    default_sink: Option<String>,
    sources: Vec<SourceEntry>,
    /// (sink name, description, its monitor source)
    sinks: Vec<(String, String, Option<String>)>,
}

fn listing() -> Result<Listing, AudioError> {
    let mut conn = Conn::open()?;
    let defaults = Rc::new(RefCell::new((None, None)));
    let d = defaults.clone();
    let op = conn.ctx.introspect().get_server_info(move |info| {
        *d.borrow_mut() = (
            info.default_source_name.as_ref().map(|s| s.to_string()),
            info.default_sink_name.as_ref().map(|s| s.to_string()),
        );
    });
    conn.wait(op)?;
    let sources = Rc::new(RefCell::new(Vec::new()));
    let s = sources.clone();
    let op = conn.ctx.introspect().get_source_info_list(move |r| {
        if let pa::callbacks::ListResult::Item(info) = r
            && let Some(name) = &info.name
        {
            s.borrow_mut().push(SourceEntry {
                name: name.to_string(),
                description: info.description.as_deref().unwrap_or_default().to_owned(),
                is_monitor: info.monitor_of_sink.is_some(),
            });
        }
    });
    conn.wait(op)?;
    let sinks = Rc::new(RefCell::new(Vec::new()));
    let k = sinks.clone();
    let op = conn.ctx.introspect().get_sink_info_list(move |r| {
        if let pa::callbacks::ListResult::Item(info) = r
            && let Some(name) = &info.name
        {
            k.borrow_mut().push((
                name.to_string(),
                info.description.as_deref().unwrap_or_default().to_owned(),
                info.monitor_source_name.as_ref().map(|m| m.to_string()),
            ));
        }
    });
    conn.wait(op)?;
    let (default_source, default_sink) = defaults.borrow().clone();
    let sources = sources.borrow().clone();
    let sinks = sinks.borrow().clone();
    Ok(Listing {
        default_source,
        default_sink,
        sources,
        sinks,
    })
}

pub(crate) fn devices() -> Result<AudioDevices, AudioError> {
    let l = listing()?;
    let default_mic = default_mic(&l);
    Ok(AudioDevices {
        inputs: l
            .sources
            .iter()
            .filter(|s| !s.is_monitor)
            .map(|s| AudioDevice {
                name: s.name.clone(),
                description: s.description.clone(),
                default: default_mic.as_deref() == Some(s.name.as_str()),
                monitor: None,
            })
            .collect(),
        outputs: l
            .sinks
            .iter()
            .map(|(name, description, monitor)| AudioDevice {
                name: name.clone(),
                description: description.clone(),
                default: l.default_sink.as_deref() == Some(name.as_str()),
                monitor: monitor.clone(),
            })
            .collect(),
    })
}

/// The microphone `default` means: the server's default input unless it is
/// a monitor (a server without a microphone defaults to one), else the
/// first real input.
fn default_mic(l: &Listing) -> Option<String> {
    let real = |n: &str| l.sources.iter().any(|s| s.name == n && !s.is_monitor);
    l.default_source.clone().filter(|d| real(d)).or_else(|| {
        l.sources
            .iter()
            .find(|s| !s.is_monitor)
            .map(|s| s.name.clone())
    })
}

pub(crate) fn resolve(kind: AudioKind, name: &str) -> Result<Opener, AudioError> {
    let l = listing()?;
    let device = match (kind, name) {
        (AudioKind::Mic, "default") => default_mic(&l).ok_or_else(|| {
            AudioError::Unavailable("no microphone: the audio server has no input device".into())
        })?,
        (AudioKind::Mic, n) => {
            if !l.sources.iter().any(|s| s.name == n) {
                return Err(AudioError::Unavailable(format!(
                    "no input device named {n:?} (`spool sources --audio` lists them)"
                )));
            }
            n.to_owned()
        }
        (AudioKind::System, n) => {
            let sink = if n == "default" {
                l.default_sink.clone()
            } else {
                Some(n.to_owned())
            };
            let monitor = sink
                .as_deref()
                .and_then(|s| l.sinks.iter().find(|(name, ..)| name == s))
                .and_then(|(_, _, m)| m.clone())
                // A monitor source named directly.
                .or_else(|| {
                    l.sources
                        .iter()
                        .find(|s| s.name == n && s.is_monitor)
                        .map(|s| s.name.clone())
                });
            monitor.ok_or_else(|| {
                AudioError::Unavailable(if n == "default" {
                    "no system audio: the audio server has no output device".into()
                } else {
                    format!("no output device named {n:?} (`spool sources --audio` lists them)")
                })
            })?
        }
    };
    let stream = match kind {
        AudioKind::Mic => "Microphone",
        AudioKind::System => "System audio",
    };
    Ok(Opener::Pulse { device, stream })
}

/// One record stream on its own connection and main loop (run by the
/// source's thread in [`Input::read`]).
pub(crate) struct PulseInput {
    conn: Conn,
    stream: Stream,
    /// Samples received beyond the last chunk handed out.
    pending: std::collections::VecDeque<f32>,
    /// A hardware input's own latency (from the sound reaching it to the
    /// server having it), which arrivals cannot see: a few ms for a
    /// built-in microphone, 100 ms and more for a Bluetooth headset.
    device_latency: Duration,
}

/// Beyond this a reported device latency is not believed.
const MAX_DEVICE_LATENCY: Duration = Duration::from_millis(500);

/// The own latency of `device` if it is a hardware input (not a monitor,
/// not a virtual source, whose reports are not about when sound was heard).
fn hardware_latency(conn: &mut Conn, device: &str) -> Duration {
    let found = Rc::new(RefCell::new(Duration::ZERO));
    let f = found.clone();
    let op = conn
        .ctx
        .introspect()
        .get_source_info_by_name(device, move |r| {
            if let pa::callbacks::ListResult::Item(info) = r
                && info.monitor_of_sink.is_none()
                && info.flags.contains(pa::def::SourceFlagSet::HARDWARE)
            {
                let l = Duration::from_micros(info.latency.0);
                *f.borrow_mut() = if l <= MAX_DEVICE_LATENCY {
                    l
                } else {
                    Duration::ZERO
                };
            }
        });
    if conn.wait(op).is_err() {
        return Duration::ZERO;
    }
    *found.borrow()
}

fn spec() -> Spec {
    Spec {
        format: Format::F32le,
        channels: CHANNELS as u8,
        rate: SAMPLE_RATE,
    }
}

fn pa_err(e: pa::error::PAErr) -> String {
    e.to_string().unwrap_or_else(|| format!("{e:?}"))
}

pub(crate) fn open(device: &str, name: &str) -> Result<PulseInput, String> {
    // Never autospawns a server (Conn connects with NOAUTOSPAWN).
    let mut conn = Conn::open().map_err(|e| e.to_string())?;
    let mut stream =
        Stream::new(&mut conn.ctx, name, &spec(), None).ok_or("cannot create a record stream")?;
    let attr = pa::def::BufferAttr {
        maxlength: u32::MAX,
        tlength: u32::MAX,
        prebuf: u32::MAX,
        minreq: u32::MAX,
        // Deliver every 10 ms: small, steady arrivals to stamp from.
        fragsize: (CHUNK_FRAMES * CHANNELS * 4) as u32,
    };
    // DONT_MOVE: when the chosen device goes away the stream fails (and the
    // source is reported lost) instead of being moved to another device,
    // which would record, say, the system's sound as "the microphone".
    stream
        .connect_record(
            Some(device),
            Some(&attr),
            StreamFlags::DONT_MOVE | StreamFlags::ADJUST_LATENCY,
        )
        .map_err(pa_err)?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        if let IterateResult::Err(e) = conn.ml.iterate(false) {
            return Err(pa_err(e));
        }
        match stream.get_state() {
            StreamState::Ready => break,
            StreamState::Failed | StreamState::Terminated => {
                return Err(pa_err(conn.ctx.errno()));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err("timed out opening the record stream".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let device_latency = hardware_latency(&mut conn, device);
    if !device_latency.is_zero() {
        tracing::debug!(device, latency = ?device_latency, "hardware input latency");
    }
    Ok(PulseInput {
        conn,
        stream,
        pending: Default::default(),
        device_latency,
    })
}

impl PulseInput {
    fn check(&self) -> Result<(), String> {
        let dead = |what: &str| format!("{what}: {}", pa_err(self.conn.ctx.errno()));
        match (self.conn.ctx.get_state(), self.stream.get_state()) {
            (State::Failed | State::Terminated, _) => Err(dead("the audio server went away")),
            (_, StreamState::Failed | StreamState::Terminated) => Err(dead("the device went away")),
            _ => Ok(()),
        }
    }
}

impl Input for PulseInput {
    fn read(&mut self, buf: &mut [f32]) -> Result<Instant, String> {
        while self.pending.len() < buf.len() {
            self.check()?;
            match self.stream.peek().map_err(pa_err)? {
                PeekResult::Data(d) => {
                    self.pending.extend(
                        d.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                    self.stream.discard().map_err(pa_err)?;
                }
                PeekResult::Hole(_) => self.stream.discard().map_err(pa_err)?,
                // Nothing yet: wait for the server's next message.
                PeekResult::Empty => {
                    if let IterateResult::Err(e) = self.conn.ml.iterate(true) {
                        return Err(pa_err(e));
                    }
                }
            }
        }
        let n = buf.len();
        for (v, p) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *v = p;
        }
        // As if it arrived when it would have without the device's delay.
        let now = Instant::now();
        Ok(now.checked_sub(self.device_latency).unwrap_or(now))
    }
}

impl Drop for PulseInput {
    fn drop(&mut self) {
        let _ = self.stream.disconnect();
    }
}
