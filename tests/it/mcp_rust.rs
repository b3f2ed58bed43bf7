//! MCP with rmcp's own client, against a real daemon and a real anvil: in process (a
//! `BursarMcp` with the `Remote` backend, as `bursar mcp` builds it, served over a tokio duplex
//! pipe) and over a real socket (the daemon's streamable HTTP `/mcp` with `Authorization:
//! Bearer`). Every listed tool is called, and every structured result is validated against the
//! output schema that tool declares; malformed calls must say which field is wrong.

use crate::harness::{Anvil, Daemon, eth};
use crate::schemas::validate;
use crate::transfers::{RECIPIENT, opts};
use alloy::primitives::U256;
use bursar::api::mcp::{Backend, BursarMcp};
use reqwest::Method;
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

type Client = RunningService<RoleClient, ()>;

/// A funded wallet (ETH and an ERC-20) with INSTANT ≤ 0.1, DELAY ≤ 1 (an hour), no owner yet;
/// returns (wallet, session token).
async fn setup(anvil: &Anvil, daemon: &Daemon, token: &str) -> (Value, String) {
    let (wallet, session) = daemon.wallet_and_token().await;
    let address = wallet["address"].as_str().unwrap();
    anvil.fund(address, eth(10)).await;
    anvil.transfer_token(token, address, U256::from(250_000_000u64)).await;
    let rules = json!({ "instant_max": "0.1", "delay_max": "1", "delay_seconds": 3600 });
    let body = json!({ "walletId": wallet["id"], "type": "SPENDING_LIMIT", "rules": rules });
    assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(body)).await.0, 201);
    (wallet, session)
}

/// The outcome of a tool call, whichever channel it took.
#[derive(Debug)]
enum Outcome {
    /// A tool result (`isError` false or true), as JSON.
    Result(Value),
    /// A JSON-RPC error.
    Protocol(rmcp::ErrorData),
}

async fn call(client: &Client, name: &str, args: Value) -> Outcome {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    match client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
        .await
    {
        Ok(result) => Outcome::Result(serde_json::to_value(result).unwrap()),
        Err(ServiceError::McpError(e)) => Outcome::Protocol(e),
        Err(e) => panic!("{name}: transport failure: {e}"),
    }
}

struct Scenario<'a> {
    client: &'a Client,
    schemas: BTreeMap<String, Value>,
    called: BTreeSet<String>,
}

impl Scenario<'_> {
    /// Calls a tool that must succeed; validates its structured content against the tool's
    /// output schema and returns it.
    async fn ok(&mut self, name: &str, args: Value) -> Value {
        self.called.insert(name.to_owned());
        let result = match call(self.client, name, args.clone()).await {
            Outcome::Result(r) => r,
            Outcome::Protocol(e) => panic!("{name}({args}): protocol error {e:?}"),
        };
        assert_ne!(result["isError"], true, "{name}({args}): {result}");
        let structured = &result["structuredContent"];
        assert!(structured.is_object(), "{name}: no structured content: {result}");
        let schema = &self.schemas[name];
        validate(schema, structured).unwrap_or_else(|e| panic!("{name}: result does not match its outputSchema: {e}"));
        structured.clone()
    }

    /// Calls a tool that must fail; returns the error text (tool result or protocol error).
    async fn err(&mut self, name: &str, args: Value) -> (&'static str, String) {
        match call(self.client, name, args.clone()).await {
            Outcome::Result(r) => {
                assert_eq!(r["isError"], true, "{name}({args}) should fail: {r}");
                let text = r["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|c| c["text"].as_str());
                ("isError", text.collect::<Vec<_>>().join("\n"))
            }
            Outcome::Protocol(e) => ("protocol", e.message.to_string()),
        }
    }
}

