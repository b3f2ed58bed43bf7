//! Giving freed heap back to the operating system after session churn.
//!
//! glibc's malloc keeps memory that was freed in the middle of its heaps (and in the
//! per-thread arenas tokio's workers allocate from) for reuse; it returns only the top of
//! the main heap on its own. A burst of MCP sessions (each a few tens of KB of channels,
//! tasks and buffers) that then close leaves the process's RSS at its peak for good:
//! measured, 1,500 `initialize` + `DELETE` cycles left the daemon at ~98 MiB (from 16), and
//! `malloc_trim(0)` brings it back to within ~4 MiB of the start (docs/benchmarks.md).
//!
//! [`release_soon`] asks for one trim shortly after a session closes; bursts of closes
//! coalesce into one trim a second. Elsewhere (other allocators, other libcs) it does
//! nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long to wait after a close before trimming, so a burst of closes costs one trim.
const COALESCE: Duration = Duration::from_secs(1);

static PENDING: AtomicBool = AtomicBool::new(false);

/// Schedules a trim of the heap about a second from now (one for any number of calls in
/// between). Needs a tokio runtime; without one it does nothing.
pub fn release_soon() {
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        PENDING.store(false, Ordering::Release);
        return;
    };
    runtime.spawn(async {
        tokio::time::sleep(COALESCE).await;
        PENDING.store(false, Ordering::Release);
        // Walks every arena under its lock: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free pages of glibc's own heaps; it takes the arena
    // locks itself and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
