//! Tauri's build step: embeds tauri.conf.json and the UI, and generates the
//! permissions of the app's own commands (from the one list in
//! src/command_list.rs) so the capability file can grant the window exactly
//! the commands it uses.

include!("src/command_list.rs");

macro_rules! names {
    ($($command:ident $([$generic:path])?),* $(,)?) => {
        &[$(stringify!($command)),*]
    };
}

const COMMANDS: &[&str] = app_commands!(names);

fn main() {
    println!("cargo:rerun-if-changed=src-tauri/src/command_list.rs");
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("./src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        eprintln!("tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}
