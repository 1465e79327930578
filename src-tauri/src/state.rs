//! The app's state: its folders, the upload journal, settings and secrets,
//! the embedded server, and what is running (the recording, background
//! uploads), plus the ways the modules above tell the window and the
//! desktop about it (the progress view, the history-changed event,
//! notifications queued for the desktop shell). SPOOL_DATA_DIR puts every
//! file of the app (journal, settings, embedded server data, recordings,
//! logs) under one folder, for isolated runs.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use spool_client::journal::TargetRecord;
use spool_client::{Client, Target};
use tauri::ipc::Channel;
use tauri::{AppHandle, Runtime};
use tauri_specta::Event as _;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::embedded::Embedded;
use crate::error::{ErrorCode, IpcError};
use crate::models::{
    HistoryChanged, Notice, NoticeKind, RecordingState, RecordingView, SecretStorage,
};
pub use crate::paths::{EnvServer, Paths, data_dir, isolated_data_dir};
use crate::policy::Managed;
use crate::settings::{Destination, Secrets, Settings, SettingsInput, SettingsView, http_url};
pub use crate::sync::lock;

/// The recording being captured.
pub struct ActiveRecording {
    pub stop: CancellationToken,
    pub controls: spool_record::Controls,
    /// The recording has sound (Mute works).
    pub has_audio: bool,
    pub upload_id: Option<String>,
    /// Turns true once the last fragment is on disk and the upload's length
    /// is journaled.
    pub saved: watch::Receiver<bool>,
}

/// A desktop notification for the shell to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub summary: String,
    pub body: String,
}

/// Notifications queued for the desktop shell, which takes the receiver
/// when it installs (a window-less test app has none: they are dropped).
struct Notifications {
    tx: mpsc::Sender<Notification>,
    rx: Mutex<Option<mpsc::Receiver<Notification>>>,
}

