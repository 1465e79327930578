//! Hands a command line to `spool-full`. It is looked for beside the
//! running program (a build folder, or /usr/bin) and then in
//! `../lib/spool/` (where the packages install it), so it always matches
//! the launcher it came with. On Unix it replaces the launcher in the same
//! process (same pid, signals and exit status reach it directly; `ps`
//! still shows the name it was called by); elsewhere it runs as a child
//! whose status is passed on.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The full program's file name.
pub const FULL: &str = if cfg!(windows) {
    "spool-full.exe"
} else {
    "spool-full"
};

/// Where `spool-full` is for a launcher at `exe`, if anywhere.
pub fn find_full(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    [dir.join(FULL), dir.join("../lib/spool").join(FULL)]
        .into_iter()
        .find(|p| p.is_file())
}

/// Runs `spool-full` with `args` (the whole command line, the program's
/// name first). Returns only on failure, or with the child's status where
/// exec is not available.
pub fn exec_full(args: &[OsString]) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return missing(&format!("cannot tell where this program is: {e}")),
    };
    // The real file, not a symlink's folder (e.g. a link in ~/.local/bin).
    let exe = exe.canonicalize().unwrap_or(exe);
    let Some(full) = find_full(&exe) else {
        return missing(&format!(
            "{FULL} is not beside {} (nor in ../lib/spool/): reinstall Spool",
            exe.display()
        ));
    };
    let mut command = std::process::Command::new(&full);
    command.args(args.iter().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        if let Some(name) = args.first() {
            command.arg0(name);
        }
        let e = command.exec();
        missing(&format!("cannot start {}: {e}", full.display()))
    }
    #[cfg(not(unix))]
    {
        match command.status() {
            Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
            Err(e) => missing(&format!("cannot start {}: {e}", full.display())),
        }
    }
}

fn missing(why: &str) -> ExitCode {
    eprintln!("spool: {}: {why}", spool_proto::ErrorCode::Internal);
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_is_found_beside_or_in_lib() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let exe = bin.join("spool");
        assert_eq!(find_full(&exe), None);
        let lib = dir.path().join("lib/spool");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join(FULL), b"").unwrap();
        assert_eq!(
            find_full(&exe).map(|p| p.canonicalize().unwrap()),
            Some(lib.join(FULL).canonicalize().unwrap())
        );
        // Beside the launcher wins: a build folder holds both.
        std::fs::write(bin.join(FULL), b"").unwrap();
        assert_eq!(find_full(&exe), Some(bin.join(FULL)));
    }
}
