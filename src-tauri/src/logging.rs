//! Logs through tracing to a daily-rotated file in the app's log folder
//! (seven days kept), and warnings to stderr. RUST_LOG overrides the level.
//! Signed upload URLs and secrets are never logged by Spool's crates.

use std::path::Path;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Starts logging; the guard flushes the file on drop.
pub fn init(dir: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new("info,tao=warn,wry=warn,tauri=warn,hyper=warn,reqwest=warn")
        })
    };
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("spool-desktop")
        .filename_suffix("log")
        .max_log_files(7)
        .build(dir);
    match appender {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer);
            let _ = tracing_subscriber::registry()
                .with(filter())
                .with(file)
                .with(stderr())
                .try_init();
            Some(guard)
        }
        Err(e) => {
            let _ = tracing_subscriber::registry()
                .with(filter())
                .with(stderr())
                .try_init();
            tracing::warn!(error = %e, dir = %dir.display(), "cannot write a log file; logging to stderr only");
            None
        }
    }
}

fn stderr<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN)
}
