//! The real `bursar` binary: commands, exit codes, secret inputs, permissions, doctor.

use crate::harness::{Daemon, Opts, write_private};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_flow_through_the_cli() {
    let mut daemon = Daemon::start(Opts::default()).await;
    let wallet = json_out(
        &daemon
            .cli(&["wallet", "create", "--name", "ops", "--chain", "anvil", "--json"])
            .output()
            .unwrap(),
    );
    let id = wallet["id"].as_str().unwrap();
    assert!(wallet["address"].as_str().unwrap().starts_with("0x"));
    let list = json_out(&daemon.cli(&["wallet", "list", "--json"]).output().unwrap());
    assert_eq!(list.as_array().unwrap().len(), 1);
    let shown = json_out(&daemon.cli(&["wallet", "show", id, "--json"]).output().unwrap());
    assert_eq!(shown, wallet);

    let session = json_out(
        &daemon
            .cli(&[
                "session",
                "create",
                "--wallet",
                id,
                "--ttl",
                "600",
                "--max-renewals",
                "2",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(session["renewalsLeft"], 2);
    let sessions = json_out(
        &daemon
            .cli(&["session", "list", "--wallet", id, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(sessions[0]["id"], session["id"]);
    let revoked = json_out(
        &daemon
            .cli(&["session", "revoke", session["id"].as_str().unwrap(), "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(revoked["revoked"], true);

    let status = json_out(&daemon.cli(&["status", "--json"]).output().unwrap());
    assert_eq!(status["health"]["status"], "ok");
    assert_eq!(status["status"]["wallets"], 1);
    let verify = json_out(&daemon.cli(&["audit", "verify", "--json"]).output().unwrap());
    assert_eq!(verify["ok"], true);
    let audit = json_out(&daemon.cli(&["audit", "list", "--json"]).output().unwrap());
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["init", "unlock", "wallet_created", "session_issued", "session_revoked"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }

    // A second daemon on the same store gets a clear message, not a crash.
    let second = daemon
        .cli(&["start", "--bind", &format!("127.0.0.1:{}", crate::harness::free_port())])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("store is locked by another process"),
        "{}",
        stderr(&second)
    );

    // `stop` shuts the daemon down gracefully.
    let out = daemon.cli(&["stop"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status = daemon.wait_exit();
    assert!(status.success(), "graceful exit: {status}");
    let out = daemon.cli(&["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach the bursar daemon"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_denied_and_failure_exit_codes() {
    let daemon = Daemon::init(Opts::default());
    assert_eq!(daemon.cli(&["--help"]).output().unwrap().status.code(), Some(0));
    assert_eq!(
        daemon.cli(&["wallet", "explode"]).output().unwrap().status.code(),
        Some(2)
    );
    assert_eq!(
        daemon.cli(&["session", "create"]).output().unwrap().status.code(),
        Some(2)
    );
    // init twice refuses and keeps the existing store.
    let again = daemon.cli(&["init", "--auto-provision"]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));

    // Wrong master password at start: exit 3, a clear message, and an audit entry.
    let pw = daemon.dir.path().join("wrong.pw");
    write_private(&pw, "wrong-password-123456");
    let out = daemon
        .cli(&["start"])
        .env("BURSAR_MASTER_PASSWORD_FILE", &pw)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong master password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_inputs_follow_the_file_env_rules() {
    let mut daemon = Daemon::init(Opts::default());
    let pw = daemon.dir.path().join("master.pw");
    write_private(&pw, &format!("{}\n", daemon.password));
    // Both forms of one secret: an error that names it.
    let out = daemon
        .cli(&["start"])
        .env("BURSAR_MASTER_PASSWORD_FILE", &pw)
        .env("BURSAR_MASTER_PASSWORD", &daemon.password)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("both BURSAR_MASTER_PASSWORD_FILE and BURSAR_MASTER_PASSWORD"),
        "{}",
        stderr(&out)
    );

    // The _FILE form works (trailing newline dropped) without the recovery key.
    std::fs::remove_file(daemon.data_dir().join("recovery.key")).unwrap();
    daemon.env = vec![("BURSAR_MASTER_PASSWORD_FILE".into(), pw.display().to_string())];
    daemon.spawn().await;
    daemon.kill();
    // The plain env form works but warns.
    daemon.env = vec![("BURSAR_MASTER_PASSWORD".into(), daemon.password.clone())];
    daemon.spawn().await;
    daemon.kill();
    assert!(
        daemon
            .logs()
            .contains("BURSAR_MASTER_PASSWORD is set in the environment"),
        "{}",
        daemon.logs()
    );

    // No source at all and no terminal: a message that says what to do.
    daemon.env.clear();
    let out = daemon.cli(&["start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("BURSAR_MASTER_PASSWORD_FILE"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_permissions_refuse_start_and_doctor_fixes_them() {
    let daemon = Daemon::init(Opts::default());
    let recovery = daemon.data_dir().join("recovery.key");
    std::fs::set_permissions(&recovery, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = daemon.cli(&["start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("chmod 600") && stderr(&out).contains("doctor --fix"),
        "{}",
        stderr(&out)
    );

    let doctor = daemon.cli(&["doctor", "--json"]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(1));
    let fixed = daemon.cli(&["doctor", "--fix", "--json"]).output().unwrap();
    let checks: Value = serde_json::from_slice(&fixed.stdout).unwrap();
    assert!(
        checks.as_array().unwrap().iter().any(|c| c["fixed"] == true),
        "{checks}"
    );
    assert_eq!(
        std::fs::metadata(&recovery).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_master_through_the_cli_keeps_recovery_key_in_step_and_doctor_flags_a_stale_one() {
    let mut daemon = Daemon::start(Opts::default()).await;
    daemon.create_wallet("anvil").await;
    let old_pw = daemon.dir.path().join("old.pw");
    write_private(&old_pw, &daemon.password);
    let new_pw = daemon.dir.path().join("new.pw");
    write_private(&new_pw, "a brand new master password\n");
    let out = daemon
        .cli(&[
            "set-master",
            "--new-password-file",
            new_pw.to_str().unwrap(),
            "--keep-recovery-key",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(json_out(&out)["recoveryKey"], "rewritten");
    // recovery.key was rewritten in the same step: the CLI (and a plain start) keep working;
    // the old password is refused.
    let recovery = daemon.data_dir().join("recovery.key");
    assert_eq!(
        std::fs::read_to_string(&recovery).unwrap(),
        "a brand new master password"
    );
    let out = daemon.cli(&["wallet", "list", "--json"]).output().unwrap();
    assert_eq!(json_out(&out).as_array().unwrap().len(), 1);
    let out = daemon
        .cli(&["wallet", "list"])
        .env("BURSAR_MASTER_PASSWORD_FILE", &old_pw)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // A recovery.key that no longer opens the store (as an older bursar left it): doctor fails,
    // against the running daemon and reading the store directly, and start says why.
    std::fs::write(&recovery, &daemon.password).unwrap();
    let recovery_check = |doctor: &Output| {
        let checks: Value = serde_json::from_slice(&doctor.stdout).unwrap();
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "recovery_key")
            .cloned()
            .unwrap_or_else(|| panic!("no recovery_key check: {checks}"))
    };
    let doctor = daemon.cli(&["doctor", "--json"]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(1));
    let check = recovery_check(&doctor);
    assert!(
        check["status"] == "fail" && check["detail"].as_str().unwrap().contains("no longer opens"),
        "{check}"
    );
    daemon.kill();
    let doctor = daemon.cli(&["doctor", "--json"]).output().unwrap();
    let check = recovery_check(&doctor);
    assert!(
        check["status"] == "fail" && check["detail"].as_str().unwrap().contains("no longer opens"),
        "{check}"
    );
    let out = daemon.cli(&["start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("does not open the store"), "{}", stderr(&out));

    // After a restart with the new password every key still opens.
    daemon.env = vec![("BURSAR_MASTER_PASSWORD_FILE".into(), new_pw.display().to_string())];
    daemon.spawn().await;
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_tx_commands() {
    let anvil = crate::harness::Anvil::start().await;
    let daemon = Daemon::with_anvil(&anvil).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    let rules = r#"{"instant_max":"0.1","delay_max":"1","delay_seconds":3600}"#;
    let added = json_out(
        &daemon
            .cli(&[
                "policy",
                "add",
                "--wallet",
                wid,
                "--type",
                "SPENDING_LIMIT",
                "--rules",
                rules,
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(added["type"], "SPENDING_LIMIT");
    let bad = daemon
        .cli(&[
            "policy",
            "add",
            "--wallet",
            wid,
            "--type",
            "SPENDING_LIMIT",
            "--rules",
            "{not json",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let bad = daemon
        .cli(&["policy", "add", "--wallet", wid, "--type", "WHATEVER", "--rules", "{}"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("WHATEVER"), "{}", stderr(&bad));
    let list = json_out(
        &daemon
            .cli(&["policy", "list", "--wallet", wid, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(list.as_array().unwrap().len(), 1);

    anvil
        .fund(wallet["address"].as_str().unwrap(), crate::harness::eth(5))
        .await;
    let (status, delayed) = daemon
        .session(
            &token,
            reqwest::Method::POST,
            "/v1/transactions/send",
            Some(
                serde_json::json!({ "to": crate::harness::ANVIL_KEY0_ADDR, "amount": "0.5", "idempotencyKey": "cli" }),
            ),
        )
        .await;
    assert_eq!(
        (status, delayed["status"].as_str()),
        (200, Some("DELAYED")),
        "{delayed}"
    );
    let token_file = daemon.dir.path().join("agent.token");
    write_private(&token_file, &token);
    let tx = |args: &[&str]| {
        daemon
            .cli(args)
            .env("BURSAR_SESSION_TOKEN_FILE", &token_file)
            .output()
            .unwrap()
    };
    let listed = json_out(&tx(&["tx", "list", "--status", "DELAYED", "--json"]));
    assert_eq!(listed[0]["id"], delayed["id"]);
    let id = delayed["id"].as_str().unwrap();
    assert_eq!(json_out(&tx(&["tx", "show", id, "--json"]))["status"], "DELAYED");
    assert_eq!(json_out(&tx(&["tx", "cancel", id, "--json"]))["status"], "CANCELLED");
    let again = tx(&["tx", "cancel", id]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    // Without a token the tx commands say what to set.
    let none = daemon.cli(&["tx", "list"]).output().unwrap();
    assert!(stderr(&none).contains("BURSAR_SESSION_TOKEN_FILE"));
    let removed = json_out(
        &daemon
            .cli(&["policy", "remove", added["id"].as_str().unwrap(), "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(removed["id"], added["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickset_and_session_prompt_print_ready_mcp_configs() {
    let mut daemon = Daemon::start(Opts::default()).await;
    let doctor_recovery_key = |daemon: &Daemon| {
        let doctor = daemon.cli(&["doctor", "--json"]).output().unwrap();
        let checks: Value = serde_json::from_slice(&doctor.stdout).unwrap();
        let check = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "recovery_key")
            .cloned();
        (doctor.status.code(), check)
    };
    let (_, check) = doctor_recovery_key(&daemon);
    assert_eq!(check.unwrap()["status"], "warn", "no session yet: a warning");

    // recovery.key (the master password) sits in the data dir and the agent host would run as
    // this same OS user: refused, with the fix, and nothing is created.
    let out = daemon.cli(&["quickset"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("recovery.key holds the master password")
            && stderr(&out).contains("bursar set-master --delete-recovery-key")
            && stderr(&out).contains("its own OS user"),
        "{}",
        stderr(&out)
    );
    let wallets = json_out(&daemon.cli(&["wallet", "list", "--json"]).output().unwrap());
    assert_eq!(wallets.as_array().unwrap().len(), 0);
    // A token directory inside the data dir is refused too (usage error).
    let inside = daemon.data_dir().join("agents");
    let out = daemon
        .cli(&[
            "quickset",
            "--insecure-allow-recovery-key",
            "--token-dir",
            inside.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("inside the data directory"), "{}", stderr(&out));

    // The explicit, loudly named escape hatch (throwaway demos): works, warns, and doctor fails
    // from then on.
    let token_dir = daemon.dir.path().join("agent-tokens");
    let out = daemon
        .cli(&[
            "quickset",
            "--ttl",
            "600",
            "--json",
            "--insecure-allow-recovery-key",
            "--token-dir",
            token_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("WARNING (--insecure-allow-recovery-key)"),
        "{}",
        stderr(&out)
    );
    let block = json_out(&out);
    assert_eq!(mode(&token_dir), 0o700);
    let servers = block["mcpServers"].as_object().unwrap();
    assert_eq!(servers.len(), 2, "one per configured chain: {block}");
    for server in servers.values() {
        assert_eq!(server["args"][0], "mcp");
        assert_eq!(server["env"]["BURSAR_URL"], daemon.url.as_str());
        let file = server["env"]["BURSAR_SESSION_TOKEN_FILE"].as_str().unwrap();
        assert!(
            std::path::Path::new(file).starts_with(token_dir.canonicalize().unwrap()),
            "{file} is in the token dir"
        );
        assert!(!std::path::Path::new(file).starts_with(daemon.data_dir()), "{file}");
        assert_eq!(mode(std::path::Path::new(file)), 0o600);
        let token = std::fs::read_to_string(file).unwrap();
        assert!(
            !block.to_string().contains(&token),
            "the block names the file, never the token"
        );
        let (status, _) = daemon
            .session(&token, reqwest::Method::GET, "/v1/wallet/address", None)
            .await;
        assert_eq!(status, 200);
    }
    let (code, check) = doctor_recovery_key(&daemon);
    let check = check.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        check["status"] == "fail"
            && check["detail"]
                .as_str()
                .unwrap()
                .contains("agent session(s) are active"),
        "{check}"
    );
    assert!(!daemon.data_dir().join("agents").exists());

    // The safe layout: recovery.key deleted by set-master, the password from a file.
    let pw = daemon.dir.path().join("master.pw");
    write_private(&pw, "the operator's own master password");
    let out = daemon
        .cli(&[
            "set-master",
            "--new-password-file",
            pw.to_str().unwrap(),
            "--delete-recovery-key",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!daemon.data_dir().join("recovery.key").exists());
    daemon.env = vec![("BURSAR_MASTER_PASSWORD_FILE".into(), pw.display().to_string())];
    daemon.password = "the operator's own master password".into();
    // Running it again reuses the wallets; tokens go to the default token dir.
    let block = json_out(&daemon.cli(&["quickset", "--json"]).output().unwrap());
    let default_dir = daemon.config_home().join("bursar-agent");
    assert_eq!(mode(&default_dir), 0o700);
    for server in block["mcpServers"].as_object().unwrap().values() {
        let file = server["env"]["BURSAR_SESSION_TOKEN_FILE"].as_str().unwrap();
        assert!(
            std::path::Path::new(file).starts_with(default_dir.canonicalize().unwrap()),
            "{file}"
        );
    }
    let wallets = json_out(&daemon.cli(&["wallet", "list", "--json"]).output().unwrap());
    assert_eq!(wallets.as_array().unwrap().len(), 2);
    let (code, check) = doctor_recovery_key(&daemon);
    assert!(check.is_none() && code == Some(0), "{check:?}");

    // The interactive form, answered line by line: wallet 1, ttl, renewals, lifetime, policy.
    let token_file = daemon.dir.path().join("agent-tokens").join("claude.token");
    let mut child = daemon
        .cli(&[
            "session",
            "prompt",
            "--json",
            "--token-file",
            token_file.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"1\n3600\n2\n7200\n0.01\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let block = json_out(&out);
    let server = block["mcpServers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    let file = server["env"]["BURSAR_SESSION_TOKEN_FILE"].as_str().unwrap();
    assert_eq!(file, token_file.canonicalize().unwrap().to_str().unwrap());
    assert_eq!(mode(&token_file), 0o600);
    let token = std::fs::read_to_string(file).unwrap();
    let (_, policies) = daemon
        .session(&token, reqwest::Method::GET, "/v1/wallet/policies", None)
        .await;
    assert_eq!(policies[0]["rules"]["instant_max"], "0.01", "{policies}");
    let (_, sessions) = daemon.master(reqwest::Method::GET, "/v1/sessions", None).await;
    assert!(
        sessions.as_array().unwrap().iter().any(|s| s["maxRenewals"] == 2),
        "{sessions}"
    );
    // A bad answer is a usage error, and nothing is created.
    let mut child = daemon
        .cli(&["session", "prompt"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"9\n").unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(2));
}

/// Layout B of the README: the agent host runs as its own OS user, which owns the token
/// directory. As root, quickset hands it the token files (recovery.key, 0600 and ours, is out
/// of that user's reach, so no refusal); as anyone else, such a directory is refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickset_hands_token_files_to_the_agent_hosts_own_user() {
    use std::os::unix::fs::MetadataExt;
    let daemon = Daemon::start(Opts::default()).await;
    let agent_dir = daemon.dir.path().join("agent-home");
    std::fs::create_dir(&agent_dir).unwrap();
    std::fs::set_permissions(&agent_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let nobody = 65_534;
    let root = unsafe { libc::geteuid() } == 0;
    let dir = if root {
        std::os::unix::fs::chown(&agent_dir, Some(nobody), Some(nobody)).unwrap();
        agent_dir.clone()
    } else {
        // Owned by root: another OS user than the one running the tests.
        std::path::PathBuf::from("/")
    };
    let out = daemon
        .cli(&["quickset", "--json", "--token-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    if !root {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("belongs to another OS user"), "{}", stderr(&out));
        return;
    }
    let block = json_out(&out);
    for server in block["mcpServers"].as_object().unwrap().values() {
        let file = std::path::PathBuf::from(server["env"]["BURSAR_SESSION_TOKEN_FILE"].as_str().unwrap());
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (nobody, 0o600), "{file:?}");
    }
}
