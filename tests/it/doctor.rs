//! `bursar doctor`'s deployment findings, each produced by a crafted bad setup and read from
//! `--json`: copies of secrets and backups in the data dir (and `--fix`), a writable
//! container engine socket, a running daemon with its password in its environment, compose
//! files that publish beyond loopback or pass a secret as a plain variable.

use crate::harness::{Daemon, Opts, write_private};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// Runs doctor: (exit code, the checks).
fn doctor(mut cmd: Command) -> (i32, Vec<Value>) {
    let out = cmd.output().unwrap();
    let checks: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), checks.as_array().unwrap().clone())
}

/// The checks named `name` with status `status`.
fn findings<'a>(checks: &'a [Value], name: &str, status: &str) -> Vec<&'a str> {
    checks
        .iter()
        .filter(|c| c["check"] == name && c["status"] == status)
        .map(|c| c["detail"].as_str().unwrap())
        .collect()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_data_dir_without_a_store_is_a_finding_and_doctor_creates_none() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(crate::harness::bursar_bin());
    cmd.env("BURSAR_DATA_DIR", data.path())
        .env_remove("BURSAR_MASTER_PASSWORD")
        .env_remove("BURSAR_MASTER_PASSWORD_FILE")
        .args(["doctor", "--json"]);
    let (code, checks) = doctor(cmd);
    assert_eq!(code, 1, "{checks:?}");
    let missing = findings(&checks, "store", "fail");
    assert!(missing.len() == 1 && missing[0].contains("bursar init"), "{checks:?}");
    assert!(!data.path().join("store").exists(), "doctor created a store");
}

