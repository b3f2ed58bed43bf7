"""Drives bursar with the official Python MCP SDK (another implementation than rmcp).

Usage: client.py stdio|http|sse|renew|tools — reads BURSAR_BIN, BURSAR_URL,
BURSAR_SESSION_TOKEN_FILE (or BURSAR_SESSION_TOKEN) and RECIPIENT from the environment, runs a
scenario and prints one JSON object of observations on stdout. The Rust tests
(tests/it/mcp*.rs) assert on it.

- stdio: `bursar mcp` over stdio; http: the daemon's /mcp (streamable HTTP); both run the full
  tool scenario.
- sse: the daemon's legacy /sse + /message transport: list tools, resources, get_balance.
- renew: `bursar mcp` over stdio, one call, then waits RENEW_WAIT seconds (past the token's
  TTL) and calls again: renewal must have kept the session alive.
- tools: `bursar mcp` over stdio, calls get_address twice (error paths).
- approve: the daemon's /mcp; approve_transaction for APPROVE_TX first with a forged
  signature (as a prompt-injected agent would), then with OWNER_MESSAGE / OWNER_SIGNATURE.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def scenario(session, recipient):
    out = {}
    await session.initialize()
    tools = (await session.list_tools()).tools
    out["tools"] = sorted(t.name for t in tools)
    out["annotations"] = {
        t.name: {
            "readOnly": getattr(t.annotations, "read_only_hint", None) if t.annotations else None,
            "destructive": getattr(t.annotations, "destructive_hint", None) if t.annotations else None,
        }
        for t in tools
    }
    out["has_output_schema"] = sorted(t.name for t in tools if t.output_schema)
    addr = await session.call_tool("get_address", {})
    out["address"] = addr.structured_content
    bal = await session.call_tool("get_balance", {})
    out["balance"] = bal.structured_content
    sent = await session.call_tool(
        "transfer", {"to": recipient, "amount": "0.01", "idempotency_key": f"py-{sys.argv[1]}-instant"}
    )
    out["instant"] = {"isError": sent.is_error, "structured": sent.structured_content}
    delayed = await session.call_tool(
        "transfer", {"to": recipient, "amount": "0.5", "idempotency_key": f"py-{sys.argv[1]}-delay"}
    )
    out["delayed"] = delayed.structured_content
    if delayed.structured_content:
        cancelled = await session.call_tool("cancel_transaction", {"id": delayed.structured_content["id"]})
        out["cancelled"] = cancelled.structured_content
    denied = await session.call_tool(
        "transfer", {"to": recipient, "amount": "500", "idempotency_key": f"py-{sys.argv[1]}-denied"}
    )
    out["denied"] = {"isError": denied.is_error, "text": text_of(denied)}
    check = await session.call_tool("check_policy", {"to": recipient, "amount": "0.2"})
    out["check"] = check.structured_content
    listed = await session.call_tool("list_transactions", {"limit": 10})
    out["listed"] = len(listed.structured_content["transactions"])
    policies = await session.call_tool("get_policies", {})
    out["policies"] = len(policies.structured_content["policies"])
    try:
        r = await session.call_tool("transfer", {"to": recipient, "amount": "0.01"})
        # rmcp reports argument-schema failures as tool errors (MCP 2025-11-25, SEP-1303).
        out["malformed"] = {"channel": "isError" if r.is_error else "accepted", "text": text_of(r)}
    except Exception as e:  # or as a protocol error
        out["malformed"] = {"channel": "protocol", "text": str(e)}
    try:
        await session.call_tool("transfer", {"to": "0x12", "amount": "0.01", "idempotency_key": "x"})
        out["bad_address"] = "accepted"
    except Exception as e:  # malformed input: a protocol error naming the field
        out["bad_address"] = str(e)
    return out


async def sse_scenario(session):
    out = {}
    init = await session.initialize()
    out["protocol"] = init.protocol_version
    out["capabilities"] = {
        "logging": init.capabilities.logging is not None,
        "resources": init.capabilities.resources is not None,
    }
    out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
    bal = await session.call_tool("get_balance", {})
    out["balance"] = {"isError": bal.is_error, "structured": bal.structured_content}
    out["resources"] = sorted(str(r.uri) for r in (await session.list_resources()).resources)
    res = await session.read_resource("bursar://wallet/address")
    out["address_resource"] = json.loads(res.contents[0].text)
    return out


async def calls(session, first, second):
    """One call, an optional pause, another call; each as {isError, text, structured}."""
    out = {}
    await session.initialize()
    for key, (tool, wait) in (("first", first), ("second", second)):
        await asyncio.sleep(wait)
        r = await session.call_tool(tool, {})
        out[key] = {"isError": r.is_error, "text": text_of(r), "structured": r.structured_content}
    return out


async def approve_scenario(session):
    out = {}
    await session.initialize()
    tx = os.environ["APPROVE_TX"]
    pending = await session.call_tool("list_pending_approvals", {})
    out["pending"] = [
        {"id": a["transaction"]["id"], "page": a["approvalPage"], "signable": bool(a["ownerMessage"])}
        for a in pending.structured_content["approvals"]
    ]
    message = os.environ["OWNER_MESSAGE"]
    forged = await session.call_tool(
        "approve_transaction", {"id": tx, "owner_message": message, "owner_signature": "0x" + "11" * 65}
    )
    out["forged"] = {"isError": forged.is_error, "text": text_of(forged)}
    real = await session.call_tool(
        "approve_transaction", {"id": tx, "owner_message": message, "owner_signature": os.environ["OWNER_SIGNATURE"]}
    )
    out["approved"] = {"isError": real.is_error, "structured": real.structured_content, "text": text_of(real)}
    return out


async def solana_scenario(session, recipient):
    """A Solana wallet: its address, SOL balance and an INSTANT transfer, confirmed."""
    out = {}
    await session.initialize()
    out["address"] = (await session.call_tool("get_address", {})).structured_content
    out["balance"] = (await session.call_tool("get_balance", {})).structured_content
    sent = await session.call_tool(
        "transfer", {"to": recipient, "amount": "0.01", "idempotency_key": "py-solana-instant"}
    )
    out["transfer"] = {"isError": sent.is_error, "text": text_of(sent), "structured": sent.structured_content}
    if sent.structured_content:
        got = await session.call_tool("get_transaction", {"id": sent.structured_content["id"]})
        out["transaction"] = got.structured_content
    out["after"] = (await session.call_tool("get_balance", {})).structured_content
    return out


def stdio_params():
    env = {"BURSAR_URL": os.environ["BURSAR_URL"], "PATH": os.environ.get("PATH", ""), "BURSAR_LOG": "info"}
    for var in ("BURSAR_SESSION_TOKEN_FILE", "BURSAR_SESSION_TOKEN"):
        if var in os.environ:
            env[var] = os.environ[var]
    return StdioServerParameters(command=os.environ["BURSAR_BIN"], args=["mcp"], env=env)


def token():
    if "BURSAR_SESSION_TOKEN" in os.environ:
        return os.environ["BURSAR_SESSION_TOKEN"]
    return open(os.environ["BURSAR_SESSION_TOKEN_FILE"]).read().strip()


async def main():
    mode = sys.argv[1]
    recipient = os.environ.get("RECIPIENT", "")
    if mode == "stdio":
        async with stdio_client(stdio_params()) as (read, write):
            async with ClientSession(read, write) as session:
                out = await scenario(session, recipient)
    elif mode in ("renew", "tools"):
        wait = float(os.environ.get("RENEW_WAIT", "0"))
        first, second = ("get_address", 0), ("get_address", wait)
        async with stdio_client(stdio_params()) as (read, write):
            async with ClientSession(read, write) as session:
                out = await calls(session, first, second)
    elif mode == "sse":
        headers = {"Authorization": f"Bearer {token()}"}
        async with sse_client(os.environ["BURSAR_URL"] + "/sse", headers=headers) as (read, write):
            async with ClientSession(read, write) as session:
                out = await sse_scenario(session)
    else:
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token()}"})
        if mode == "approve":
            run = approve_scenario
        elif mode == "solana":
            run = lambda s: solana_scenario(s, recipient)  # noqa: E731
        else:
            run = lambda s: scenario(s, recipient)  # noqa: E731
        async with client:
            async with streamable_http_client(os.environ["BURSAR_URL"] + "/mcp", http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    out = await run(session)
    print(json.dumps(out, default=str))


asyncio.run(main())
