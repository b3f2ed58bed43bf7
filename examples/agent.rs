//! A small agent, the way an agent host (Claude Desktop) uses bursar: it launches `bursar mcp`
//! over stdio with nothing but a session token file and the daemon's URL, and does its job
//! through MCP tools. It never sees a key or the master password.
//!
//!   BURSAR_SESSION_TOKEN_FILE=… BURSAR_URL=http://127.0.0.1:3100 AGENT_RECIPIENT=0x… \
//!     cargo run --example agent
//!
//! Steps: read the balance; an INSTANT transfer that confirms; a DELAY it cancels; an
//! APPROVAL the owner approves out of band (with `AGENT_OWNER_APPROVES`, a program run with
//! the transaction id — `scripts/demo` passes one that signs with a local owner key; without
//! it the agent waits for the owner, up to `AGENT_APPROVAL_WAIT_SECONDS`, default 120) and that
//! then confirms; and a transfer the policy denies (a payee off the whitelist), with its
//! reasons. The amounts match the demo's policies (`scripts/demo`): INSTANT ≤ 0.1, DELAY ≤ 1,
//! APPROVAL above; payees on a WHITELIST.
//! `BURSAR_BIN` names the bursar binary (default: `bursar` on PATH).

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Client = RunningService<RoleClient, ()>;

