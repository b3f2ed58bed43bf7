//! The daemon's clock: Unix seconds, from one function. A leaf: it imports nothing from the
//! crate but the fault switches, so every layer can read it without an import cycle.
//!
//! With the `test-faults` feature a test can shift it: a whole daemon process through
//! `BURSAR_TEST_CLOCK_OFFSET` (seconds), one unit test's thread through [`shift_this_thread`]
//! (the pipeline's unit tests run on a current-thread runtime, so the tasks they spawn see it).

/// Unix seconds now, as the daemon sees it.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + crate::faults::clock_offset() + thread_offset()
}

#[cfg(feature = "test-faults")]
thread_local! {
    static THREAD_OFFSET: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

#[cfg(feature = "test-faults")]
fn thread_offset() -> i64 {
    THREAD_OFFSET.with(|o| o.get())
}

#[cfg(not(feature = "test-faults"))]
fn thread_offset() -> i64 {
    0
}

/// Moves this thread's clock `seconds` forward (or back): for unit tests.
#[cfg(feature = "test-faults")]
pub fn shift_this_thread(seconds: i64) {
    THREAD_OFFSET.with(|o| o.set(o.get() + seconds));
}
