//! Logging: tracing to stderr (stdout belongs to the CLI's output and, in `bursar mcp`, to
//! the protocol), text or JSON. Secrets never reach a log line: their types have no
//! `Display`, their `Debug` is redacted, and functions near them skip their arguments.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `BURSAR_LOG` (a tracing filter) wins over `level`.
pub fn init(level: &str, json: bool) {
    let filter = std::env::var("BURSAR_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}
