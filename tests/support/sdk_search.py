"""The official Python MCP SDK (mcp 2.x) against a gateway endpoint in `tools: "search"` mode.

    python sdk_search.py MODE URL

MODE is the SDK's `mode` ("auto": 2026-07-28 when the server answers `server/discover`;
"legacy": the initialize handshake). It lists the tools, searches for a tool that echoes a
message back, calls the first one found through `call_tool`, and prints one JSON object of what
it saw; any failure is an exception and a non-zero exit.
"""

import asyncio
import json
import sys

from mcp.client.client import Client


async def main() -> None:
    mode, url = sys.argv[1], sys.argv[2]
    seen: dict = {}
    async with Client(url, mode=mode, read_timeout_seconds=30) as client:
        seen["version"] = client.protocol_version
        tools = await client.list_tools()
        seen["tools"] = [t.name for t in tools.tools]
        found = await client.call_tool(
            "search_tools", {"query": "echo back the input", "limit": 3}
        )
        answer = json.loads(found.content[0].text)
        seen["found"] = [t["name"] for t in answer["tools"]]
        called = await client.call_tool(
            "call_tool",
            {"name": seen["found"][0], "arguments": {"message": "found by the SDK"}},
        )
        seen["called"] = called.content[0].text
    print(json.dumps(seen))


asyncio.run(main())
