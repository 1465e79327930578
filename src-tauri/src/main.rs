//! spool-desktop's binary: one app per data folder (a second launch brings
//! the first one's window forward), one async runtime, then the app itself
//! (the `spool_desktop` library) on Tauri's real runtime.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::process::ExitCode;

use spool_desktop_lib::{Launch, single, state};

fn main() -> ExitCode {
    std::sync::LazyLock::force(&spool_desktop_lib::STARTED);
    // Before any display, lock or runtime: a package's smoke test and a
    // fleet's inventory ask this on machines without a session.
    if std::env::args()
        .skip(1)
        .any(|a| a == "--version" || a == "-V")
    {
        println!("spool-desktop {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
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

    let launch = Launch {
        isolated: state::isolated_data_dir().is_some(),
        data,
        answerer,
        desktop: true,
    };
    let code = spool_desktop_lib::run(tauri::Builder::default(), context, launch);
    drop(instance);
    code
}