/// An address no policy of the demo allows.
const STRANGER: &str = "0x000000000000000000000000000000000000dEaD";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bin = std::env::var("BURSAR_BIN").unwrap_or_else(|_| "bursar".into());
    let to = std::env::var("AGENT_RECIPIENT").map_err(|_| "set AGENT_RECIPIENT to the address to pay")?;
    if std::env::var_os("BURSAR_SESSION_TOKEN_FILE").is_none() {
        return Err("set BURSAR_SESSION_TOKEN_FILE to the agent's token file (bursar quickset makes one)".into());
    }
    // Exactly what an agent host does: spawn `bursar mcp`, speak JSON-RPC on its stdin/stdout.
    let mut child = Command::new(&bin)
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start `{bin} mcp`: {e}"))?;
    let stdin = tokio::net::unix::pipe::Sender::from_owned_fd(OwnedFd::from(child.stdin.take().expect("piped")))?;
    let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(child.stdout.take().expect("piped")))?;
    let client = ().serve((stdout, stdin)).await?;
    let result = run(&client, &to).await;
    client.cancel().await?;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn run(client: &Client, to: &str) -> Result<(), Box<dyn std::error::Error>> {
    let tools = client.list_all_tools().await?;
    let info = client
        .peer_info()
        .and_then(|i| i.server_info.as_ref().map(|s| s.name.clone()))
        .unwrap_or_default();
    say(
        "agent",
        &format!("connected to {info} over stdio: {} tools", tools.len()),
    );

    let me = call(client, "get_address", json!({})).await?;
    let balance = call(client, "get_balance", json!({})).await?;
    step("1. balance");
    say(
        "agent",
        &format!(
            "wallet {} on {}: {} {}",
            me["address"].as_str().unwrap_or("?"),
            me["chain"].as_str().unwrap_or("?"),
            balance["amount"].as_str().unwrap_or("?"),
            balance["symbol"].as_str().unwrap_or("")
        ),
    );

    step("2. a small payment: INSTANT");
    let tx = transfer(client, to, "0.05", "demo-instant").await?;
    say("bursar", &summary(&tx));

    step("3. a larger one: DELAY, then the agent changes its mind");
    let tx = transfer(client, to, "0.5", "demo-delay").await?;
    say("bursar", &summary(&tx));
    let cancelled = call(client, "cancel_transaction", json!({ "id": tx["id"] })).await?;
    say(
        "agent",
        &format!("cancel_transaction → {}", cancelled["status"].as_str().unwrap_or("?")),
    );

    step("4. above the delay limit: the owner must approve");
    let tx = transfer(client, to, "2", "demo-approval").await?;
    say("bursar", &summary(&tx));
    let id = tx["id"].as_str().ok_or("no transaction id")?.to_owned();
    let pending = call(client, "list_pending_approvals", json!({})).await?;
    if let Some(first) = pending["approvals"].as_array().and_then(|a| a.first()) {
        let page = match first["approvalPage"].as_str() {
            Some(page) => format!(" on {page}"),
            None => String::new(),
        };
        match first["ownerMessage"].as_str() {
            Some(message) => say(
                "agent",
                &format!(
                    "the owner is asked to sign{page}: \"{}\"",
                    message.lines().nth(3).unwrap_or_else(|| first_line(message))
                ),
            ),
            None => say("agent", &format!("the owner is asked to approve{page}")),
        }
        say(
            "agent",
            "(the agent can only relay the owner's signature, never make one)",
        );
    }
    match std::env::var_os("AGENT_OWNER_APPROVES") {
        Some(program) => {
            // The owner's step, in its own process (a blocking wait is fine: nothing else runs).
            let status = Command::new(&program).arg(&id).status()?;
            if !status.success() {
                return Err(format!("the owner's approval step failed ({status})").into());
            }
        }
        None => say(
            "agent",
            "waiting for the owner (bursar owner approve, or the approval page)…",
        ),
    }
    let wait = std::env::var("AGENT_APPROVAL_WAIT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let tx = wait_final(client, &id, Duration::from_secs(wait)).await?;
    say("bursar", &summary(&tx));

    step("5. a payee that is not on the whitelist: denied");
    say("agent", &format!("transfer 0.01 to {STRANGER}"));
    let denied = client
        .call_tool(
            CallToolRequestParams::new("transfer").with_arguments(
                json!({ "to": STRANGER, "amount": "0.01", "idempotency_key": "demo-denied" })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await?;
    if denied.is_error != Some(true) {
        return Err(format!("expected a denial, got {denied:?}").into());
    }
    let text: Vec<String> = denied
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    say("bursar", &format!("DENIED (isError): {}", first_line(&text.join(" "))));
    let tx = denied
        .structured_content
        .as_ref()
        .and_then(|s| s.get("transaction").or(Some(s)))
        .cloned()
        .unwrap_or(Value::Null);
    for reason in tx["reasons"].as_array().into_iter().flatten() {
        say("bursar", &format!("  reason: {}", reason.as_str().unwrap_or("?")));
    }

    let balance = call(client, "get_balance", json!({})).await?;
    step("done");
    say(
        "agent",
        &format!(
            "balance now {} {} (0.05 + 2 sent, plus fees; the delayed 0.5 never left)",
            balance["amount"].as_str().unwrap_or("?"),
            balance["symbol"].as_str().unwrap_or("")
        ),
    );
    Ok(())
}

/// A tool call that must succeed; its structured result.
async fn call(client: &Client, name: &str, args: Value) -> Result<Value, Box<dyn std::error::Error>> {
    let args = args.as_object().cloned().unwrap_or_default();
    let result = client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
        .await?;
    if result.is_error == Some(true) {
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        return Err(format!("{name} failed: {}", text.join(" ")).into());
    }
    Ok(result.structured_content.unwrap_or(Value::Null))
}

async fn transfer(client: &Client, to: &str, amount: &str, key: &str) -> Result<Value, Box<dyn std::error::Error>> {
    say("agent", &format!("transfer {amount} to {to}"));
    call(
        client,
        "transfer",
        json!({ "to": to, "amount": amount, "idempotency_key": key }),
    )
    .await
}

/// Polls `get_transaction` until the transfer is final (bounded).
async fn wait_final(client: &Client, id: &str, within: Duration) -> Result<Value, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + within;
    loop {
        let tx = call(client, "get_transaction", json!({ "id": id })).await?;
        let status = tx["status"].as_str().unwrap_or("");
        if ["CONFIRMED", "FAILED", "REJECTED", "CANCELLED", "EXPIRED", "DENIED"].contains(&status) {
            return Ok(tx);
        }
        if Instant::now() > deadline {
            return Err(format!("transaction {id} is still {status} after {} s", within.as_secs()).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn summary(tx: &Value) -> String {
    let mut s = format!(
        "{} {} {}: tier {}, status {}",
        tx["amount"].as_str().unwrap_or("?"),
        tx["symbol"].as_str().unwrap_or(""),
        tx["id"].as_str().map(|i| format!("(tx {i})")).unwrap_or_default(),
        tx["tier"].as_str().unwrap_or("-"),
        tx["status"].as_str().unwrap_or("?")
    );
    if let Some(hash) = tx["hash"].as_str() {
        s += &format!(", hash {hash}");
    }
    if let Some(next) = tx["next"].as_str() {
        s += &format!("\n           next: {}", first_line(next));
    }
    s
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn say(who: &str, what: &str) {
    println!("  [{who:>6}] {what}");
}
