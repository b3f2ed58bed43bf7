//! Deterministic crash points for the pipeline's kill -9 tests. With the `test-faults`
//! feature, `BURSAR_TEST_FAULT=<point>` makes the process abort at that point — no
//! destructors, no flush: what a power cut or SIGKILL leaves. Without the feature every call
//! compiles to nothing.

/// Points in the transfer pipeline, in order.
pub const POINTS: [&str; 4] = ["before_sign", "after_sign", "after_broadcast", "before_confirm"];

/// Points in `set-master` keeping `recovery.key`: after the new password is staged in
/// `recovery.key.new`, before the store commit; and after the commit, before the rename.
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
