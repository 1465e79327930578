//! The desktop around the window: a tray icon (Record/Stop, Pause/Resume,
//! Show, Quit), global shortcuts (Alt+Shift+R starts or stops recording,
//! Alt+Shift+P pauses and resumes — they keep working while the window is
//! minimised out of the captured picture), bringing
//! the window forward, and desktop notifications (notify-rust) when an upload completes or stalls. Each is a
//! convenience: where the desktop lacks it (no tray host, no notification
//! daemon, a shortcut taken) the app logs why and goes on.

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager as _, Runtime};

use crate::recording;
use crate::state::{AppState, Notification};
use crate::window::show_window;

pub const SHORTCUT: &str = "Alt+Shift+R";
pub const PAUSE_SHORTCUT: &str = "Alt+Shift+P";

pub fn install<R: Runtime>(app: &AppHandle<R>) {
    if let Some(mut queued) = app.state::<AppState>().take_notifications() {
        tauri::async_runtime::spawn(async move {
            while let Some(n) = queued.recv().await {
                notify(n);
            }
        });
    }
    if let Err(e) = tray(app) {
        tracing::warn!(error = %e, "no tray icon");
    }
    use tauri_plugin_global_shortcut::{GlobalShortcutExt as _, ShortcutState};
    let r = app
        .global_shortcut()
        .on_shortcut(SHORTCUT, |app, _shortcut, event| {
            if event.state == ShortcutState::Pressed {
                toggle(app);
            }
        });
    if let Err(e) = r {
        tracing::warn!(error = %e, shortcut = SHORTCUT, "global shortcut not available");
    }
    let r = app
        .global_shortcut()
        .on_shortcut(PAUSE_SHORTCUT, |app, _shortcut, event| {
            if event.state == ShortcutState::Pressed {
                toggle_pause(app);
            }
        });
    if let Err(e) = r {
        tracing::warn!(error = %e, shortcut = PAUSE_SHORTCUT, "global shortcut not available");
    }
}

fn toggle_pause<R: Runtime>(app: &AppHandle<R>) {
    match crate::controls::toggle_pause(&app.state::<AppState>()) {
        Ok(paused) => tracing::info!(paused, "pause toggled from the desktop"),
        Err(e) => tracing::info!(code = %e.code, "pause: {}", e.message),
    }
}

fn toggle<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = recording::toggle(&app).await {
            tracing::warn!(code = %e.code, error = %e.message, "toggling the recording failed");
            app.state::<AppState>()
                .notify("Spool could not record", &e.message);
        }
    });
}

fn tray<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let record = MenuItem::with_id(app, "record", "Record / Stop", true, None::<&str>)?;
    let pause = MenuItem::with_id(app, "pause", "Pause / Resume", true, None::<&str>)?;
    let show = MenuItem::with_id(app, "show", "Show Spool", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&record, &pause, &show, &quit])?;
    let mut builder = TrayIconBuilder::with_id("spool")
        .tooltip("Spool")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "record" => toggle(app),
            "pause" => toggle_pause(app),
            "show" => show_window(app),
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}

/// Shows a desktop notification, off the runtime; failures are only logged.
fn notify(Notification { summary, body }: Notification) {
    tauri::async_runtime::spawn_blocking(move || {
        let r = notify_rust::Notification::new()
            .appname("Spool")
            .summary(&summary)
            .body(&body)
            .timeout(notify_rust::Timeout::Milliseconds(6000))
            .show();
        if let Err(e) = r {
            tracing::debug!(error = %e, "no desktop notification");
        }
    });
}
