//! The main window, as the modules that move it see it: bringing it
//! forward (the tray's Show, a second launch, the end of a recording that
//! had moved it out of the way).

use tauri::{AppHandle, Manager as _, Runtime};

/// Brings the main window forward: shown, restored, focused.
pub fn show_window<R: Runtime>(app: &AppHandle<R>) {
    let Some(w) = app.get_webview_window("main") else {
        tracing::warn!("no main window to show");
        return;
    };
    for (what, r) in [
        ("show", w.show()),
        ("unminimize", w.unminimize()),
        ("focus", w.set_focus()),
    ] {
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot {what} the window");
        }
    }
}
