//! The only place that prints to stdout: human text or `--json`.

use serde::Serialize;

pub struct Output {
    json: bool,
    emitted: std::cell::Cell<bool>,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            emitted: std::cell::Cell::new(false),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as JSON, or the human rendering.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        self.emitted.set(true);
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).expect("serialisable output"));
        } else {
            let text = human(value);
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }

    /// Errors go to stderr; with `--json`, and when nothing else was printed, also as
    /// `{"error":{"message"}}` on stdout, so scripts always read one JSON document.
    pub fn error(&self, err: &anyhow::Error) {
        let message = format!("{err:#}");
        if self.json && !self.emitted.get() {
            println!("{}", serde_json::json!({ "error": { "message": message } }));
        }
        eprintln!("error: {message}");
    }

    /// Exact text on stdout, nothing added (a message to sign, for `$(…)` capture).
    pub fn raw(&self, text: &str) {
        self.emitted.set(true);
        println!("{text}");
    }

    /// Notes for the human (warnings, next steps): stderr, so stdout stays parseable.
    pub fn note(&self, text: &str) {
        eprintln!("{text}");
    }
}
