#!/usr/bin/env python3
"""An external Plexus service in Python: `echo`, with methods `say` and `upper`.

It connects to a node's WebSocket (`/ws`), registers its descriptor with
`plexus.register`, sends `plexus.heartbeat` three times per heartbeat TTL, answers
the calls the node forwards to it (`{"method": "echo.say", "id": "n-7", ...}`) with
JSON-RPC responses, and reconnects with exponential backoff when the socket drops,
registering again under the same instance id.

Run it (the node's gateway listens on 127.0.0.1:7700 by default):

    pip install websockets==17.4
    PLEXUS_URL=ws://127.0.0.1:7700/ws python3 examples/python-echo/echo.py
    plexus call echo.say text=hi        # or: plexus call echo.say --params '{"text": "hi"}'

The protocol it speaks is docs/external-services.md.

Environment: PLEXUS_URL (default ws://127.0.0.1:7700/ws), PLEXUS_TOKEN (a bearer
token with scope `register:echo`, when the node has auth on), ECHO_INSTANCE
(default echo-py-<pid>). Standard library plus `websockets` only.
"""

import asyncio
import json
import os
import random
import sys

try:
    from websockets.asyncio.client import connect
except ImportError:  # pragma: no cover - told to the person running it
    sys.exit("echo.py needs the `websockets` package: pip install websockets==17.4")

URL = os.environ.get("PLEXUS_URL", "ws://127.0.0.1:7700/ws")
TOKEN = os.environ.get("PLEXUS_TOKEN")
INSTANCE = os.environ.get("ECHO_INSTANCE", f"echo-py-{os.getpid()}")

TEXT = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}

DESCRIPTOR = {
    "name": "echo",
    "service_type": "example",
    "version": "1.0.0",
    "instance": INSTANCE,
    "description": "Says back what it is told (Python).",
    "methods": [
        {"name": "say", "description": "Returns the text unchanged.", "params": TEXT, "idempotent": True},
        {"name": "upper", "description": "Returns the text in capitals.", "params": TEXT, "idempotent": True},
    ],
    "tags": ["example", "python"],
}


def answer(request):
    """The JSON-RPC response to one call from the node."""
    method = request.get("method", "")
    params = request.get("params") or {}
    text = params.get("text") if isinstance(params, dict) else None
    if method not in ("echo.say", "echo.upper"):
        error = {"code": -32601, "message": f"echo has no method {method!r}"}
        return {"jsonrpc": "2.0", "id": request["id"], "error": error}
    if not isinstance(text, str):
        error = {"code": -32602, "message": "`text` must be a string", "data": {"field": "/text"}}
        return {"jsonrpc": "2.0", "id": request["id"], "error": error}
    result = {"text": text.upper() if method == "echo.upper" else text, "instance": INSTANCE}
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


async def heartbeat(ws, every):
    n = 0
    while True:
        await asyncio.sleep(every)
        n += 1
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": f"hb-{n}", "method": "plexus.heartbeat", "params": {}}))


async def session(ws):
    """Registers, then serves until the socket closes."""
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": "register", "method": "plexus.register",
                              "params": {"descriptor": DESCRIPTOR}}))
    beats = None
    try:
        async for raw in ws:
            message = json.loads(raw)
            if "method" in message and "id" in message:
                await ws.send(json.dumps(answer(message)))
            elif message.get("id") == "register":
                if "error" in message:
                    raise RuntimeError(f"registration refused: {message['error']}")
                every = message["result"]["heartbeat_ttl_ms"] / 3000.0
                beats = asyncio.create_task(heartbeat(ws, every))
                print(f"registered {INSTANCE} at {URL}", flush=True)
            elif "error" in message:
                print(f"node error: {message['error']}", file=sys.stderr, flush=True)
    finally:
        if beats is not None:
            beats.cancel()


async def main():
    headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else None
    backoff = 0.1
    while True:
        try:
            async with connect(URL, additional_headers=headers) as ws:
                backoff = 0.1
                await session(ws)
        except (OSError, EOFError) as e:
            print(f"connection failed: {e}", file=sys.stderr, flush=True)
        except Exception as e:  # the socket closed or the node refused us
            print(f"session ended: {e}", file=sys.stderr, flush=True)
        await asyncio.sleep(backoff * (0.5 + random.random()))
        backoff = min(backoff * 2, 5.0)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
