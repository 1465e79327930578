//! Verified updates through tauri-plugin-updater: the app asks its update
//! endpoint (SPOOL_UPDATE_URL, else the managed policy's `update_url` or
//! `updates: false`, else the endpoint built in at compile time) at launch
//! and every few hours, downloads a newer version when nothing is being
//! recorded or uploaded, and checks its minisign signature against the
//! public key built into the app — bound to the announced version
//! (`requireSignedVersion`), never a downgrade — before anything can be
//! installed. Installing is the user's call and never interrupts a
//! recording or an unfinished upload: it waits for both, then asks again.
//! An endpoint that cannot be reached leaves the app up to date, quietly;
//! only a bad signature or a failed install is a failure.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager as _, Runtime};
use tauri_plugin_updater::{Update, UpdaterExt as _};
use tauri_specta::Event as _;
use tokio::sync::Notify;

use crate::error::{ErrorCode, IpcError};
use crate::policy::Managed;
use crate::state::{AppState, lock};
pub use crate::update_source::{Source, UpdateState, plugin_config};

/// How often the endpoint is asked after launch (SPOOL_UPDATE_INTERVAL_SECS overrides).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// How often a waiting install looks whether the recording and uploads are done.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// What the window shows about updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct UpdateView {
    pub state: UpdateState,
    /// The version running now.
    pub current_version: String,
    /// The newer version announced (from `available` on).
    pub version: Option<String>,
    /// Its release notes.
    pub notes: Option<String>,
    /// Why it is as it is: an unreachable endpoint (`up-to-date`), a bad
    /// signature or failed install (`failed`).
    pub code: Option<ErrorCode>,
    pub message: Option<String>,
    /// Bytes downloaded / expected (`downloading`).
    pub downloaded: Option<f64>,
    pub total: Option<f64>,
    /// SPOOL_UPDATE_DRY_RUN: stops at `verified` instead of installing.
    pub dry_run: bool,
}

/// The update view changed.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct UpdateChanged(pub UpdateView);

/// Whether the app is busy: a recording is being captured or an upload runs.
fn busy(state: &AppState) -> bool {
    state.is_capturing()
        || state
            .client
            .uploads()
            .ids()
            .is_ok_and(|ids| !ids.is_empty())
}

/// The updater's state: the view, the verified download, and the wake-ups
/// of the background task.
pub struct Updates {
    source: Source,
    view: Mutex<UpdateView>,
    ready: Mutex<Option<(Update, Vec<u8>)>>,
    /// A check (now) or the install was asked for.
    wake: Notify,
    install_asked: AtomicBool,
    interval: Duration,
}

impl Updates {
    pub fn new(managed: &Managed, current_version: String) -> Updates {
        let source = Source::resolve(managed);
        let interval = std::env::var("SPOOL_UPDATE_INTERVAL_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_INTERVAL, Duration::from_secs);
        let (state, message) = source
            .reason
            .clone()
            .map_or((UpdateState::Checking, None), |(s, m)| (s, Some(m)));
        Updates {
            view: Mutex::new(UpdateView {
                state,
                current_version,
                version: None,
                notes: None,
                code: (state == UpdateState::UpToDate).then_some(ErrorCode::UpdateUnavailable),
                message,
                downloaded: None,
                total: None,
                dry_run: dry_run(),
            }),
            source,
            ready: Mutex::new(None),
            wake: Notify::new(),
            install_asked: AtomicBool::new(false),
            interval,
        }
    }

    pub fn view(&self) -> UpdateView {
        lock(&self.view).clone()
    }

    /// Asks for a check now.
    pub fn check_now(&self) {
        self.wake.notify_one();
    }

    /// The user asked to install: it happens once the app is idle.
    pub fn ask_install(&self) -> Result<UpdateView, IpcError> {
        let state = self.view().state;
        if !matches!(
            state,
            UpdateState::Available
                | UpdateState::Downloading
                | UpdateState::Verified
                | UpdateState::Waiting
        ) {
            return Err(IpcError::new(
                ErrorCode::UpdateUnavailable,
                "there is no update to install",
            ));
        }
        self.install_asked.store(true, Ordering::Release);
        self.wake.notify_one();
        Ok(self.view())
    }
}

fn dry_run() -> bool {
    std::env::var("SPOOL_UPDATE_DRY_RUN").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Sets the view and tells the window.
fn publish<R: Runtime>(app: &AppHandle<R>, f: impl FnOnce(&mut UpdateView)) {
    let updates = app.state::<Updates>();
    let view = {
        let mut v = lock(&updates.view);
        f(&mut v);
        v.clone()
    };
    tracing::info!(state = ?view.state, version = ?view.version, code = ?view.code, message = ?view.message, "update");
    if let Err(e) = UpdateChanged(view).emit(app) {
        tracing::debug!(error = %e, "update-changed not delivered");
    }
}

fn set<R: Runtime>(
    app: &AppHandle<R>,
    state: UpdateState,
    code: Option<ErrorCode>,
    message: impl Into<Option<String>>,
) {
    let message = message.into();
    publish(app, |v| {
        v.state = state;
        v.code = code;
        v.message = message;
        if state != UpdateState::Downloading {
            v.downloaded = None;
            v.total = None;
        }
    });
}

/// The code a plugin error is reported with: anything about the signature
/// (bad, another key's, missing, for another version, undecodable) is
/// ERR_UPDATE_SIGNATURE; the rest is about reaching the server.
fn classify(e: &tauri_plugin_updater::Error) -> ErrorCode {
    use tauri_plugin_updater::Error as E;
    match e {
        E::Minisign(_)
        | E::Base64(_)
        | E::SignatureUtf8(_)
        | E::SignedVersionMismatch { .. }
        | E::MissingSignedVersion => ErrorCode::UpdateSignature,
        _ => ErrorCode::UpdateUnavailable,
    }
}

/// Starts the background task: a check at launch, then one per interval or
/// when asked, and the install when asked and idle.
pub fn start<R: Runtime>(app: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        let updates = app.state::<Updates>();
        if updates.source.endpoint.is_none() {
            tracing::info!(reason = ?updates.source.reason, "update checks are off");
            // An install can never be asked for; nothing else to do.
            return;
        }
        loop {
            check_and_download(&app).await;
            if updates.install_asked.load(Ordering::Acquire) && lock(&updates.ready).is_some() {
                install_when_idle(&app).await;
            }
            let _ = tokio::time::timeout(updates.interval, updates.wake.notified()).await;
        }
    });
}

