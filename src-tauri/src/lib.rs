//! spool-desktop: Spool's desktop app, a thin Tauri 2 shell over the same
//! crates as the `spool` CLI. Recording, encoding and uploading live in
//! spool-record / spool-client; the embedded upload server is spool-server
//! running in-process on localhost. The modules depend only downward:
//! `error` ← `models` ← `settings` ← `state` ← (`audio`, `controls`,
//! `uploads`, `deleting`, `policy`, `updates`) ← `recording` ← `desktop`
//! (tray, shortcuts, notifications) ← `commands` ← [`build`] / [`run`], generic over the
//! Tauri runtime so unit tests drive the commands on Tauri's mock runtime.

mod audio;
mod command_list;
mod commands;
mod controls;
mod deleting;
mod desktop;
mod embedded;
pub mod error;
mod logging;
pub mod models;
mod paths;
mod policy;
mod recording;
mod settings;
pub mod single;
pub mod state;
mod sync;
mod update_source;
mod updates;
mod uploads;
mod window;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::ExitCode;

use tauri::{Manager as _, Runtime};

pub use commands::builder as bindings;

/// When the process started, for the launch-to-ready figure.
pub static STARTED: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);

/// What a launch is given.
pub struct Launch {
    /// The data folder (single-instance lock already taken on it).
    pub data: PathBuf,
    /// Every file under `data` (SPOOL_DATA_DIR, tests), not the user's
    /// videos and log folders.
    pub isolated: bool,
    /// Answers a second launch by bringing the window forward.
    pub answerer: Option<single::Answerer>,
    /// The desktop shell: tray, global shortcuts, notifications, clipboard,
    /// browser, signals (off for a window-less app in unit tests).
    pub desktop: bool,
}

/// SIGTERM and SIGINT (a logout, `kill`, Ctrl-C in a terminal) quit like the
/// Quit menu does, so a recording in progress is saved first.
fn quit_on_signals<R: Runtime>(handle: tauri::AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("cannot watch for SIGTERM/SIGINT");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: quitting"),
                _ = int.recv() => tracing::info!("SIGINT: quitting"),
            }
            handle.exit(0);
        }
    });
}

/// The app on `builder`: commands, state, background work, and (with
/// `launch.desktop`) the desktop shell.
pub fn build<R: Runtime>(builder: tauri::Builder<R>, launch: Launch) -> tauri::Builder<R> {
    let bindings = commands::builder::<R>();
    let mut builder = builder.invoke_handler(bindings.invoke_handler());
    if launch.desktop {
        builder = builder
            .plugin(tauri_plugin_clipboard_manager::init())
            .plugin(tauri_plugin_opener::init())
            .plugin(tauri_plugin_global_shortcut::Builder::new().build())
            .plugin(tauri_plugin_updater::Builder::new().build());
    }
    let Launch {
        data,
        isolated,
        answerer,
        desktop,
    } = launch;
    builder.setup(move |app| {
        bindings.mount_events(app);
        let state = state::AppState::open(app.handle(), data, isolated)?;
        app.manage(updates::Updates::new(
            &state.managed,
            app.package_info().version.to_string(),
        ));
        app.manage(state);
        app.manage(deleting::Deletions::new()?);
        if let Some(answerer) = answerer {
            let handle = app.handle().clone();
            answerer.serve(move || window::show_window(&handle));
        }
        if desktop {
            desktop::install(app.handle());
            quit_on_signals(app.handle().clone());
        }
        uploads::resume_unfinished(app.handle().clone());
        deleting::start(app.handle().clone());
        if desktop {
            updates::start(app.handle().clone());
        }
        Ok(())
    })
}

/// Builds and runs the app until it quits.
pub fn run<R: Runtime>(
    builder: tauri::Builder<R>,
    mut context: tauri::Context<R>,
    launch: Launch,
) -> ExitCode {
    // The updater's configuration is decided at run time (its key may come
    // from the environment in debug builds; see updates.rs).
    context
        .config_mut()
        .plugins
        .0
        .insert("updater".into(), updates::plugin_config());
    let app = match build(builder, launch).build(context) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("spool-desktop: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event {
            // In-flight PATCHes to the embedded server save what arrived.
            handle.state::<state::AppState>().stop_embedded();
        }
        if let tauri::RunEvent::ExitRequested { api, code, .. } = event {
            // A recording in progress is stopped and its last fragment saved
            // and journaled before the app goes; its upload resumes on the
            // next launch.
            if handle.state::<state::AppState>().is_capturing() {
                api.prevent_exit();
                let handle = handle.clone();
                tauri::async_runtime::spawn(async move {
                    recording::stop_for_exit(&handle.state::<state::AppState>()).await;
                    handle.exit(code.unwrap_or(0));
                });
            }
        }
    });
    ExitCode::SUCCESS
}
