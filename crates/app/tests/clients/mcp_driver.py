"""An MCP client driven line by line: the official Python SDK (`mcp` on PyPI)
against a live Plexus node, for the workflow test in `tests/workflow.rs`.

    python3 mcp_driver.py URL

It connects (the 2025-11-25 handshake), prints `{"step": "ready", "tools": [...]}`,
then reads one JSON object per line on stdin, `{"tool": NAME, "arguments": {...}}`,
calls that tool and prints `{"step": "result", "is_error": ..., "structured": ...,
"text": ...}`. It ends at the end of its input.
"""

import asyncio
import json
import sys

try:
    from mcp import Client
except ImportError as e:  # pragma: no cover - the Rust test reports this line
    print(json.dumps({"step": "missing", "error": f"the Python package `mcp` is not installed: {e}"}), flush=True)
    sys.exit(3)


def emit(**fields):
    print(json.dumps(fields), flush=True)


async def read_line():
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def drive(url):
    async with Client(url, mode="legacy") as client:
        tools = await client.list_tools()
        emit(step="ready", tools=sorted(t.name for t in tools.tools))
        while True:
            line = await read_line()
            if not line:
                return
            ask = json.loads(line)
            result = await client.call_tool(ask["tool"], ask.get("arguments", {}))
            emit(
                step="result",
                is_error=result.is_error,
                structured=result.structured_content,
                text=result.content[0].text if result.content else None,
            )


if __name__ == "__main__":
    asyncio.run(drive(sys.argv[1]))