/// One round: ask the endpoint, and download + verify a newer version once
/// the app is idle (or at once when the user asked to install it).
async fn check_and_download<R: Runtime>(app: &AppHandle<R>) {
    let updates = app.state::<Updates>();
    // A verified download of the newest version is kept: no re-download.
    let have = lock(&updates.ready)
        .as_ref()
        .map(|(u, _)| u.version.clone());
    if have.is_none() {
        set(app, UpdateState::Checking, None, None);
    }
    let Some(endpoint) = updates.source.endpoint.clone() else {
        return;
    };
    let updater = app
        .updater_builder()
        .pubkey(updates.source.pubkey.clone())
        .timeout(Duration::from_secs(30))
        .endpoints(vec![endpoint])
        .and_then(|b| b.build());
    let checked = match updater {
        Ok(u) => u.check().await,
        Err(e) => Err(e),
    };
    let update = match checked {
        Ok(Some(u)) => u,
        Ok(None) => {
            *lock(&updates.ready) = None;
            let current = updates.view().current_version;
            set(
                app,
                UpdateState::UpToDate,
                None,
                format!("Spool {current} is the newest version"),
            );
            return;
        }
        Err(e) => {
            if have.is_some() {
                // Offline now, but what was verified stays installable.
                return;
            }
            tracing::warn!(error = %e, "update check failed");
            set(
                app,
                UpdateState::UpToDate,
                Some(ErrorCode::UpdateUnavailable),
                format!("the update server cannot be reached ({e}); Spool checks again later"),
            );
            return;
        }
    };
    if have.as_deref() == Some(update.version.as_str()) {
        return;
    }
    // Another version is announced now: what was verified before is stale.
    *lock(&updates.ready) = None;
    if updates.source.pubkey.is_empty() {
        set_failed(
            app,
            &update,
            ErrorCode::UpdateSignature,
            "this build has no update key to check signatures with".into(),
        );
        return;
    }
    let (version, notes) = (update.version.clone(), update.body.clone());
    publish(app, |v| {
        v.state = UpdateState::Available;
        v.version = Some(version.clone());
        v.notes = notes;
        v.code = None;
        v.message = Some(format!("Spool {version} is available"));
    });
    // Downloading competes with a recording's upload for the link: wait.
    while busy(&app.state::<AppState>()) && !updates.install_asked.load(Ordering::Acquire) {
        tokio::time::sleep(IDLE_POLL).await;
    }
    set(
        app,
        UpdateState::Downloading,
        None,
        format!("downloading Spool {version}"),
    );
    let progress = app.clone();
    let mut got = 0usize;
    let mut last_sent = 0usize;
    let downloaded = update
        .download(
            move |n, total| {
                got += n;
                // A view every 256 KiB is plenty for a progress line.
                if got - last_sent >= 256 * 1024 || total.is_some_and(|t| got as u64 >= t) {
                    last_sent = got;
                    publish(&progress, |v| {
                        v.downloaded = Some(got as f64);
                        v.total = total.map(|t| t as f64);
                    });
                }
            },
            || {},
        )
        .await;
    match downloaded {
        Ok(bytes) => {
            tracing::info!(version = %version, bytes = bytes.len(), "update downloaded and its signature verified");
            *lock(&updates.ready) = Some((update, bytes));
            set(app, UpdateState::Verified, None, verified_message(&version));
        }
        Err(e) => {
            let code = classify(&e);
            let message = match code {
                ErrorCode::UpdateSignature => {
                    format!("the update's signature does not verify: nothing was installed ({e})")
                }
                _ => format!("the update could not be downloaded ({e}); Spool tries again later"),
            };
            set_failed(app, &update, code, message);
        }
    }
}