pub struct AppState {
    pub paths: Paths,
    pub client: Client,
    pub settings: Mutex<Settings>,
    pub secrets: Secrets,
    pub env: Option<EnvServer>,
    /// The managed policy in force (read once at launch).
    pub managed: Managed,
    /// The embedded server; replaced when the local-network setting changes.
    pub embedded: Mutex<Option<Embedded>>,
    pub embedded_error: Mutex<Option<String>>,
    pub recording: Mutex<Option<ActiveRecording>>,
    notices: Mutex<Vec<Notice>>,
    notifications: Notifications,
    progress: Mutex<(Option<Channel<RecordingView>>, RecordingView)>,
    /// Which recording the main view follows; a newer one takes the view
    /// over from an older one still uploading.
    view_generation: AtomicU64,
    _log_guard: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl AppState {
    pub fn open<R: Runtime>(
        app: &AppHandle<R>,
        data: PathBuf,
        isolated: bool,
    ) -> anyhow::Result<AppState> {
        let paths = Paths::resolve(app, data, isolated)?;
        let log_guard = crate::logging::init(&paths.logs);
        tracing::info!(data = %paths.data.display(), "spool-desktop starting");
        let mut notices = Vec::new();
        // A damaged journal would stop every launch: it is kept under another
        // name, a new one starts, and the user is told (this launch only).
        let (journal, set_aside) = spool_client::Journal::open_or_set_aside(&paths.journal)?;
        drop(journal);
        if let Some(aside) = set_aside {
            notices.push(Notice {
                kind: NoticeKind::JournalSetAside,
                message: format!(
                    "Spool's list of recordings could not be read, so a new one was started. \
                     Your recordings are still on disk in {}; the unreadable list was kept as {}.",
                    paths.recordings.display(),
                    aside.display()
                ),
            });
        }
        let client = Client::open(&paths.journal)?;
        let managed = Managed::load();
        if let Some(error) = &managed.error {
            notices.push(Notice {
                kind: NoticeKind::Policy,
                message: error.clone(),
            });
        }
        let fresh = !paths.settings.exists();
        let settings = managed.apply(Settings::load(&paths.settings), fresh);
        let env = EnvServer::from_env().filter(|e| managed.permits_env(e));
        let started = if managed.allows_embedded() {
            tauri::async_runtime::block_on(Embedded::start(&paths.server, settings.share_on_lan))
        } else {
            tracing::info!("the embedded server is off: the managed policy does not allow it");
            Err(anyhow::anyhow!(
                "your organization's policy does not allow the built-in server"
            ))
        };
        let (embedded, embedded_error) = match started {
            Ok(e) => (Some(e), None),
            Err(e) => {
                let e = format!("{e:#}");
                tracing::error!(error = %e, "the embedded server did not start");
                if env.is_none()
                    && settings.destination == Destination::Embedded
                    && managed.allows_embedded()
                {
                    notices.push(Notice {
                            kind: NoticeKind::EmbeddedServer,
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
            managed,
            embedded: Mutex::new(embedded),
            embedded_error: Mutex::new(embedded_error),
            recording: Mutex::new(None),
            notices: Mutex::new(notices),
            notifications: {
                let (tx, rx) = mpsc::channel(32);
                Notifications {
                    tx,
                    rx: Mutex::new(Some(rx)),
                }
            },
            progress: Mutex::new((None, RecordingView::default())),
            view_generation: AtomicU64::new(0),
            _log_guard: log_guard,
        })
    }

    /// The notices not yet given to the window (each is given once).
    pub fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(&mut *lock(&self.notices))
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Where new recordings are uploaded now.
    pub async fn target(&self) -> Result<Target, IpcError> {
        if let Some(env) = &self.env {
            // Never an upload signed with an empty key: say what is missing.
            if env.token_id.is_empty() || env.token_secret.is_empty() {
                return Err(IpcError::new(
                    ErrorCode::NoDestination,
                    "SPOOL_SERVER_URL is set without SPOOL_TOKEN_ID and SPOOL_TOKEN_SECRET",
                ));
            }
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
                    ErrorCode::NoDestination,
                    format!(
                        "the embedded server is not running ({}); choose a remote server in Settings",
                        self.embedded_error().as_deref().unwrap_or("unknown error")
                    ),
                )
            }),
            Destination::Remote => {
                let server = http_url(&s.server_url).ok_or_else(|| {
                    IpcError::new(
                        ErrorCode::InvalidSettings,
                        "the server URL in Settings is not an http(s) address",
                    )
                })?;
                match self.secrets.load(&server, &s.token_id).await {
                    Some(secret) => Ok(Target::OnDemand {
                        server,
                        token_id: s.token_id,
                        token_secret: secret,
                    }),
                    None => Err(IpcError::new(
                        ErrorCode::NoDestination,
                        "the token secret for the remote server is not known: enter it in Settings",
                    )),
                }
            }
            Destination::Endpoint => Ok(Target::Endpoint {
                url: http_url(&s.endpoint_url).ok_or_else(|| {
                    IpcError::new(
                        ErrorCode::InvalidSettings,
                        "the TUS endpoint in Settings is not an http(s) address",
                    )
                })?,
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
                if let Some(t) = self.embedded_target()
                    && matches!(&t, Target::OnDemand { server: s, token_id: id, .. } if s == server && id == token_id)
                {
                    return Some(t);
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
                SecretStorage::Environment
            } else {
                self.secrets.storage()
            },
            env_override: self.env.as_ref().map(|e| e.url.clone()),
            embedded_url: self.with_embedded(|e| e.url.clone()),
            lan_url: self.with_embedded(|e| e.lan_url.clone()).flatten(),
            embedded_error: self.embedded_error(),
            data_dir: self.paths.data.display().to_string(),
            recordings_dir: self.paths.recordings.display().to_string(),
            log_dir: self.paths.logs.display().to_string(),
            managed: self.managed.view(),
            settings,
        }
    }

    fn with_embedded<R>(&self, f: impl FnOnce(&Embedded) -> R) -> Option<R> {
        lock(&self.embedded).as_ref().map(f)
    }

    fn embedded_target(&self) -> Option<Target> {
        self.with_embedded(Embedded::target)
    }

    fn embedded_error(&self) -> Option<String> {
        lock(&self.embedded_error).clone()
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
        if self.is_capturing() {
            return Err(IpcError::new(
                ErrorCode::InvalidSettings,
                "stop the recording before changing local-network sharing",
            ));
        }
        // Checked first, so a machine without a network keeps its server.
        if lan && crate::embedded::lan_address().is_none() {
            return Err(IpcError::new(
                ErrorCode::InvalidSettings,
                "this computer is not on a local network: there is no address to share on",
            ));
        }
        let old = lock(&self.embedded).take();
        if let Some(old) = old {
            old.shut_down().await;
        }
        // The old server's last tasks may hold its data folder a moment longer.
        let mut last = None;
        for _ in 0..40 {
            match Embedded::start(&self.paths.server, lan).await {
                Ok(e) => {
                    tracing::info!(lan, url = ?e.lan_url, "embedded server restarted");
                    {
                        let mut slot = lock(&self.embedded);
                        *slot = Some(e);
                    }
                    {
                        let mut err = lock(&self.embedded_error);
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
        {
            let mut err = lock(&self.embedded_error);
            *err = Some(e.clone());
        }
        Err(IpcError::new(
            ErrorCode::Internal,
            format!("the embedded server did not restart: {e}"),
        ))
    }

    pub async fn save_settings(&self, input: SettingsInput) -> Result<SettingsView, IpcError> {
        // A locked destination stays the policy's whatever the window sent.
        let mut s = self.managed.enforce(input.settings)?;
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
                ErrorCode::InvalidSettings,
                "enter the token secret for this server and token id",
            ));
        }
        if s.share_on_lan != self.settings().share_on_lan {
            self.set_lan_sharing(s.share_on_lan).await?;
        }
        s.save(&self.paths.settings)?;
        {
            let mut cur = lock(&self.settings);
            *cur = s;
        }
        tracing::info!("settings saved");
        Ok(self.settings_view().await)
    }

    /// The window's progress subscription; it gets the latest view at once.
    pub fn set_progress_channel(&self, channel: Channel<RecordingView>) {
        {
            let mut p = lock(&self.progress);
            let _ = channel.send(p.1.clone());
            p.0 = Some(channel);
        }
    }

    /// Sends a view when it differs from the last one sent.
    pub fn publish(&self, view: RecordingView) {
        {
            let mut p = lock(&self.progress);
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
        let shown = lock(&self.progress).1.upload_id.as_deref() == Some(upload_id);
        if shown {
            self.publish(RecordingView {
                state: RecordingState::Idle,
                ..RecordingView::default()
            });
        }
    }

    /// A fresh view generation: the caller's views now take the window over.
    pub fn new_view_generation(&self) -> u64 {
        self.view_generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Publishes `view` if its generation still owns the window.
    pub fn publish_for(&self, generation: u64, view: RecordingView) {
        if self.view_generation.load(Ordering::Acquire) == generation {
            self.publish(view);
        }
    }

    /// Queues a desktop notification (dropped, and logged, when the shell
    /// is not keeping up or there is none).
    pub fn notify(&self, summary: &str, body: &str) {
        let n = Notification {
            summary: summary.to_owned(),
            body: body.to_owned(),
        };
        if let Err(e) = self.notifications.tx.try_send(n) {
            tracing::debug!(error = %e, "notification not shown");
        }
    }

    /// The notifications' receiver, for the desktop shell (once).
    pub fn take_notifications(&self) -> Option<mpsc::Receiver<Notification>> {
        lock(&self.notifications.rx).take()
    }

    /// A recording is being captured (or counted down to: Start holds it).
    pub fn is_capturing(&self) -> bool {
        lock(&self.recording).is_some()
    }

    /// The upload of the recording being captured, if any.
    pub fn recording_upload(&self) -> Option<String> {
        lock(&self.recording)
            .as_ref()
            .and_then(|a| a.upload_id.clone())
    }

    /// The journal's record of upload `id`, or `ERR_NOT_FOUND`.
    pub async fn journaled(&self, id: &str) -> Result<spool_client::UploadRecord, IpcError> {
        self.client.journal().get(id).await?.ok_or_else(|| {
            IpcError::new(ErrorCode::RecordingNotFound, format!("no recording {id}"))
        })
    }
}

/// Tells the window its history changed (a state, a new recording, a deletion).
pub fn history_changed<R: Runtime>(app: &AppHandle<R>) {
    if let Err(e) = HistoryChanged.emit(app) {
        tracing::debug!(error = %e, "history-changed not delivered");
    }
}
