//! Balances read from a real anvil node through the real daemon.

use crate::harness::{Anvil, Daemon, Opts, eth};
use alloy::primitives::U256;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_erc20_balances_come_from_the_chain() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::with_anvil(&anvil).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let address = wallet["address"].as_str().unwrap();

    let (status, body) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["baseUnits"].as_str(),
            body["amount"].as_str(),
            body["symbol"].as_str()
        ),
        (Some("0"), Some("0"), Some("ETH"))
    );

    anvil.fund(address, eth(3) / U256::from(2)).await;
    let (_, body) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!(body["baseUnits"], "1500000000000000000");
    assert_eq!(body["amount"], "1.5");
    assert_eq!(body["decimals"], 18);
    assert_eq!(body["token"], serde_json::Value::Null);

    // A token with 6 decimals and a hostile symbol: the symbol is sanitised data.
    let usdc = anvil
        .deploy_token(
            "Test USD",
            "US\u{202e}DC\u{200b}\n",
            6,
            U256::from(1_000_000_000_000u64),
        )
        .await;
    anvil.transfer_token(&usdc, address, U256::from(12_345_678u64)).await;
    let (status, body) = daemon
        .session(&token, Method::GET, &format!("/v1/wallet/balance?token={usdc}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["baseUnits"], "12345678");
    assert_eq!(body["amount"], "12.345678");
    assert_eq!(body["decimals"], 6);
    assert_eq!(body["symbol"], "USDC");
    assert_eq!(body["token"].as_str().unwrap().to_lowercase(), usdc.to_lowercase());

    let (status, body) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["address"], wallet["address"]);
    assert_eq!(body["chain"], "anvil");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_inputs_are_clear_errors() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::with_anvil(&anvil).await;
    let (_, token) = daemon.wallet_and_token().await;
    let cases = [
        ("?token=0x1234", 400, "INVALID_INPUT"),
        ("?token=not-an-address", 400, "INVALID_INPUT"),
        // An account without code is not a token.
        (
            "?token=0x000000000000000000000000000000000000dEaD",
            400,
            "INVALID_INPUT",
        ),
        ("?bogus=1", 400, "INVALID_INPUT"),
    ];
    for (query, want_status, want_code) in cases {
        let (status, body) = daemon
            .session(&token, Method::GET, &format!("/v1/wallet/balance{query}"), None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{query}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_chain_id_and_unreachable_node_are_refused() {
    let anvil = Anvil::start().await;
    // The config says chain 1, the node is 31337: never read (or later sign) against it.
    let daemon = Daemon::start(Opts {
        anvil_url: Some(anvil.url.clone()),
        chain_id: 1,
        ..Opts::default()
    })
    .await;
    let (_, token) = daemon.wallet_and_token().await;
    let (status, body) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("chain id 31337"),
        "{body}"
    );

    // No node at all: a 502 that names the chain but not the RPC URL.
    let lonely = Daemon::start(Opts::default()).await;
    let (_, token) = lonely.wallet_and_token().await;
    let (status, body) = lonely.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("CHAIN_UNAVAILABLE")),
        "{body}"
    );
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "the RPC URL may carry an API key: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solana_wallets_get_ed25519_keys_and_a_dead_node_answers_like_evm() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("localsol").await;
    assert_eq!(wallet["kind"], "solana");
    let address = wallet["address"].as_str().unwrap();
    assert_eq!(bs58::decode(address).into_vec().unwrap().len(), 32);
    let session = daemon.create_session(wallet["id"].as_str().unwrap(), json!({})).await;
    // The harness's `localsol` points at a port nothing listens on: the same 502 as a dead
    // EVM node, and no URL in the answer.
    let (status, body) = daemon
        .session(
            session["token"].as_str().unwrap(),
            Method::GET,
            "/v1/wallet/balance",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("CHAIN_UNAVAILABLE")),
        "{body}"
    );
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
}
