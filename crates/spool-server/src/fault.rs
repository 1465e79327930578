//! Crash points for tests. Where the durability argument has a step that
//! a crash could split (bytes written but not yet committed, committed but
//! not yet recorded, an end recorded but its bytes not yet removed), the
//! code calls [`point`] with the step's name. When the environment variable
//! `SPOOL_FAULT_POINT` names that step, the process aborts there at once —
//! no destructor, no flush, like `kill -9` — so an end-to-end test can
//! restart the server and check what survived. Unset (always, outside
//! tests), a point costs one relaxed load.

use std::sync::OnceLock;

/// The environment variable naming the step to crash at.
pub const ENV: &str = "SPOOL_FAULT_POINT";

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// Aborts the process if `SPOOL_FAULT_POINT` is `name`.
pub fn point(name: &str) {
    if armed() == Some(name) {
        eprintln!("fault point {name}: aborting");
        std::process::abort();
    }
}