#[test]
fn copies_of_secrets_and_backups_in_the_data_dir_are_found_and_fixed() {
    let daemon = Daemon::init(Opts::default());
    let data = daemon.data_dir();
    let (_, clean) = doctor(daemon.cli(&["doctor", "--json"]));
    assert!(findings(&clean, "stray_files", "fail").is_empty(), "{clean:?}");
    assert!(findings(&clean, "stray_files", "warn").is_empty(), "{clean:?}");

    let copy = data.join("recovery.key.bak");
    std::fs::copy(data.join("recovery.key"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose_secret = data.join("webhook.secret");
    write_private(&loose_secret, "whsec-doctor-test");
    std::fs::set_permissions(&loose_secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let archive = data.join("nightly");
    let mut bytes = bursar::backup::MAGIC.to_vec();
    bytes.extend_from_slice(b"{}\n");
    write_private(&archive, std::str::from_utf8(&bytes).unwrap());
    std::fs::create_dir(data.join("store.replaced")).unwrap();

    let (code, checks) = doctor(daemon.cli(&["doctor", "--json"]));
    assert_eq!(code, 1, "{checks:?}");
    let fails = findings(&checks, "stray_files", "fail");
    assert_eq!(fails.len(), 2, "{fails:?}");
    assert!(fails[0].contains("recovery.key.bak") && fails[0].contains("0644") && fails[0].contains("a copy"));
    assert!(fails[1].contains("webhook.secret") && fails[1].contains("0640"));
    let warns = findings(&checks, "stray_files", "warn");
    assert!(
        warns
            .iter()
            .any(|w| w.contains("nightly") && w.contains("backup archive")),
        "{warns:?}"
    );
    assert!(warns.iter().any(|w| w.contains("store.replaced")), "{warns:?}");
    assert!(!serde_json::to_string(&checks).unwrap().contains(&daemon.password));

    let (code, fixed) = doctor(daemon.cli(&["doctor", "--fix", "--json"]));
    assert_eq!((mode(&copy), mode(&loose_secret)), (0o600, 0o600));
    assert!(findings(&fixed, "stray_files", "fail").is_empty(), "{fixed:?}");
    // The copy is still reported: a private copy is still a copy.
    let still = findings(&fixed, "stray_files", "warn");
    assert!(
        still
            .iter()
            .any(|w| w.contains("recovery.key.bak") && w.contains("now 0600")),
        "{still:?}"
    );
    assert_eq!(code, 0, "only warnings are left: {fixed:?}");
}

#[test]
fn a_container_engine_socket_this_user_can_drive_fails() {
    let daemon = Daemon::init(Opts::default());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut cmd = daemon.cli(&["doctor", "--json"]);
    cmd.env("DOCKER_HOST", format!("unix://{}", socket.display()));
    let (code, checks) = doctor(cmd);
    assert_eq!(code, 1, "{checks:?}");
    let fails = findings(&checks, "engine_socket", "fail");
    assert_eq!(fails.len(), 1, "{checks:?}");
    assert!(fails[0].contains(socket.to_str().unwrap()), "{fails:?}");

    let mut cmd = daemon.cli(&["doctor", "--json"]);
    cmd.env(
        "DOCKER_HOST",
        format!("unix://{}", dir.path().join("absent.sock").display()),
    );
    let (_, checks) = doctor(cmd);
    assert_eq!(findings(&checks, "engine_socket", "ok").len(), 1, "{checks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_with_its_password_in_its_environment_fails() {
    let mut daemon = Daemon::init(Opts::default());
    daemon.env = vec![("BURSAR_MASTER_PASSWORD".into(), daemon.password.clone())];
    daemon.spawn().await;
    let pid = daemon.pid().unwrap();
    // Doctor itself runs without it (its own environment is checked apart).
    let mut cmd = daemon.cli(&["doctor", "--json"]);
    cmd.env_remove("BURSAR_MASTER_PASSWORD");
    let (code, checks) = doctor(cmd);
    assert_eq!(code, 1, "{checks:?}");
    let fails = findings(&checks, "process_env", "fail");
    assert_eq!(fails.len(), 1, "{checks:?}");
    assert!(
        fails[0].contains(&format!("pid {pid}")) && fails[0].contains("BURSAR_MASTER_PASSWORD_FILE"),
        "{fails:?}"
    );
    assert!(!serde_json::to_string(&checks).unwrap().contains(&daemon.password));
    daemon.kill();

    // The same daemon started with the _FILE form passes.
    let file = daemon.dir.path().join("master.password");
    write_private(&file, &daemon.password);
    daemon.env = vec![("BURSAR_MASTER_PASSWORD_FILE".into(), file.display().to_string())];
    daemon.spawn().await;
    let (_, checks) = doctor(daemon.cli(&["doctor", "--json"]));
    assert!(findings(&checks, "process_env", "fail").is_empty(), "{checks:?}");
    assert_eq!(findings(&checks, "process_env", "ok").len(), 1, "{checks:?}");
}

#[test]
fn compose_files_that_publish_beyond_loopback_or_pass_a_plain_secret_fail() {
    let daemon = Daemon::init(Opts::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  bursar:\n    image: bursar\n    ports:\n      - \"3100:3100\"\n    environment:\n      BURSAR_MASTER_PASSWORD: hunter2hunter2\n",
    )
    .unwrap();
    let mut cmd = daemon.cli(&["doctor", "--json"]);
    cmd.current_dir(dir.path());
    let (code, checks) = doctor(cmd);
    assert_eq!(code, 1, "{checks:?}");
    let fails = findings(&checks, "compose", "fail");
    assert_eq!(fails.len(), 2, "{fails:?}");
    assert!(
        fails[0].contains("line 5") && fails[0].contains("every interface"),
        "{fails:?}"
    );
    assert!(
        fails[1].contains("line 7") && !fails[1].contains("hunter2"),
        "{fails:?}"
    );

    // The repository's own compose files pass.
    let root = crate::harness::repo_root();
    let (_, checks) = doctor(daemon.cli(&[
        "doctor",
        "--json",
        "--compose",
        root.join("docker-compose.yml").to_str().unwrap(),
        "--compose",
        root.join("docker-compose.secrets.yml").to_str().unwrap(),
    ]));
    assert_eq!(findings(&checks, "compose", "ok").len(), 2, "{checks:?}");
    assert!(findings(&checks, "compose", "fail").is_empty(), "{checks:?}");
}
