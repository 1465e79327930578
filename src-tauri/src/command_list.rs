// The one list of the window's commands. build.rs includes this file to
// generate each command's permission, commands.rs to register them with
// the invoke handler and the bindings, and a test checks the capability
// file and the generated permissions against it — so a command cannot be
// added, renamed or removed in one place only. `[tauri::Wry]` marks the
// commands generic over the Tauri runtime: their types are collected for the
// bindings at Wry (they are the same at every runtime), and the invoke
// handler infers the runtime it runs on.
//
// (A plain `//` header, not a module doc: build.rs `include!`s this file.)

/// Calls `$callback!` with every command of the window.
#[macro_export]
macro_rules! app_commands {
    ($callback:ident) => {
        $callback! {
            list_sources,
            watch_recording,
            start_recording [tauri::Wry],
            stop_recording,
            toggle_pause,
            toggle_mute,
            list_audio_devices,
            set_audio,
            rename_recording [tauri::Wry],
            get_settings,
            save_settings,
            list_history,
            resume_upload [tauri::Wry],
            delete_recording [tauri::Wry],
            take_notices,
            reveal_file [tauri::Wry],
            copy_text [tauri::Wry],
            open_link [tauri::Wry],
            get_update,
            check_for_updates,
            install_update,
        }
    };
}
