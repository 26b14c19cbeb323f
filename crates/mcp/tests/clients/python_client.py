"""A real MCP client (the official Python SDK, `mcp` on PyPI) against a live Plexus server.

Run by the Rust test `clients::python_*`:

    python3 python_client.py URL MODE

MODE is `legacy` (the 2025-11-25 initialize handshake and a session) or `2026-07-28`
(stateless, list changes on `subscriptions/listen`). It prints one JSON object per
line on stdout, one per step, and reads a line on stdin where the test must act first:

1. `{"step": "listed", ...}`: the tools listed and one tool called.
2. `{"step": "ready"}`: waiting for `notifications/tools/list_changed`; the test now
   registers the service `weather`.
3. `{"step": "changed", "tools": [...]}`: the notification came and the list was read
   again.
4. legacy only: `{"step": "idle"}`, then it reads a line: the test lets the session
   expire and writes one. `{"step": "expired", "error": ...}`: the SDK's error for
   the 404.
"""

import asyncio
import json
import sys

try:
    import mcp
    from mcp import Client
except ImportError as e:  # pragma: no cover - the Rust test reports this line
    print(json.dumps({"step": "missing", "error": f"the Python package `mcp` is not installed: {e}"}), flush=True)
    sys.exit(3)

TIMEOUT = 10.0


def emit(**fields):
    print(json.dumps(fields), flush=True)


def tool_names(result):
    return sorted(t.name for t in result.tools)


async def read_line():
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def legacy(url):
    changed = asyncio.Event()

    async def on_message(message):
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async with Client(url, mode="legacy", message_handler=on_message) as client:
        await step_list_and_call(client)
        emit(step="ready")
        await asyncio.wait_for(changed.wait(), TIMEOUT)
        emit(step="changed", tools=tool_names(await client.list_tools()))
        emit(step="idle")
        await read_line()
        try:
            await client.list_tools()
            emit(step="expired", error=None)
        except Exception as e:  # the SDK's error for a terminated session
            emit(step="expired", error=f"{type(e).__name__}: {e}")


async def modern(url, version):
    async with Client(url, mode=version) as client:
        await step_list_and_call(client)
        async with client.listen(tools_list_changed=True) as sub:
            emit(step="ready", honored=bool(sub.honored.tools_list_changed))
            event = await asyncio.wait_for(sub.__anext__(), TIMEOUT)
            emit(step="changed", event=type(event).__name__, tools=tool_names(await client.list_tools()))


async def step_list_and_call(client):
    tools = await client.list_tools()
    result = await client.call_tool("echo.say", {"text": "from python"})
    bad = await client.call_tool("echo.say", {"text": 1})
    emit(
        step="listed",
        sdk=getattr(mcp, "__version__", "unknown"),
        protocol=client.protocol_version,
        tools=tool_names(tools),
        structured=result.structured_content,
        is_error=result.is_error,
        bad_is_error=bad.is_error,
        bad_text=bad.content[0].text if bad.content else None,
    )


def main():
    url, mode = sys.argv[1], sys.argv[2]
    if mode == "legacy":
        asyncio.run(legacy(url))
    else:
        asyncio.run(modern(url, mode))


if __name__ == "__main__":
    main()
