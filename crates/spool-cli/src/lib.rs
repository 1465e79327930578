//! What the two `spool` programs share. `spool` itself is the launcher: it
//! runs the client commands (`upload`, `resume`, `uploads`) and
//! `--version` on its own, linking nothing but the client, and hands every
//! other command to `spool-full` (serve, record, sources: the parts that
//! need FFmpeg, the capture stack and the server) by exec'ing it in the
//! same process. An upload then never maps FFmpeg's ~150 shared libraries,
//! which were most of its memory; `spool-full` runs the same client
//! commands itself, from the same definitions here.

pub mod exit;
pub mod launch;
pub mod secret;
pub mod upload;

use clap::Subcommand;

/// What `spool --help` says first.
pub const ABOUT: &str = "Record your screen and share it while it uploads.";

/// The client's commands, one definition for both programs.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Upload a file, resumably: drops cost one chunk, crashes cost nothing.
    Upload(upload::UploadArgs),
    /// Continue every unfinished upload in the journal.
    Resume(upload::ResumeArgs),
    /// List the uploads in the journal with their state and offsets.
    Uploads(upload::ListArgs),
}

impl ClientCommand {
    /// The subcommand names, as the launcher recognises them.
    pub const NAMES: [&'static str; 3] = ["upload", "resume", "uploads"];

    /// Runs the command; `matches` are the whole command line's.
    pub async fn run(self, matches: &clap::ArgMatches) -> anyhow::Result<()> {
        match self {
            ClientCommand::Upload(args) => {
                let sub = matches
                    .subcommand_matches("upload")
                    .cloned()
                    .unwrap_or_default();
                upload::upload(args, &sub).await
            }
            ClientCommand::Resume(args) => upload::resume(args).await,
            ClientCommand::Uploads(args) => upload::list(args).await,
        }
    }
}

/// Logs go to stderr; `SPOOL_LOG` overrides the level. The server logs at
/// info; client commands only warn, so their own output (progress, JSON
/// lines) stays readable.
pub fn init_tracing() {
    let default = match std::env::args().nth(1).as_deref() {
        Some("serve") => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPOOL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Runs a command on a multi-threaded runtime and turns its outcome into
/// the exit status: `code_of` names a failure's `ERR_*` code (see
/// [`exit::fail_with`]).
pub fn run(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
    code_of: exit::Classify,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("spool: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => exit::fail_with(&e, code_of),
    }
}