async fn scenario(client: &Client, anvil: &Anvil, daemon: &Daemon, wallet: &Value, token: &str, mode: &str) {
    let key = |what: &str| format!("rust-{mode}-{what}");
    let tools: Vec<Tool> = client.list_all_tools().await.unwrap();
    let mut s = Scenario {
        client,
        schemas: tools
            .iter()
            .map(|t| {
                let schema = t
                    .output_schema
                    .as_ref()
                    .unwrap_or_else(|| panic!("{} has no outputSchema", t.name));
                (t.name.to_string(), Value::Object((**schema).clone()))
            })
            .collect(),
        called: BTreeSet::new(),
    };
    for t in &tools {
        let hints = t
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no annotations", t.name));
        let moves_value = t.name == "transfer" || t.name == "approve_transaction";
        assert_eq!(
            hints.destructive_hint == Some(true),
            moves_value,
            "{}: {hints:?}",
            t.name
        );
        if hints.read_only_hint == Some(true) {
            assert!(!moves_value);
        }
    }

    let address = s.ok("get_address", json!({})).await;
    assert_eq!(address["address"], wallet["address"]);
    assert_eq!(address["walletId"], wallet["id"]);
    let native = s.ok("get_balance", json!({})).await;
    assert_eq!(
        (native["symbol"].as_str(), native["decimals"].as_u64()),
        (Some("ETH"), Some(18))
    );
    assert_eq!(native["amount"], "10");
    let erc20 = s.ok("get_balance", json!({ "token": token })).await;
    assert_eq!(erc20["symbol"], "TUSD");
    assert_eq!(
        (erc20["baseUnits"].as_str(), erc20["amount"].as_str()),
        (Some("250000000"), Some("250"))
    );

    let check = s.ok("check_policy", json!({ "to": RECIPIENT, "amount": "0.5" })).await;
    assert_eq!(
        (check["allowed"].as_bool(), check["tier"].as_str()),
        (Some(true), Some("DELAY"))
    );

    let instant = json!({ "to": RECIPIENT, "amount": "0.01", "idempotency_key": key("instant") });
    let sent = s.ok("transfer", instant.clone()).await;
    assert_eq!(
        (sent["tier"].as_str(), sent["status"].as_str()),
        (Some("INSTANT"), Some("CONFIRMED")),
        "{sent}"
    );
    assert!(sent["hash"].as_str().is_some_and(|h| h.starts_with("0x")), "{sent}");
    // The same key is the same transfer, never a second payment.
    assert_eq!(s.ok("transfer", instant).await["id"], sent["id"]);
    let id = sent["id"].as_str().unwrap();
    let shown = s.ok("get_transaction", json!({ "id": id })).await;
    assert_eq!(shown["status"], "CONFIRMED");
    assert!(shown["confirmations"].as_u64().unwrap() >= 1, "{shown}");

    let delayed = s
        .ok(
            "transfer",
            json!({ "to": RECIPIENT, "amount": "0.5", "idempotency_key": key("delay") }),
        )
        .await;
    assert_eq!(delayed["status"], "DELAYED", "{delayed}");
    assert!(delayed["executesAt"].is_string());
    let next = delayed["next"].as_str().unwrap();
    assert!(
        next.contains("cancel_transaction") && next.contains(delayed["id"].as_str().unwrap()),
        "{next}"
    );
    assert!(next.contains(delayed["executesAt"].as_str().unwrap()), "{next}");
    assert!(
        sent["next"].is_null(),
        "a CONFIRMED transfer needs no next step: {sent}"
    );
    let cancelled = s.ok("cancel_transaction", json!({ "id": delayed["id"] })).await;
    assert_eq!(cancelled["status"], "CANCELLED");

    // No owner yet: an APPROVAL-tier transfer is denied, as a tool result with the reasons.
    let (channel, denied) = s
        .err(
            "transfer",
            json!({ "to": RECIPIENT, "amount": "5", "idempotency_key": key("denied") }),
        )
        .await;
    assert_eq!(channel, "isError");
    assert!(denied.contains("DENIED"), "{denied}");
    assert!(
        denied.contains("Rule trace:"),
        "the trace, not only the verdict: {denied}"
    );
    // With an owner it waits for their approval.
    let wid = wallet["id"].as_str().unwrap();
    let owner_key = crate::owner::Owner::new();
    let owner = json!({ "address": owner_key.address() });
    let (status, _) = daemon
        .master(Method::PUT, &format!("/v1/wallets/{wid}/owner"), Some(owner))
        .await;
    assert_eq!(status, 200);
    let pending = s
        .ok(
            "transfer",
            json!({ "to": RECIPIENT, "amount": "5", "idempotency_key": key("approval") }),
        )
        .await;
    assert_eq!(pending["status"], "PENDING_APPROVAL", "{pending}");
    let next = pending["next"].as_str().unwrap();
    assert!(
        next.contains("owner") && next.contains(pending["id"].as_str().unwrap()),
        "{next}"
    );
    let waiting = s.ok("list_pending_approvals", json!({})).await;
    let approvals = waiting["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{waiting}");
    assert_eq!(approvals[0]["transaction"]["id"], pending["id"]);
    let page = format!("{}/approve/{}", daemon.url, pending["id"].as_str().unwrap());
    assert_eq!(approvals[0]["approvalPage"], json!(page), "{waiting}");
    assert!(approvals[0]["messageExpiresAt"].is_string(), "{waiting}");
    let message = approvals[0]["ownerMessage"].as_str().unwrap();
    assert!(message.contains("bursar:approve"), "{message}");
    // The agent cannot forge the owner: a made-up signature is refused, nothing changes.
    for tool in ["approve_transaction", "reject_transaction"] {
        s.called.insert(tool.to_owned());
        let args = json!({ "id": pending["id"], "owner_message": message, "owner_signature": "0x00" });
        let (_, text) = s.err(tool, args).await;
        assert!(text.contains("owner"), "{tool}: {text}");
    }
    // The owner signs the listed message with their own key; the agent relays it.
    let signature = owner_key.headers(message)[1].1.clone();
    let args = json!({ "id": pending["id"], "owner_message": message, "owner_signature": signature });
    let approved = s.ok("approve_transaction", args.clone()).await;
    assert_eq!(approved["status"], "CONFIRMED", "{approved}");
    // Replayed: the nonce is spent and the transfer is no longer pending.
    let (_, replayed) = s.err("approve_transaction", args).await;
    assert!(
        replayed.contains("PENDING_APPROVAL") || replayed.contains("nonce"),
        "{replayed}"
    );
    assert!(
        s.ok("list_pending_approvals", json!({})).await["approvals"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let listed = s.ok("list_transactions", json!({ "limit": 10 })).await;
    assert_eq!(listed["transactions"].as_array().unwrap().len(), 4, "{listed}");
    let confirmed = s.ok("list_transactions", json!({ "status": "CONFIRMED" })).await;
    let confirmed: Vec<&Value> = confirmed["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(confirmed, [&pending["id"], &sent["id"]], "newest first");
    let policies = s.ok("get_policies", json!({})).await;
    assert_eq!(policies["policies"][0]["type"], "SPENDING_LIMIT");

    let listed: BTreeSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(
        s.called, listed,
        "every listed tool is called by this test (add the new ones)"
    );
    let balance = crate::transfers::balance_of(anvil, wallet["address"].as_str().unwrap()).await;
    assert!(
        balance < eth(10) - U256::from(10u64).pow(U256::from(16)),
        "the INSTANT transfer left the wallet"
    );

    // Malformed input never reaches the daemon, and the answer names the field.
    let (_, unknown) = s.err("no_such_tool", json!({})).await;
    assert!(unknown.contains("tool not found"), "{unknown}");
    for (tool, args, needle) in [
        (
            "transfer",
            json!({ "to": RECIPIENT, "amount": "0.01" }),
            "`idempotency_key`",
        ),
        ("get_transaction", json!({}), "`id`"),
        ("cancel_transaction", json!({ "di": "x" }), "`id`"),
        ("check_policy", json!({ "amount": "0.01" }), "`to`"),
        (
            "transfer",
            json!({ "to": "0x12", "amount": "0.01", "idempotency_key": "k" }),
            "to: ",
        ),
        (
            "check_policy",
            json!({ "to": RECIPIENT, "amount": "0.0000000000000000001" }),
            "amount: ",
        ),
        // The daemon's messages name the tool's arguments, not the REST fields.
        (
            "check_policy",
            json!({ "to": RECIPIENT, "amount": "1", "amount_base_units": "1" }),
            "amount: give exactly one amount",
        ),
        (
            "check_policy",
            json!({ "to": RECIPIENT, "amount_base_units": "1.5" }),
            "amount_base_units: ",
        ),
        // Wrong JSON types and unknown arguments never reach the daemon.
        ("get_transaction", json!({ "id": 42 }), "`id`"),
        ("list_transactions", json!({ "limit": "ten" }), "`limit`"),
        ("list_transactions", json!({ "status": "DONE" }), "`status`"),
        ("get_balance", json!({ "token": ["0x1"] }), "`token`"),
        ("check_policy", json!({ "to": RECIPIENT, "amount": 0.01 }), "`amount`"),
        (
            "transfer",
            json!({ "to": RECIPIENT, "amount": "0.01", "idempotency_key": "k", "gas_price": "1" }),
            "`gas_price`",
        ),
    ] {
        let (channel, text) = s.err(tool, args.clone()).await;
        assert!(
            text.contains(needle),
            "{tool}({args}) → {channel}: {text:?} does not name the field ({needle})"
        );
        assert!(!text.contains("amountBaseUnits"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_in_process_and_over_streamable_http() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let token = anvil
        .deploy_token("Test USD", "TUSD", 6, U256::from(10u64.pow(12)))
        .await;

    // (a) In process: the stdio server's backend over an in-memory pipe.
    let (wallet, session) = setup(&anvil, &daemon, &token).await;
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = BursarMcp::new(Backend::Remote {
        http: crate::harness::http(),
        base: daemon.url.clone(),
        token: std::sync::Arc::new(tokio::sync::RwLock::new(Ok(session.clone().into()))),
    });
    let server = tokio::spawn(async move { server.serve(server_io).await.unwrap().waiting().await });
    let client = ().serve(client_io).await.unwrap();
    scenario(&client, &anvil, &daemon, &wallet, &token, "duplex").await;
    client.cancel().await.unwrap();
    server.await.unwrap().unwrap();

    // (b) Over a socket: `/mcp` with the bearer token.
    let (wallet, session) = setup(&anvil, &daemon, &token).await;
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", daemon.url)).auth_header(session.clone());
    let transport = StreamableHttpClientTransport::with_client(crate::harness::http(), config);
    let client = ().serve(transport).await.unwrap();
    scenario(&client, &anvil, &daemon, &wallet, &token, "http").await;
    client.cancel().await.unwrap();

    // A client with a bad token never gets a session.
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", daemon.url)).auth_header("nope");
    let transport = StreamableHttpClientTransport::with_client(crate::harness::http(), config);
    assert!(().serve(transport).await.is_err());
    assert!(
        !daemon.logs().contains(&session),
        "the session token must never appear in a log line"
    );
}
