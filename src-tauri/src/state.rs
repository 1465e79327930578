//! The app's state: its folders, the upload journal, settings and secrets,
//! the embedded server, and what is running (the recording, background
//! uploads). SPOOL_DATA_DIR puts every file of the app (journal, settings,
//! embedded server data, recordings, logs) under one folder, for isolated
//! runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use spool_client::journal::TargetRecord;
use spool_client::{Client, Target};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::embedded::Embedded;
use crate::ipc::{IpcError, Notice, RecordingView, codes};
use crate::settings::{Destination, Secrets, Settings, SettingsInput, SettingsView, http_url};

/// Where the app keeps its files.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data: PathBuf,
    pub journal: PathBuf,
    pub server: PathBuf,
    pub recordings: PathBuf,
    pub logs: PathBuf,
    pub settings: PathBuf,
}

/// `SPOOL_DATA_DIR`, for isolated runs.
fn isolated_data_dir() -> Option<PathBuf> {
    std::env::var_os("SPOOL_DATA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The app's data folder: `SPOOL_DATA_DIR`, else the platform's data folder
/// for the app's `identifier` — the very folder Tauri's `app_data_dir`
/// names, known here before the app (and its window) exists, so the
/// single-instance lock is taken first.
pub fn data_dir(identifier: &str) -> anyhow::Result<PathBuf> {
    match isolated_data_dir() {
        Some(d) => Ok(d),
        None => dirs::data_dir()
            .map(|d| d.join(identifier))
            .ok_or_else(|| anyhow::anyhow!("this system has no data folder for applications")),
    }
}

impl Paths {
    fn resolve(app: &AppHandle, data: PathBuf) -> anyhow::Result<Paths> {
        let isolated = isolated_data_dir();
        let logs = match &isolated {
            Some(_) => data.join("logs"),
            None => app.path().app_log_dir()?,
        };
        // Recordings are the user's videos unless the run is isolated.
        let recordings = match (&isolated, app.path().video_dir()) {
            (None, Ok(v)) => v.join("Spool"),
            _ => data.join("recordings"),
        };
        let paths = Paths {
            journal: data.join("journal"),
            server: data.join("server"),
            settings: data.join("settings.json"),
            recordings,
            logs,
            data,
        };
        for d in [&paths.data, &paths.journal, &paths.recordings, &paths.logs] {
            std::fs::create_dir_all(d)?;
        }
        Ok(paths)
    }
}

/// The destination given by the environment for this run.
#[derive(Clone)]
pub struct EnvServer {
    pub url: String,
    pub token_id: String,
    pub token_secret: String,
}

impl EnvServer {
    fn from_env() -> Option<EnvServer> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = var("SPOOL_SERVER_URL")?;
        let url = match http_url(&url) {
            Some(u) => u,
            None => {
                tracing::error!(url, "SPOOL_SERVER_URL is not an http(s) URL; ignoring it");
                return None;
            }
        };
        Some(EnvServer {
            url,
            token_id: var("SPOOL_TOKEN_ID").unwrap_or_default(),
            token_secret: var("SPOOL_TOKEN_SECRET").unwrap_or_default(),
        })
    }
}

/// An upload running in the background (a finished recording's, or a resumed one).
pub struct LiveUpload {
    pub status: watch::Receiver<spool_client::Status>,
    pub stop: CancellationToken,
}

pub struct AppState {
    pub paths: Paths,
    pub client: Client,
    pub settings: Mutex<Settings>,
    pub secrets: Secrets,
    pub env: Option<EnvServer>,
    /// The embedded server; replaced when the local-network setting changes.
    pub embedded: Mutex<Option<Embedded>>,
    pub embedded_error: Mutex<Option<String>>,
    pub recording: Mutex<Option<crate::recording::Active>>,
    pub deletions: crate::deleting::Deletions,
    uploads: Mutex<HashMap<String, LiveUpload>>,
    notices: Mutex<Vec<Notice>>,
    progress: Mutex<(Option<Channel<RecordingView>>, RecordingView)>,
    _log_guard: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl AppState {
    pub fn open(app: &AppHandle, data: PathBuf) -> anyhow::Result<AppState> {
        let paths = Paths::resolve(app, data)?;
        let log_guard = crate::logging::init(&paths.logs);
        tracing::info!(data = %paths.data.display(), "spool-desktop starting");
        let mut notices = Vec::new();
        // A damaged journal would stop every launch: it is kept under another
        // name, a new one starts, and the user is told (this launch only).
        let (journal, set_aside) = spool_client::Journal::open_or_set_aside(&paths.journal)?;
        drop(journal);
        if let Some(aside) = set_aside {
            notices.push(Notice {
                kind: "journal-set-aside".into(),
                message: format!(
                    "Spool's list of recordings could not be read, so a new one was started. \
                     Your recordings are still on disk in {}; the unreadable list was kept as {}.",
                    paths.recordings.display(),
                    aside.display()
                ),
            });
        }
        let client = Client::open(&paths.journal)?;
        let settings = Settings::load(&paths.settings);
        let env = EnvServer::from_env();
        let (embedded, embedded_error) = match tauri::async_runtime::block_on(Embedded::start(
            &paths.server,
            settings.share_on_lan,
        )) {
            Ok(e) => (Some(e), None),
            Err(e) => {
                let e = format!("{e:#}");
                tracing::error!(error = %e, "the embedded server did not start");
                if env.is_none() && settings.destination == Destination::Embedded {
                    notices.push(Notice {
                            kind: "embedded-server".into(),
                            message: format!(
                                "The server built into Spool did not start ({e}). \
                                 Recordings cannot be uploaded to it; choose a remote server in Settings."
                            ),
                        });
                }
                (None, Some(e))
            }
        };
        Ok(AppState {
            paths,
            client,
            settings: Mutex::new(settings),
            secrets: Secrets::new(),
            env,
            embedded: Mutex::new(embedded),
            embedded_error: Mutex::new(embedded_error),
            recording: Mutex::new(None),
            deletions: crate::deleting::Deletions::new()?,
            uploads: Mutex::new(HashMap::new()),
            notices: Mutex::new(notices),
            progress: Mutex::new((
                None,
                RecordingView {
                    state: "idle".into(),
                    ..RecordingView::default()
                },
            )),
            _log_guard: log_guard,
        })
    }

    /// The notices not yet given to the window (each is given once).
    pub fn take_notices(&self) -> Vec<Notice> {
        self.notices
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    pub fn settings(&self) -> Settings {
        self.settings.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Where new recordings are uploaded now.
    pub async fn target(&self) -> Result<Target, IpcError> {
        if let Some(env) = &self.env {
            return Ok(Target::OnDemand {
                server: env.url.clone(),
                token_id: env.token_id.clone(),
                token_secret: env.token_secret.clone(),
            });
        }
        let s = self.settings();
        match s.destination {
            Destination::Embedded => self.embedded_target().ok_or_else(|| {
                IpcError::new(
                    codes::NO_DESTINATION,
                    format!(
                        "the embedded server is not running ({}); choose a remote server in Settings",
                        self.embedded_error().as_deref().unwrap_or("unknown error")
                    ),
                )
            }),
            Destination::Remote => {
                let server = http_url(&s.server_url).unwrap_or_default();
                match self.secrets.load(&server, &s.token_id).await {
                    Some(secret) => Ok(Target::OnDemand {
                        server,
                        token_id: s.token_id,
                        token_secret: secret,
                    }),
                    None => Err(IpcError::new(
                        codes::NO_DESTINATION,
                        "the token secret for the remote server is not known: enter it in Settings",
                    )),
                }
            }
            Destination::Endpoint => Ok(Target::Endpoint {
                url: http_url(&s.endpoint_url).unwrap_or_default(),
                headers: Vec::new(),
            }),
        }
    }

    /// Credentials to resume a journaled upload with, when a new upload might
    /// have to be created for it (the journal never keeps secrets).
    pub async fn target_for(&self, target: &TargetRecord) -> Option<Target> {
        match target {
            TargetRecord::OnDemand { server, token_id } => {
                if let Some(env) = &self.env
                    && env.url == *server
                    && env.token_id == *token_id
                {
                    return Some(Target::OnDemand {
                        server: env.url.clone(),
                        token_id: env.token_id.clone(),
                        token_secret: env.token_secret.clone(),
                    });
                }
                if let Some(t) = self.embedded_target() {
                    if matches!(&t, Target::OnDemand { server: s, token_id: id, .. } if s == server && id == token_id)
                    {
                        return Some(t);
                    }
                }
                let secret = self.secrets.load(server, token_id).await?;
                Some(Target::OnDemand {
                    server: server.clone(),
                    token_id: token_id.clone(),
                    token_secret: secret,
                })
            }
            TargetRecord::Endpoint { .. } | TargetRecord::Attached => None,
        }
    }

    pub async fn settings_view(&self) -> SettingsView {
        let settings = self.settings();
        let has_secret = match &self.env {
            Some(env) => !env.token_secret.is_empty(),
            None => {
                settings.destination == Destination::Remote
                    && self
                        .secrets
                        .load(
                            &http_url(&settings.server_url).unwrap_or_default(),
                            &settings.token_id,
                        )
                        .await
                        .is_some()
            }
        };
        SettingsView {
            has_secret,
            secret_storage: if self.env.is_some() {
                "environment".into()
            } else {
                self.secrets.storage().into()
            },
            env_override: self.env.as_ref().map(|e| e.url.clone()),
            embedded_url: self.with_embedded(|e| e.url.clone()),
            lan_url: self.with_embedded(|e| e.lan_url.clone()).flatten(),
            embedded_error: self.embedded_error(),
            data_dir: self.paths.data.display().to_string(),
            recordings_dir: self.paths.recordings.display().to_string(),
            log_dir: self.paths.logs.display().to_string(),
            settings,
        }
    }

    fn with_embedded<R>(&self, f: impl FnOnce(&Embedded) -> R) -> Option<R> {
        self.embedded.lock().ok()?.as_ref().map(f)
    }

    fn embedded_target(&self) -> Option<Target> {
        self.with_embedded(Embedded::target)
    }

    fn embedded_error(&self) -> Option<String> {
        self.embedded_error.lock().ok()?.clone()
    }

    /// Stops the embedded server (app exit): in-flight PATCHes save what
    /// arrived.
    pub fn stop_embedded(&self) {
        let _ = self.with_embedded(|e| e.stop.cancel());
    }

    /// Restarts the embedded server on or off the local network. Refused
    /// while recording; uploads in flight reconnect (their URLs name
    /// loopback, which the server keeps serving either way).
    async fn set_lan_sharing(&self, lan: bool) -> Result<(), IpcError> {
        if self.recording.lock().map(|r| r.is_some()).unwrap_or(false) {
            return Err(IpcError::new(
                codes::INVALID_SETTINGS,
                "stop the recording before changing local-network sharing",
            ));
        }
        // Checked first, so a machine without a network keeps its server.
        if lan && crate::embedded::lan_address().is_none() {
            return Err(IpcError::new(
                codes::INVALID_SETTINGS,
                "this computer is not on a local network: there is no address to share on",
            ));
        }
        let old = self.embedded.lock().ok().and_then(|mut e| e.take());
        if let Some(old) = old {
            old.shut_down().await;
        }
        // The old server's last tasks may hold its data folder a moment longer.
        let mut last = None;
        for _ in 0..40 {
            match Embedded::start(&self.paths.server, lan).await {
                Ok(e) => {
                    tracing::info!(lan, url = ?e.lan_url, "embedded server restarted");
                    if let Ok(mut slot) = self.embedded.lock() {
                        *slot = Some(e);
                    }
                    if let Ok(mut err) = self.embedded_error.lock() {
                        *err = None;
                    }
                    return Ok(());
                }
                Err(e) => {
                    last = Some(format!("{e:#}"));
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
        let e = last.unwrap_or_default();
        if let Ok(mut err) = self.embedded_error.lock() {
            *err = Some(e.clone());
        }
        Err(IpcError::new(
            codes::INTERNAL,
            format!("the embedded server did not restart: {e}"),
        ))
    }

    pub async fn save_settings(&self, input: SettingsInput) -> Result<SettingsView, IpcError> {
        let mut s = input.settings;
        if let Some(url) = http_url(&s.server_url) {
            s.server_url = url;
        }
        s.token_id = s.token_id.trim().to_owned();
        s.validate()?;
        if let Some(secret) = input.token_secret.filter(|t| !t.is_empty()) {
            self.secrets
                .store(&s.server_url, &s.token_id, &secret)
                .await;
        } else if s.destination == Destination::Remote
            && self
                .secrets
                .load(&s.server_url, &s.token_id)
                .await
                .is_none()
        {
            return Err(IpcError::new(
                codes::INVALID_SETTINGS,
                "enter the token secret for this server and token id",
            ));
        }
        if s.share_on_lan != self.settings().share_on_lan {
            self.set_lan_sharing(s.share_on_lan).await?;
        }
        s.save(&self.paths.settings)?;
        if let Ok(mut cur) = self.settings.lock() {
            *cur = s;
        }
        tracing::info!("settings saved");
        Ok(self.settings_view().await)
    }

    /// The window's progress subscription; it gets the latest view at once.
    pub fn set_progress_channel(&self, channel: Channel<RecordingView>) {
        if let Ok(mut p) = self.progress.lock() {
            let _ = channel.send(p.1.clone());
            p.0 = Some(channel);
        }
    }

    /// Sends a view when it differs from the last one sent.
    pub fn publish(&self, view: RecordingView) {
        if let Ok(mut p) = self.progress.lock() {
            if p.1 == view {
                return;
            }
            if let Some(ch) = &p.0
                && ch.send(view.clone()).is_err()
            {
                p.0 = None;
            }
            p.1 = view;
        }
    }

    /// A deleted recording leaves the main view (its link no longer works).
    pub fn forget_view_of(&self, upload_id: &str) {
        let shown = self
            .progress
            .lock()
            .map(|p| p.1.upload_id.as_deref() == Some(upload_id))
            .unwrap_or(false);
        if shown {
            self.publish(RecordingView {
                state: "idle".into(),
                ..RecordingView::default()
            });
        }
    }

    /// Follows a running upload (its live status overrides the journal's).
    pub fn track_upload(&self, id: &str, session: &spool_client::Session) {
        if let Ok(mut u) = self.uploads.lock() {
            u.insert(
                id.to_owned(),
                LiveUpload {
                    status: session.status(),
                    stop: session.stop_handle(),
                },
            );
        }
    }

    /// A followed upload's live status and the token that stops it.
    pub fn live_upload(&self, id: &str) -> Option<(spool_client::Status, CancellationToken)> {
        let u = self.uploads.lock().ok()?;
        u.get(id)
            .map(|l| (l.status.borrow().clone(), l.stop.clone()))
    }

    /// Stops following an upload; what was followed, if anything.
    pub fn untrack_upload(&self, id: &str) -> Option<LiveUpload> {
        self.uploads.lock().ok().and_then(|mut u| u.remove(id))
    }

    /// The journal's record of upload `id`, or `ERR_NOT_FOUND`.
    pub async fn journaled(&self, id: &str) -> Result<spool_client::UploadRecord, IpcError> {
        self.client
            .journal()
            .get(id)
            .await?
            .ok_or_else(|| IpcError::new(codes::NOT_FOUND, format!("no recording {id}")))
    }
}
