//! spool-desktop: Spool's desktop app, a thin Tauri 2 shell over the same
//! crates as the `spool` CLI. Recording, encoding and uploading live in
//! spool-record / spool-client; the embedded upload server is spool-server
//! running in-process on localhost. This crate holds only what is the app's
//! own: settings and secrets, the typed IPC the web UI (ui/) calls, the tray,
//! the global shortcut, notifications and logging.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod audio;
mod controls;
mod deleting;
mod desktop;
mod embedded;
mod ipc;
mod logging;
mod recording;
mod settings;
mod single;
mod state;

use std::process::ExitCode;

use tauri::Manager as _;

/// SIGTERM and SIGINT (a logout, `kill`, Ctrl-C in a terminal) quit like the
/// Quit menu does, so a recording in progress is saved first.
fn quit_on_signals(handle: tauri::AppHandle) {
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

/// When the process started, for the launch-to-ready figure.
pub static STARTED: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);

fn main() -> ExitCode {
    std::sync::LazyLock::force(&STARTED);
    let context = tauri::generate_context!();
    let data = match state::data_dir(&context.config().identifier) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("spool-desktop: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // First of all: one app per data folder. A second launch brings the
    // first one's window forward and goes, having started nothing.
    let mut instance = match single::claim(&data) {
        Ok(single::Claim::First(instance)) => Some(instance),
        Ok(single::Claim::Running) => {
            let shown = single::show_running(&data);
            eprintln!(
                "spool-desktop: Spool is already running on {}{}",
                data.display(),
                if shown {
                    "; its window was brought forward"
                } else {
                    ""
                }
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // A folder where locks do not work (some network file systems):
            // run, but say that a second launch would not be caught.
            eprintln!(
                "spool-desktop: cannot lock {} ({e}); not guarding against a second launch",
                data.display()
            );
            None
        }
    };
    // The lock stays with `instance`, alive until the process ends; the
    // socket's answerer goes to the app once its window exists.
    let answerer = instance.as_mut().and_then(single::Instance::answerer);
    // One runtime for everything (Tauri's commands, the embedded server,
    // upload sessions); two workers on a two-core laptop is plenty.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("spool-rt")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spool-desktop: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tauri::async_runtime::set(runtime.handle().clone());

    let bindings = ipc::builder();
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_global_shortcut::Builder::new().build())
        .invoke_handler(bindings.invoke_handler())
        .setup(move |app| {
            bindings.mount_events(app);
            let state = state::AppState::open(app.handle(), data)?;
            app.manage(state);
            if let Some(answerer) = answerer {
                let handle = app.handle().clone();
                answerer.serve(move || desktop::show_window(&handle));
            }
            desktop::install(app.handle());
            recording::resume_unfinished(app.handle().clone());
            deleting::start(app.handle().clone());
            quit_on_signals(app.handle().clone());
            Ok(())
        })
        .build(context);
    let app = match app {
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
            if recording::is_capturing(handle) {
                api.prevent_exit();
                let handle = handle.clone();
                tauri::async_runtime::spawn(async move {
                    recording::stop_for_exit(&handle).await;
                    handle.exit(code.unwrap_or(0));
                });
            }
        }
    });
    drop(instance);
    ExitCode::SUCCESS
}
