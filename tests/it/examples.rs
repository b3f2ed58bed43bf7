//! Every example file in the repo is exercised.

use bursar::config::Config;
use std::path::Path;

#[test]
fn example_config_parses_and_validates() {
    let path = crate::harness::repo_root().join("examples/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (cfg, warnings) = Config::from_parts(&path, &text, Vec::new()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let chains = cfg.chains().unwrap();
    assert_eq!(chains.len(), 3);
    assert_eq!(cfg.chains["base"].chain_id, Some(8453));
}

#[test]
fn initial_config_written_by_init_parses() {
    let (cfg, _) = Config::from_parts(Path::new("config.toml"), &Config::initial_file(), Vec::new()).unwrap();
    assert_eq!(cfg.chains["anvil"].chain_id, Some(31337));
    assert!(!cfg.keystore.kdf().is_weak());
}

#[test]
fn claude_desktop_example_is_valid_json_without_a_real_token() {
    let text = std::fs::read_to_string(crate::harness::repo_root().join("claude_desktop_config.example.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let env = &v["mcpServers"]["bursar"]["env"];
    assert!(
        env.get("BURSAR_SESSION_TOKEN").is_none(),
        "the example must use the _FILE form"
    );
    assert!(env["BURSAR_SESSION_TOKEN_FILE"].is_string());
}
