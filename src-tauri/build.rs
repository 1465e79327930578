//! Tauri's build step: embeds tauri.conf.json and the UI, and generates the
//! permissions of the app's own commands so the capability file can grant
//! the window exactly the commands it uses.

fn main() {
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("./src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(&[
            "list_sources",
            "watch_recording",
            "start_recording",
            "stop_recording",
            "toggle_pause",
            "toggle_mute",
            "list_audio_devices",
            "set_audio",
            "rename_recording",
            "get_settings",
            "save_settings",
            "list_history",
            "resume_upload",
            "delete_recording",
            "take_notices",
            "reveal_file",
            "copy_text",
            "open_link",
        ]));
    if let Err(e) = tauri_build::try_build(attributes) {
        eprintln!("tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}
