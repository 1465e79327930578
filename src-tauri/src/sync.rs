//! Locking the app's shared values (a leaf every module may use).

use std::sync::Mutex;

/// Locks `m`; a lock poisoned by a panicking holder still guards whole
/// values here (every critical section replaces or reads a value), so it is
/// taken over — never read as empty or as not held.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| {
        tracing::error!("a lock was poisoned by a panic; going on with its value");
        poisoned.into_inner()
    })
}
