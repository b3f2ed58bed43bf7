//! Deterministic crash points for the pipeline's kill -9 tests. With the `test-faults`
//! feature, `BURSAR_TEST_FAULT=<point>` makes the process abort at that point — no
//! destructors, no flush: what a power cut or SIGKILL leaves. Without the feature every call
//! compiles to nothing. The same feature lets a test shift the daemon's clock (`clock_offset`).

/// Points in the transfer pipeline, in order.
pub const POINTS: [&str; 4] = ["before_sign", "after_sign", "after_broadcast", "before_confirm"];

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
