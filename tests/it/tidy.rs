//! Module borders, checked like crate borders: what each module must not import, and where
//! stdout may be written.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// (module path under src/, forbidden substrings in its code)
const BORDERS: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "crate::",
            "serde",
            "tokio",
            "axum",
            "sled",
            "alloy::providers",
            "reqwest",
            "async fn",
        ],
    ),
    ("secret.rs", &["crate::store", "crate::api", "serde::Serialize"]),
    (
        "keystore",
        &[
            "crate::store",
            "crate::chains",
            "crate::api",
            "crate::service",
            "crate::session",
            "tokio",
            "axum",
            "sled",
            "async fn",
            ".await",
        ],
    ),
    (
        "store",
        &[
            "crate::api",
            "crate::chains",
            "crate::service",
            "crate::cli",
            "crate::session",
            "crate::policy",
            "axum",
            "alloy::",
        ],
    ),
    (
        "policy",
        &[
            "crate::store",
            "crate::chains",
            "crate::service",
            "crate::api",
            "crate::keystore",
            "tokio",
            "sled",
            "axum",
            "reqwest",
            "async fn",
            "SystemTime",
            "now_utc",
        ],
    ),
    (
        "notify",
        &[
            "crate::service",
            "crate::api",
            "crate::keystore",
            "crate::chains",
            "crate::policy",
            "Store::",
            "axum",
            "sled",
        ],
    ),
    (
        "prices.rs",
        &["crate::store", "crate::keystore", "crate::chains", "axum", "sled"],
    ),
    (
        "session.rs",
        &[
            "crate::api",
            "crate::chains",
            "crate::keystore",
            "Store::",
            "axum",
            "sled",
        ],
    ),
    (
        "chains",
        &[
            "crate::keystore",
            "crate::store",
            "crate::api",
            "crate::service",
            "crate::session",
            "sled",
            "axum",
        ],
    ),
    (
        "service",
        &["axum", "clap", "crate::api", "crate::cli", "reqwest", "sled"],
    ),
    (
        "api",
        &["crate::keystore", "crate::chains::evm", "sled", "Store::", "clap"],
    ),
    ("cli", &["crate::keystore::Unlocked", "sled::", "crate::chains"]),
];

#[test]
fn modules_respect_their_borders() {
    let src = crate::harness::repo_root().join("src");
    let mut violations = Vec::new();
    for (module, forbidden) in BORDERS {
        let path = src.join(module);
        let files = if path.is_dir() { rust_files(&path) } else { vec![path] };
        assert!(!files.is_empty(), "{module}: no files");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests may reach across borders to build fixtures.
            let code = text.split("#[cfg(test)]").next().unwrap();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for f in *forbidden {
                    if line.contains(f) {
                        violations.push(format!("{}: uses `{f}`: {}", file.display(), line.trim()));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "border violations:\n{}", violations.join("\n"));
}

#[test]
fn only_the_cli_output_module_prints_to_stdout() {
    let src = crate::harness::repo_root().join("src");
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).unwrap();
        if file.ends_with("cli/output.rs") {
            continue;
        }
        let prints = ["println!(", "print!("]
            .iter()
            .any(|m| text.match_indices(m).any(|(i, _)| !text[..i].ends_with('e')));
        assert!(!prints, "{} prints to stdout", file.display());
    }
}
