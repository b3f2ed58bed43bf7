//! Deterministic crash points for the pipeline's kill -9 tests. With the `test-faults`
//! feature, `BURSAR_TEST_FAULT=<point>` makes the process abort at that point — no
//! destructors, no flush: what a power cut or SIGKILL leaves. Without the feature every call
//! compiles to nothing. The same feature lets a test shift the daemon's clock (`clock_offset`).
//!
//! [`fail_once`] points make an operation report failure once instead (e.g.
//! `flush_fails_once`: the store's batch is applied, then the flush "fails"). They are armed
//! by the same variable, or in unit tests by [`arm_on_this_thread`].

/// Points in the transfer pipeline, in order.
pub const POINTS: [&str; 5] = [
    "before_sign",
    "after_sign",
    "after_broadcast",
    "before_confirm",
    "after_confirm_staged",
];

/// Points in `set-master`: before the store commit (after the new password is staged in
/// `recovery.key.new` when `recovery.key` is kept); and after the commit, before
/// `recovery.key` is renamed over or deleted.
pub const SET_MASTER_POINTS: [&str; 2] = ["set_master_before_commit", "set_master_after_commit"];

#[cfg(feature = "test-faults")]
pub fn hit(point: &str) {
    if std::env::var("BURSAR_TEST_FAULT").is_ok_and(|p| p == point) {
        tracing::error!("test fault: aborting at {point}");
        std::process::abort();
    }
}

#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn hit(_point: &str) {}

/// Seconds added to the daemon's clock (`BURSAR_TEST_CLOCK_OFFSET`), so that a test can put
/// the daemon just before a UTC midnight or a month end and watch a transfer cross it.
#[cfg(feature = "test-faults")]
pub fn clock_offset() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("BURSAR_TEST_CLOCK_OFFSET")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn clock_offset() -> i64 {
    0
}

#[cfg(any(test, feature = "test-faults"))]
mod once {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    thread_local! {
        static ARMED: RefCell<HashSet<&'static str>> = RefCell::new(HashSet::new());
    }
    static ENV_FIRED: AtomicBool = AtomicBool::new(false);

    /// True the first time `point` is reached while armed (by `BURSAR_TEST_FAULT`, once per
    /// process; or on this thread by [`arm_on_this_thread`], once per arming).
    pub fn fail_once(point: &str) -> bool {
        if ARMED.with(|armed| armed.borrow_mut().remove(point)) {
            tracing::error!("test fault: {point}");
            return true;
        }
        if std::env::var("BURSAR_TEST_FAULT").is_ok_and(|p| p == point) && !ENV_FIRED.swap(true, Ordering::SeqCst) {
            tracing::error!("test fault: {point}");
            return true;
        }
        false
    }

    /// Arms `point` for the next [`fail_once`] on the calling thread (unit tests run in
    /// parallel threads; an environment variable would leak into the others).
    #[cfg(test)]
    pub fn arm_on_this_thread(point: &'static str) {
        ARMED.with(|armed| armed.borrow_mut().insert(point));
    }
}

#[cfg(any(test, feature = "test-faults"))]
pub use once::fail_once;

#[cfg(test)]
pub use once::arm_on_this_thread;

#[cfg(not(any(test, feature = "test-faults")))]
#[inline(always)]
pub fn fail_once(_point: &str) -> bool {
    false
}
