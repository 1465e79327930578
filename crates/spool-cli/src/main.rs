//! `spool`, the launcher: the client commands (`upload`, `resume`,
//! `uploads`) and `--version` run here, in a program that links the client
//! and nothing of FFmpeg; every other command line goes to `spool-full`
//! unchanged (see the library's docs and [`spool_cli::launch`]).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use spool_cli::ClientCommand;

#[derive(Parser)]
#[command(name = "spool", version, about = spool_cli::ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: ClientCommand,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let here = match args.get(1).and_then(|a| a.to_str()) {
        Some(c) => {
            ClientCommand::NAMES.contains(&c)
                || (args.len() == 2 && ["--version", "-V"].contains(&c))
        }
        None => false,
    };
    if !here {
        return spool_cli::launch::exec_full(&args);
    }
    spool_cli::init_tracing();
    let matches = Cli::command().get_matches_from(&args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    spool_cli::run(cli.command.run(&matches), spool_cli::exit::no_more)
}
