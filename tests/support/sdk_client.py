"""A client of the official Python MCP SDK (mcp 2.x) through the gateway, for the suite.

    python sdk_client.py MODE URL
    python sdk_client.py MODE COMMAND [ARGS...]      # a stdio server: `mcpvisor serve --stdio ...`

MODE is the SDK's `mode`: "auto" (probes `server/discover`, speaks 2026-07-28 when answered)
or "legacy" (the initialize handshake). Against server-everything behind the gateway as
`every`, it lists tools, calls `every__echo`, calls a tool that reports progress, reads a
resource, gets a prompt, and calls the tools that make the server ask its client mid-call
(elicitation, sampling: answered by this client's callbacks, which the SDK drives as requests
in the handshake era and as input-required rounds in 2026-07-28), then prints one JSON object
of what it saw; any failure is an exception and a non-zero exit.
"""

import asyncio
import json
import sys

import mcp_types as types
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError


async def main() -> None:
    mode, target = sys.argv[1], sys.argv[2:]
    if target[0].startswith("http"):
        server = target[0]
    else:
        server = StdioServerParameters(command=target[0], args=target[1:])
    seen: dict = {}
    progress: list = []

    asked: list = []

    async def on_progress(value, total, message):
        progress.append(value)

    async def on_elicit(context, params):
        asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"name": "Ada", "check": True})

    async def on_sample(context, params):
        asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled-by-the-client"),
            model="scripted",
        )

    async with Client(
        server,
        mode=mode,
        read_timeout_seconds=30,
        elicitation_callback=on_elicit,
        sampling_callback=on_sample,
    ) as client:
        seen["version"] = client.protocol_version
        tools = await client.list_tools()
        seen["tools"] = sorted(t.name for t in tools.tools)
        echo = await client.call_tool("every__echo", {"message": "hi"})
        seen["echo"] = echo.content[0].text
        seen["echo_is_error"] = bool(echo.is_error)
        long = await client.call_tool(
            "every__trigger-long-running-operation",
            {"duration": 0.3, "steps": 3},
            progress_callback=on_progress,
        )
        seen["long_is_error"] = bool(long.is_error)
        seen["progress"] = progress
        resources = await client.list_resources()
        static = [r for r in resources.resources if "static" in str(r.uri)]
        read = await client.read_resource(static[0].uri)
        seen["read_uri"] = str(read.contents[0].uri)
        prompt = await client.get_prompt("every__simple-prompt", {})
        seen["prompt_messages"] = len(prompt.messages)
        elicited = await client.call_tool("every__trigger-elicitation-request", {})
        seen["elicited"] = " ".join(c.text for c in elicited.content if hasattr(c, "text"))
        sampled = await client.call_tool(
            "every__trigger-sampling-request", {"prompt": "hi", "maxTokens": 10}
        )
        seen["sampled"] = " ".join(c.text for c in sampled.content if hasattr(c, "text"))
        seen["asked"] = asked
    if mode == "auto":
        # A client that declares no elicitation: the server's question cannot reach it, and a
        # 2026-07-28 request is told which capability it lacks.
        async with Client(server, mode=mode, read_timeout_seconds=30) as bare:
            try:
                r = await bare.call_tool("every__trigger-elicitation-request", {})
                seen["undeclared"] = {"answered": str(r)[:300]}
            except MCPError as e:
                seen["undeclared"] = {"code": e.code, "data": e.data}
    print(json.dumps(seen), flush=True)


asyncio.run(main())
