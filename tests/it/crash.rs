//! Crash safety of `set-master`: kill -9 the daemon at random points while it re-encrypts
//! every key. After each crash exactly one of the two passwords opens the store, and with
//! it every key opens and matches its address (the daemon verifies all keys at unlock).

use crate::harness::{Daemon, Opts, write_private};
use reqwest::Method;
use serde_json::json;

const WALLETS: usize = 40;
const ROUNDS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_master_survives_kill_9_at_any_point() {
    let mut daemon = Daemon::start(Opts::default()).await;
    for _ in 0..WALLETS {
        daemon.create_wallet("anvil").await;
    }
    let (_, before) = daemon.master(Method::GET, "/v1/wallets", None).await;
    // From here on the password travels through BURSAR_MASTER_PASSWORD_FILE.
    let pw_file = daemon.dir.path().join("master.pw");
    std::fs::remove_file(daemon.data_dir().join("recovery.key")).unwrap();
    let (mut changed, mut unchanged) = (0, 0);

    // Calibrate: one uninterrupted change, timed end to end.
    let calibrated = "calibration-password-0123456789".to_owned();
    let t0 = std::time::Instant::now();
    let (status, _) = daemon
        .master(
            Method::PUT,
            "/v1/admin/master-password",
            Some(json!({ "newPassword": calibrated })),
        )
        .await;
    assert_eq!(status, 200);
    let full = t0.elapsed();
    let mut current = calibrated;
    daemon.password = current.clone();

    for round in 0..ROUNDS {
        let next = format!("next-password-{round}-0123456789");
        // The daemon is running with `current`; ask it to move to `next` and kill it meanwhile.
        let url = format!("{}/v1/admin/master-password", daemon.url);
        let auth = current.clone();
        let body = json!({ "newPassword": next });
        let request = tokio::spawn(async move {
            let _ = crate::harness::http()
                .put(url)
                .header("x-master-password", auth)
                .json(&body)
                .send()
                .await;
        });
        // Kill points spread over 0..2x the calibrated duration; the last round kills right
        // after the answer, so both outcomes are always exercised.
        if round + 1 == ROUNDS {
            let _ = request.await;
            daemon.kill();
        } else {
            tokio::time::sleep(full * 2 * round as u32 / ROUNDS as u32).await;
            daemon.kill();
            let _ = request.await;
        }

        // Exactly one password opens the store.
        let mut opened_with = Vec::new();
        for candidate in [&current, &next] {
            write_private(&pw_file, candidate);
            daemon.env = vec![("BURSAR_MASTER_PASSWORD_FILE".into(), pw_file.display().to_string())];
            match daemon.try_spawn().await {
                Ok(()) => {
                    opened_with.push(candidate.clone());
                    daemon.kill();
                }
                Err((code, log)) => {
                    assert_eq!(code, Some(3), "round {round}: unexpected failure: {log}")
                }
            }
        }
        assert_eq!(
            opened_with.len(),
            1,
            "round {round}: passwords that open the store: {}",
            opened_with.len()
        );
        if opened_with[0] == next {
            changed += 1;
        } else {
            unchanged += 1;
        }
        current = opened_with.remove(0);
        write_private(&pw_file, &current);
        daemon.password = current.clone();
        daemon.spawn().await;
        let (status, after) = daemon.master(Method::GET, "/v1/wallets", None).await;
        assert_eq!(status, 200);
        assert_eq!(after, before, "round {round}: wallets changed");
        let (_, audit) = daemon.master(Method::GET, "/v1/audit/verify", None).await;
        assert_eq!(audit["ok"], true, "round {round}: {audit}");
    }
    eprintln!("set-master crash rounds ({full:?} per change): {changed} committed, {unchanged} rolled back");
    assert!(changed >= 1 && unchanged >= 1, "both outcomes must be exercised");
}
