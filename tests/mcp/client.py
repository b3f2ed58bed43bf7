"""Drives bursar with the official Python MCP SDK (another implementation than rmcp).

Usage: client.py stdio|http — reads BURSAR_BIN, BURSAR_URL, BURSAR_SESSION_TOKEN_FILE and
RECIPIENT from the environment, runs a scenario and prints one JSON object of observations
on stdout. The Rust test (tests/it/mcp.rs) asserts on it.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client
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


async def main():
    mode = sys.argv[1]
    recipient = os.environ["RECIPIENT"]
    if mode == "stdio":
        params = StdioServerParameters(
            command=os.environ["BURSAR_BIN"],
            args=["mcp"],
            env={
                "BURSAR_URL": os.environ["BURSAR_URL"],
                "BURSAR_SESSION_TOKEN_FILE": os.environ["BURSAR_SESSION_TOKEN_FILE"],
                "PATH": os.environ.get("PATH", ""),
            },
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                out = await scenario(session, recipient)
    else:
        token = open(os.environ["BURSAR_SESSION_TOKEN_FILE"]).read().strip()
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with client:
            async with streamable_http_client(os.environ["BURSAR_URL"] + "/mcp", http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    out = await scenario(session, recipient)
    print(json.dumps(out, default=str))


asyncio.run(main())
