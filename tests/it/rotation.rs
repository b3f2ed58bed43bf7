//! Rotation of the secrets not covered elsewhere, each while the daemon runs, old refused and
//! new accepted: the owner's key (disconnect signed by the old key, register and connect the
//! new one) and the master password. (Notification secrets and the metrics token:
//! `notify.rs`, `metrics.rs`; the session secret: `sessions.rs`; the backup passphrase:
//! `backup.rs`.)

use crate::harness::{Anvil, Daemon};
use crate::owner::{Owner, guarded, pending, post_signed};
use crate::transfers::opts;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_key_rotates_old_refused_new_accepted() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let (old, new) = (Owner::new(), Owner::new());
    let (wid, token) = guarded(&anvil, &daemon, &old, json!({})).await;
    let owner_path = format!("/v1/wallets/{wid}/owner");
    let signed = |action: &'static str| {
        let path = format!("{owner_path}/message?action={action}");
        let d = &daemon;
        async move {
            let (status, m) = d.master(Method::GET, &path, None).await;
            assert_eq!(status, 200, "{m}");
            m["message"].as_str().unwrap().to_owned()
        }
    };
    let text = signed("connect").await;
    let (s, w) = post_signed(&daemon, "/v1/owner/connect", &old.headers(&text)).await;
    assert_eq!((s, w["owner"]["state"].as_str()), (200, Some("LOCKED")), "{w}");

    // Rotation: the old key signs its own disconnect; the new owner is registered and proves
    // control. No restart.
    let text = signed("disconnect").await;
    let (s, w) = post_signed(&daemon, "/v1/owner/disconnect", &old.headers(&text)).await;
    assert_eq!((s, w["owner"].is_null()), (200, true), "{w}");
    let (s, _) = daemon
        .master(Method::PUT, &owner_path, Some(json!({ "address": new.address() })))
        .await;
    assert_eq!(s, 200);
    let text = signed("connect").await;
    let (s, w) = post_signed(&daemon, "/v1/owner/connect", &new.headers(&text)).await;
    assert_eq!((s, w["owner"]["state"].as_str()), (200, Some("LOCKED")), "{w}");

    // An approval: the old key's signature is refused, the new key's executes it.
    let id = pending(&daemon, &token, "0.5", "rotated-owner").await;
    let message = || async {
        let (s, m) = daemon
            .session(
                &token,
                Method::GET,
                &format!("/v1/transactions/{id}/approval-message"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{m}");
        m
    };
    let m = message().await;
    let (s, body) = post_signed(
        &daemon,
        m["submitTo"].as_str().unwrap(),
        &old.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("OWNER_REJECTED")),
        "{body}"
    );
    let m = message().await;
    let (s, tx) = post_signed(
        &daemon,
        m["submitTo"].as_str().unwrap(),
        &new.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!((s, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_password_rotates_while_serving_old_refused_new_accepted() {
    let mut daemon = Daemon::start(crate::harness::Opts::default()).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let new = "a rotated master password 0123";
    let (s, body) = daemon
        .master(
            Method::PUT,
            "/v1/admin/master-password",
            Some(json!({ "newPassword": new, "recoveryKey": "delete" })),
        )
        .await;
    assert_eq!((s, body["recoveryKey"].as_str()), (200, Some("deleted")), "{body}");
    let old = std::mem::replace(&mut daemon.password, new.to_owned());
    let (s, _) = daemon
        .request(Method::GET, "/v1/wallets", &[("x-master-password", &old)], None)
        .await;
    assert_eq!(s, 401, "the old password still works");
    let (s, _) = daemon.master(Method::GET, "/v1/wallets", None).await;
    assert_eq!(s, 200);
    // Agents are not disturbed, and the next start needs the new password (from a file).
    let (s, _) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(s, 200);
    daemon.terminate();
    let file = daemon.dir.path().join("master.password");
    crate::harness::write_private(&file, new);
    daemon.env = vec![("BURSAR_MASTER_PASSWORD_FILE".into(), file.display().to_string())];
    daemon.spawn().await;
    let (s, w) = daemon
        .master(
            Method::GET,
            &format!("/v1/wallets/{}", wallet["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200, "{w}");
}