fn verified_message(version: &str) -> String {
    if dry_run() {
        format!(
            "Spool {version} is downloaded and its signature verified (dry run: it is not installed)"
        )
    } else {
        format!("Spool {version} is downloaded and its signature verified: install it now?")
    }
}

fn set_failed<R: Runtime>(app: &AppHandle<R>, update: &Update, code: ErrorCode, message: String) {
    tracing::error!(version = %update.version, code = %code, "{message}");
    let version = update.version.clone();
    let message = format!("Spool {version}: {message}");
    publish(app, |v| {
        v.state = UpdateState::Failed;
        v.version = Some(version);
        v.code = Some(code);
        v.message = Some(message);
        v.downloaded = None;
        v.total = None;
    });
}

/// Installs the verified update once nothing is recorded or uploaded; when
/// it had to wait, it asks again first (the user may be in the middle of
/// something else by then).
async fn install_when_idle<R: Runtime>(app: &AppHandle<R>) {
    let updates = app.state::<Updates>();
    let Some(version) = lock(&updates.ready)
        .as_ref()
        .map(|(u, _)| u.version.clone())
    else {
        return;
    };
    if busy(&app.state::<AppState>()) {
        set(
            app,
            UpdateState::Waiting,
            None,
            format!("Spool {version} installs once the recording and its upload are done"),
        );
        while busy(&app.state::<AppState>()) {
            tokio::time::sleep(IDLE_POLL).await;
        }
        updates.install_asked.store(false, Ordering::Release);
        set(
            app,
            UpdateState::Verified,
            None,
            format!("the recording and its upload are done: install Spool {version} now?"),
        );
        return;
    }
    updates.install_asked.store(false, Ordering::Release);
    if dry_run() {
        set(app, UpdateState::Verified, None, verified_message(&version));
        return;
    }
    let Some((update, bytes)) = lock(&updates.ready).take() else {
        return;
    };
    set(
        app,
        UpdateState::Installing,
        None,
        format!("installing Spool {version}"),
    );
    // The package manager may ask for a password (pkexec): off the runtime.
    let done = tokio::task::spawn_blocking(move || update.install(&bytes).map(|()| update)).await;
    match done {
        Ok(Ok(_)) => {
            tracing::info!(version = %version, "update installed; restarting");
            app.restart();
        }
        Ok(Err(e)) => {
            let code = match classify(&e) {
                ErrorCode::UpdateSignature => ErrorCode::UpdateSignature,
                _ => ErrorCode::UpdateInstall,
            };
            tracing::error!(error = %e, "update not installed");
            publish(app, |v| {
                v.state = UpdateState::Failed;
                v.code = Some(code);
                v.message = Some(format!(
                    "Spool {version} could not be installed ({e}); the app stays as it is"
                ));
            });
        }
        Err(e) => set(
            app,
            UpdateState::Failed,
            Some(ErrorCode::UpdateInstall),
            format!("the install stopped: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signature_errors_are_signature_errors() {
        use tauri_plugin_updater::Error as E;
        assert_eq!(
            classify(&E::MissingSignedVersion),
            ErrorCode::UpdateSignature
        );
        assert_eq!(
            classify(&E::SignedVersionMismatch {
                signed: "1".into(),
                announced: "2".into()
            }),
            ErrorCode::UpdateSignature
        );
        assert_eq!(
            classify(&E::SignatureUtf8("x".into())),
            ErrorCode::UpdateSignature
        );
        assert_eq!(classify(&E::ReleaseNotFound), ErrorCode::UpdateUnavailable);
        assert_eq!(
            classify(&E::Network("down".into())),
            ErrorCode::UpdateUnavailable
        );
    }
}
