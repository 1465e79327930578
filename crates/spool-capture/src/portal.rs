//! Wayland capture through the xdg-desktop-portal ScreenCast interface and
//! PipeWire: the portal (over D-Bus, through ashpd) asks the user what to
//! share and hands back a PipeWire remote and a node; a PipeWire stream on
//! its own thread receives the frames, converts them to BGRA and keeps the
//! newest, which `grab` copies. Where no portal answers (no session bus, no
//! portal service, the user cancelled) opening fails with a clear error.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ashpd::desktop::screencast::{
    CursorMode, Screencast, SelectSourcesOptions, SourceType, StartCastOptions,
};
use pipewire as pw;
use pw::spa;

use crate::{CaptureError, Source};

/// The newest frame the PipeWire thread received.
#[derive(Default)]
struct Latest {
    frame: Option<(u32, u32, Vec<u8>)>,
    error: Option<String>,
}

/// A portal + PipeWire capture source.
pub struct PortalSource {
    latest: Arc<(Mutex<Latest>, Condvar)>,
    size: (u32, u32),
    stop: pw::channel::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn unavailable(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Unsupported(format!(
        "screen capture through the xdg-desktop-portal ScreenCast portal is not available here: {e}; on an X11 session use --source x11"
    ))
}

/// Asks the portal for a monitor; returns the PipeWire remote and node.
async fn handshake(index: u32) -> Result<(OwnedFd, u32), CaptureError> {
    let proxy = Screencast::new().await.map_err(unavailable)?;
    let session = proxy
        .create_session(Default::default())
        .await
        .map_err(unavailable)?;
    let select = SelectSourcesOptions::default()
        .set_cursor_mode(CursorMode::Embedded)
        .set_sources(Some(SourceType::Monitor.into()))
        .set_multiple(index > 0);
    proxy
        .select_sources(&session, select)
        .await
        .map_err(unavailable)?;
    let streams = proxy
        .start(&session, None, StartCastOptions::default())
        .await
        .map_err(unavailable)?
        .response()
        .map_err(|e| {
            CaptureError::Unsupported(format!("the screen cast was not started (cancelled?): {e}"))
        })?;
    let stream = streams
        .streams()
        .get(index as usize)
        .or_else(|| streams.streams().first())
        .ok_or_else(|| CaptureError::Unsupported("the portal shared no screen".into()))?;
    let node = stream.pipe_wire_node_id();
    let fd = proxy
        .open_pipe_wire_remote(&session, Default::default())
        .await
        .map_err(unavailable)?;
    Ok((fd, node))
}

impl PortalSource {
    pub fn open(index: u32) -> Result<PortalSource, CaptureError> {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
            && std::env::var_os("XDG_RUNTIME_DIR").is_none()
        {
            return Err(unavailable(
                "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are unset)",
            ));
        }
        // The portal is async (D-Bus); run it on a private runtime on its own
        // thread, so this works whether or not the caller is inside one.
        let (fd, node) = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CaptureError::Unsupported(e.to_string()))?;
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(120), handshake(index))
                    .await
                    .unwrap_or_else(|_| Err(unavailable("the portal did not answer")))
            })
        })
        .join()
        .map_err(|_| CaptureError::Unsupported("the portal thread panicked".into()))??;

        let latest = Arc::new((Mutex::new(Latest::default()), Condvar::new()));
        let (stop, stop_rx) = pw::channel::channel::<()>();
        let shared = latest.clone();
        let thread = std::thread::Builder::new()
            .name("spool-pipewire".into())
            .spawn(move || {
                if let Err(e) = run_stream(fd, node, shared.clone(), stop_rx) {
                    let (m, cv) = &*shared;
                    if let Ok(mut l) = m.lock() {
                        l.error = Some(e);
                    }
                    cv.notify_all();
                }
            })
            .map_err(|e| CaptureError::Unsupported(e.to_string()))?;
        // The size is known once the first frame arrives.
        let (m, cv) = &*latest;
        let guard = m
            .lock()
            .map_err(|_| CaptureError::Unsupported("capture state poisoned".into()))?;
        let (guard, _) = cv
            .wait_timeout_while(guard, Duration::from_secs(10), |l| {
                l.frame.is_none() && l.error.is_none()
            })
            .map_err(|_| CaptureError::Unsupported("capture state poisoned".into()))?;
        if let Some(e) = &guard.error {
            return Err(CaptureError::Unsupported(format!("PipeWire: {e}")));
        }
        let size = guard
            .frame
            .as_ref()
            .map(|(w, h, _)| (*w & !1, *h & !1))
            .ok_or_else(|| {
                CaptureError::Unsupported("no frame arrived from PipeWire within 10 s".into())
            })?;
        drop(guard);
        Ok(PortalSource {
            latest,
            size,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for PortalSource {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Source for PortalSource {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn describe(&self) -> String {
        format!(
            "screen (ScreenCast portal, PipeWire) {}x{}",
            self.size.0, self.size.1
        )
    }

    fn grab(&mut self, _index: u64, buf: &mut Vec<u8>) -> Result<(), CaptureError> {
        let (w, h) = self.size;
        let (m, _) = &*self.latest;
        let l = m
            .lock()
            .map_err(|_| CaptureError::Unsupported("capture state poisoned".into()))?;
        if let Some(e) = &l.error {
            return Err(CaptureError::Unsupported(format!("PipeWire: {e}")));
        }
        buf.resize(w as usize * h as usize * 4, 0);
        if let Some((fw, fh, data)) = &l.frame {
            // A resized source is cropped or padded to the recording's size.
            let row = (w.min(*fw) as usize) * 4;
            for y in 0..h.min(*fh) as usize {
                let src = &data[y * *fw as usize * 4..][..row];
                buf[y * w as usize * 4..][..row].copy_from_slice(src);
            }
        }
        Ok(())
    }
}

struct StreamState {
    format: spa::param::video::VideoInfoRaw,
    latest: Arc<(Mutex<Latest>, Condvar)>,
}

fn run_stream(
    fd: OwnedFd,
    node: u32,
    latest: Arc<(Mutex<Latest>, Condvar)>,
    stop: pw::channel::Receiver<()>,
) -> Result<(), String> {
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(|e| e.to_string())?;
    let context = pw::context::ContextRc::new(&mainloop, None).map_err(|e| e.to_string())?;
    let core = context.connect_fd_rc(fd, None).map_err(|e| e.to_string())?;
    let ml = mainloop.clone();
    let _stop = stop.attach(mainloop.loop_(), move |_| ml.quit());
    let stream = pw::stream::StreamBox::new(
        &core,
        "spool-screen",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )
    .map_err(|e| e.to_string())?;
    let state = StreamState {
        format: Default::default(),
        latest,
    };
    let _listener = stream
        .add_local_listener_with_user_data(state)
        .param_changed(|_, st, id, param| {
            let Some(param) = param else { return };
            if id != spa::param::ParamType::Format.as_raw() {
                return;
            }
            let _ = st.format.parse(param);
        })
        .process(|stream, st| {
            let Some(mut buffer) = stream.dequeue_buffer() else {
                return;
            };
            let size = st.format.size();
            let format = st.format.format();
            let datas = buffer.datas_mut();
            let Some(d) = datas.first_mut() else { return };
            let (offset, stride) = (
                d.chunk().offset() as usize,
                d.chunk().stride().max(0) as usize,
            );
            let Some(bytes) = d.data() else { return };
            let (w, h) = (size.width as usize, size.height as usize);
            let stride = if stride == 0 { w * 4 } else { stride };
            if w == 0 || h == 0 || bytes.len() < offset + stride * (h - 1) + w * 4 {
                return;
            }
            let swap = matches!(
                format,
                spa::param::video::VideoFormat::RGBx | spa::param::video::VideoFormat::RGBA
            );
            let mut out = vec![0u8; w * h * 4];
            for y in 0..h {
                let src = &bytes[offset + y * stride..][..w * 4];
                let dst = &mut out[y * w * 4..][..w * 4];
                dst.copy_from_slice(src);
                if swap {
                    for px in dst.chunks_exact_mut(4) {
                        px.swap(0, 2);
                    }
                }
            }
            let (m, cv) = &*st.latest;
            if let Ok(mut l) = m.lock() {
                l.frame = Some((w as u32, h as u32, out));
            }
            cv.notify_all();
        })
        .register()
        .map_err(|e| e.to_string())?;

    let obj = spa::pod::object!(
        spa::utils::SpaTypes::ObjectParamFormat,
        spa::param::ParamType::EnumFormat,
        spa::pod::property!(
            spa::param::format::FormatProperties::MediaType,
            Id,
            spa::param::format::MediaType::Video
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::MediaSubtype,
            Id,
            spa::param::format::MediaSubtype::Raw
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            spa::param::video::VideoFormat::BGRx,
            spa::param::video::VideoFormat::BGRx,
            spa::param::video::VideoFormat::BGRA,
            spa::param::video::VideoFormat::RGBx,
            spa::param::video::VideoFormat::RGBA,
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            spa::utils::Rectangle {
                width: 1920,
                height: 1080
            },
            spa::utils::Rectangle {
                width: 1,
                height: 1
            },
            spa::utils::Rectangle {
                width: 8192,
                height: 8192
            }
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            spa::utils::Fraction { num: 30, denom: 1 },
            spa::utils::Fraction { num: 0, denom: 1 },
            spa::utils::Fraction { num: 240, denom: 1 }
        ),
    );
    let values: Vec<u8> = spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &spa::pod::Value::Object(obj),
    )
    .map_err(|e| format!("{e:?}"))?
    .0
    .into_inner();
    let pod = spa::pod::Pod::from_bytes(&values).ok_or("bad format pod")?;
    let mut params = [pod];
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(node),
            pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut params,
        )
        .map_err(|e| e.to_string())?;
    mainloop.run();
    Ok(())
}
