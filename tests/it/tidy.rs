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
        &[
            "crate::store",
            "crate::keystore",
            "crate::chains",
            "crate::service",
            "axum",
            "sled",
        ],
    ),
    (
        "clock.rs",
        &[
            "crate::store",
            "crate::service",
            "crate::config",
            "crate::chains",
            "crate::policy",
            "crate::api",
        ],
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
        &[
            "axum",
            "clap",
            "crate::api",
            "crate::cli",
            "reqwest",
            "sled",
            // A new chain is an adapter: the service sees only the chain-neutral seam.
            "chains::evm",
            "chains::solana",
            "chains::testing",
            "alloy::",
            "solana_",
            "sign_evm",
            "Secp256k1Prehash",
            "Ed25519Message",
        ],
    ),
    (
        "api",
        &[
            // The wire speaks domain types and the service's views, never the stored records:
            // the on-disk format can change without touching a DTO.
            "crate::store",
            "crate::keystore",
            "crate::chains::evm",
            "crate::chains::solana",
            "crate::chains::testing",
            "sled",
            "Store::",
            "clap",
        ],
    ),
    ("cli", &["crate::keystore::Unlocked", "sled::", "crate::chains"]),
    // No import cycles: the wire types know nothing of HTTP errors, the owner commands
    // nothing of the other commands.
    ("api/dto.rs", &["super::error", "api::error", "axum::"]),
    ("cli/owner.rs", &["super::commands", "cli::commands"]),
    // The router builds on the routes and pages, which build on the shared state and
    // extractors: never the other way round.
    (
        "api/state.rs",
        &[
            "super::rest",
            "super::server",
            "super::page",
            "api::rest",
            "api::server",
            "api::page",
        ],
    ),
    (
        "api/extract.rs",
        &[
            "super::rest",
            "super::server",
            "super::page",
            "api::rest",
            "api::server",
            "api::page",
        ],
    ),
    (
        "api/page.rs",
        &["super::rest", "super::server", "api::rest", "api::server"],
    ),
    ("api/rest.rs", &["super::server", "api::server"]),
];

#[test]
fn modules_respect_their_borders() {
    let src = crate::harness::repo_root().join("src");
    let mut violations = Vec::new();
    for (module, forbidden) in BORDERS {
        let path = src.join(module);
        let files = if path.is_dir() { rust_files(&path) } else { vec![path] };
        assert!(!files.is_empty(), "{module}: no files");
        // The fake chain and the adapter suite are test support (the `fake-chain` feature):
        // the suite signs with the real keystore. Out-of-line unit tests (`tests.rs`) build
        // fixtures across borders, like inline ones.
        let support = |f: &PathBuf| f.ends_with("chains/testing.rs") || f.ends_with("tests.rs");
        for file in files.into_iter().filter(|f| !support(f)) {
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests may reach across borders to build fixtures: an inline test module
            // (the rest of the file) is skipped, an out-of-line `mod tests;` is only a line.
            for line in non_test_code(&text).filter(|l| !l.trim_start().starts_with("//")) {
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

/// Where the pipeline's guarantees are made, by file: an `Approved` (the only input of a
/// `TransferPlan`) is made only by the transfer pipeline from a record a committed decision
/// allowed, and a wallet key signs only there.
#[test]
fn only_the_pipeline_approves_and_signs() {
    let src = crate::harness::repo_root().join("src");
    let rules: &[(&str, &[&str])] = &[
        ("Approved::new(", &["service/transfers/execute.rs", "chains/testing.rs"]),
        ("keys().sign(", &["service/transfers/execute.rs"]),
    ];
    let mut violations = Vec::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).unwrap();
        let code: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        for (needle, allowed) in rules {
            if code.iter().any(|l| l.contains(needle)) && !allowed.contains(&rel.as_str()) {
                violations.push(format!("{rel}: `{needle}` outside {allowed:?}"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    for (needle, allowed) in rules {
        for file in *allowed {
            let text = std::fs::read_to_string(src.join(file)).unwrap();
            assert!(
                text.contains(needle),
                "{file} no longer has `{needle}`: update this rule"
            );
        }
    }
}

/// Every source file says what it is in its first line.
#[test]
fn every_source_file_starts_with_a_module_doc_line() {
    let src = crate::harness::repo_root().join("src");
    let missing: Vec<_> = rust_files(&src)
        .into_iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` first line: {missing:?}");
}

/// The lines of `text` outside its unit tests: up to a `#[cfg(test)]` that opens an inline
/// module (the tests are the end of the file); a `#[cfg(test)] mod x;` line pair is skipped.
fn non_test_code(text: &str) -> impl Iterator<Item = &str> {
    let mut lines = text.lines().peekable();
    std::iter::from_fn(move || {
        loop {
            let line = lines.next()?;
            if line.trim() != "#[cfg(test)]" {
                return Some(line);
            }
            match lines.peek().map(|l| l.trim()) {
                Some(next) if next.starts_with("mod ") && next.ends_with(';') => {
                    lines.next();
                }
                _ => return None,
            }
        }
    })
}

#[test]
fn the_border_check_reads_past_an_out_of_line_test_module() {
    let text = "use a;\n#[cfg(test)]\nmod tests;\nfn evaluate() { b() }\n#[cfg(test)]\nmod inline {\n use c;\n}\n";
    let code: Vec<&str> = non_test_code(text).collect();
    assert_eq!(code, ["use a;", "fn evaluate() { b() }"]);
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
